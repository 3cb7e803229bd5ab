import Domain
@testable import HTTP
import Reactor
@testable import Watchers

/// GluetunSession, started and then driven through a sequence of inputs: deadlines, the
/// passing of time, failed requests and answers, each answer bytes that go through the HTTP
/// parser first (raw from the input, or shaped like what Gluetun sends: fuzzed status,
/// Location and body).
///
/// Properties: one request at a time; every request is a well-formed GET (see checkRequest:
/// whatever Location a redirect names, the request line and headers stay intact) carrying the
/// configured credentials; at most three redirects in a row; the ports are reported only when
/// they change; a refusal (401, 403) asks the other route once, else waits `authRetryDelay`; deadlines never in the past.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGluetunSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let settings = gluetunSettings(input.byte())
    var session = GluetunSession(settings: settings, jitter: { 0.5 })
    var now = Instant(nanoseconds: 1_000_000_000)
    var inFlight = false
    var lastTarget: String?
    var redirectsInARow = 0
    var reported: [Port]?
    var sessionInput = GluetunSession.Input.start
    var steps = 0
    while steps < 200 {
        steps += 1
        let before = session.nextDeadline
        let answered = inFlight && isAnswer(sessionInput)
        let effects = session.handle(sessionInput, now: now)
        let sent = effects.compactMap { effect -> HTTPRequest? in
            if case .send(let request) = effect { return request }
            return nil
        }
        require(sent.count <= 1, "\(sent.count) requests at once")
        if !sent.isEmpty { require(!inFlight || answered, "a request sent while one is in flight") }
        if answered { inFlight = false }
        if !sent.isEmpty {
            if case .responseReceived(let response) = sessionInput, [301, 302, 307, 308].contains(response.status) {
                redirectsInARow += 1
            } else {
                redirectsInARow = 0
            }
            require(redirectsInARow <= 3, "\(redirectsInARow) redirects followed in a row")
        }
        if case .responseReceived(let response) = sessionInput, answered {
            if [401, 403].contains(response.status) {
                // The other route may be asked once in the same poll (v3.40 refuses a route it
                // does not have); a refusal that asks nothing more waits the pause out.
                let otherRoute = sent.first.map { $0.target != lastTarget } ?? false
                require(otherRoute || (sent.isEmpty && session.nextDeadline == now + settings.authRetryDelay), "a refusal not waited out")
            }
        }
        for request in sent {
            inFlight = true
            lastTarget = request.target
            checkRequest(request, to: settings.url, methods: ["GET"])
            require(request.headers["X-API-Key"] == settings.apiKey?.value, "X-API-Key \(String(describing: request.headers["X-API-Key"]))")
            require(request.headers.contains("Authorization") == (settings.username != nil), "Authorization without a user name, or none with one")
        }
        for case .ports(let ports) in effects {
            require(ports != reported, "ports \(ports) reported twice in a row")
            reported = ports
        }
        if let deadline = session.nextDeadline, deadline != before { require(deadline >= now, "a deadline in the past") }

        guard !input.isAtEnd else { break }
        switch input.byte() % 5 {
        case 0:
            if let deadline = session.nextDeadline, deadline > now { now = deadline }
            sessionInput = .deadlineReached
        case 1:
            now = now + .milliseconds(Int(input.uint16()) * 100)
            sessionInput = .deadlineReached
        case 2:
            sessionInput = gluetunExchange(response(from: input.chunk()))
        case 3:
            sessionInput = .requestFailed(input.pick([.timedOut, .closed, .connect(.refused)]))
        default:
            sessionInput = gluetunExchange(response(from: gluetunAnswer(&input)))
        }
    }
    return 0
}

func isAnswer(_ input: GluetunSession.Input) -> Bool {
    switch input {
    case .responseReceived, .requestFailed: true
    case .start, .deadlineReached: false
    }
}

func gluetunExchange(_ result: Result<HTTPResponse, HTTPClientError>) -> GluetunSession.Input {
    switch result {
    case .success(let response): .responseReceived(response)
    case .failure(let error): .requestFailed(error)
    }
}

func gluetunSettings(_ byte: UInt8) -> GluetunSettings {
    let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:8000" : "http://gluetun:8000/control/")
    return GluetunSettings(url: url, apiKey: byte & 2 == 0 ? nil : Secret(value: "a-long-random-key", origin: "fuzz"),
                           username: byte & 4 == 0 ? nil : "portsync", password: byte & 8 == 0 ? nil : Secret(value: "p:w", origin: "fuzz"),
                           portIndex: Int(byte >> 4 & 1))
}

/// An answer as Gluetun gives them, shaped by the input.
func gluetunAnswer(_ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 301, 302, 404, 401, 403, 500])
    let fuzzed = String(decoding: input.bytes(Int(input.byte() % 24)), as: UTF8.self)
    switch status {
    case 301, 302:
        let location = input.pick(["/v1/portforward", "http://127.0.0.1:8000/v1/portforward", "/v1/openvpn/portforwarded", fuzzed, "/" + fuzzed])
        return answer(status, [("Location", location)])
    case 200:
        let port = Int(input.uint16()), other = Int(input.uint16())
        return answer(status, [("Content-Type", "text/plain; charset=utf-8")],
                      input.pick([#"{"port":\#(port)}"#, #"{"ports":[\#(port),\#(other)]}"#, #"{"port":\#(port),"ports":[\#(port)]}"#,
                                  #"{"port":0,"ports":null}"#, #"{"ports":[]}"#, fuzzed]))
    default:
        return answer(status, [], fuzzed)
    }
}
