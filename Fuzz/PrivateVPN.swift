import Domain
@testable import HTTP
import Reactor
@testable import Watchers

/// PrivateVPN: its answer parser on the input's bytes, then its session driven through a
/// sequence of inputs: tunnel addresses (the same, another, none), deadlines, the passing of
/// time, failed requests and answers (raw bytes through the HTTP parser, or shaped like
/// PrivateVPN's: fuzzed status line and `status` text).
///
/// Properties: a parsed port is the first number of `status`; at most one request in flight,
/// each a well-formed GET of `…/port?ip[]=<address>` sent from that address, and only while the
/// tunnel has one; the port (or "none") is reported only when it changes, "none" only for an
/// answer `{"supported":false}`; a failure reports nothing; deadlines never in the past, never
/// sooner than the first retry delay, never later than the recheck interval.
///
/// Input: a byte choosing the parser's run or the session's, then the parser's bytes, or steps
/// of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPrivateVPN(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    guard input.byte() & 1 == 1 else {
        checkAnswer(input.bytes(count))
        return 0
    }
    let settings = PrivateVPNSettings(interface: "tun0", url: try! HTTPURL(parsing: "https://connect.pvdatanet.com/v3/Api/port"))
    let parent = try! HTTPURL(parsing: "https://connect.pvdatanet.com/v3/Api")
    var session = PrivateVPNSession(settings: settings)
    var now = Instant(nanoseconds: 1_000_000_000)
    var address: IPv4Address?
    var inFlight = false
    var reported: Port??
    var sessionInput = PrivateVPNSession.Input.deadlineReached
    var steps = 0
    while steps < 200 {
        steps += 1
        let answered = inFlight && isAnswer(sessionInput)
        if case .tunnelAddress(let next) = sessionInput, next != address {
            address = next
            inFlight = false  // the shell drops the old address's connection
        }
        let effects = session.handle(sessionInput, now: now)
        if answered { inFlight = false }
        for effect in effects {
            switch effect {
            case .send(let request, let from):
                require(!inFlight, "a request sent while one is in flight")
                require(address != nil && from == address, "a request from \(from) while the tunnel's address is \(String(describing: address))")
                // The API's path is the URL's own, its query after it: checked as under its parent.
                checkRequest(request, to: parent, methods: ["GET"])
                require(request.target == "/v3/Api/port?ip[]=\(from)", "target \(request.target)")
                inFlight = true
            case .port(let port, _):
                require(reported != .some(port), "\(String(describing: port)) reported twice in a row")
                if port == nil, case .responseReceived(let response) = sessionInput {
                    require((try? PrivateVPNAnswer.parse(response.body)) == .unsupported, "none reported for \(response.bodyExcerpt)")
                }
                require(isAnswer(sessionInput) && sessionInput.isSuccess, "a port reported for something that is not an answer")
                reported = .some(port)
            case .log(_, let message):
                require(!hasLineBreak(message), "a log line with a line break: \(message.debugDescription)")
            }
        }
        if let deadline = session.nextDeadline {
            require(deadline >= now, "a deadline in the past")
            require(deadline - now <= settings.recheckInterval, "a deadline beyond the recheck interval")
        }

        guard !input.isAtEnd else { break }
        switch input.byte() % 6 {
        case 0:
            if let deadline = session.nextDeadline, deadline > now { now = deadline }
            sessionInput = .deadlineReached
        case 1:
            now = now + .milliseconds(Int(input.uint16()) * 100)
            sessionInput = .deadlineReached
        case 2:
            sessionInput = .tunnelAddress(input.pick([nil, IPv4Address(10, 96, 3, 37), IPv4Address(10, 96, 5, 9), address]))
        case 3:
            sessionInput = .requestFailed(input.pick([.timedOut, .closed, .connect(.refused), .resolve("cannot resolve")]))
        case 4:
            sessionInput = exchange(response(from: input.chunk()))
        default:
            sessionInput = exchange(response(from: privateVPNAnswer(&input)))
        }
    }
    return 0
}

/// The parser on any bytes: never a crash, and a port only as the first number of `status`.
private func checkAnswer(_ body: [UInt8]) {
    guard case .port(let port)? = try? PrivateVPNAnswer.parse(body) else { return }
    guard case .object(let members)? = try? JSONValue.parse(body), let status = members["status"]?.string else {
        return require(false, "a port from an answer with no status: \(String(decoding: body, as: UTF8.self).debugDescription)")
    }
    let digits = status.unicodeScalars.drop { !("0"..."9").contains($0) }.prefix { ("0"..."9").contains($0) }
    require(Int(String(String.UnicodeScalarView(digits))) == Int(port.value), "port \(port) from status \(status.debugDescription)")
    require(members["supported"] == .bool(true), "a port from an answer not supported")
}

private func exchange(_ result: Result<HTTPResponse, HTTPClientError>) -> PrivateVPNSession.Input {
    switch result {
    case .success(let response): .responseReceived(response)
    case .failure(let error): .requestFailed(error)
    }
}

private func isAnswer(_ input: PrivateVPNSession.Input) -> Bool {
    switch input {
    case .responseReceived, .requestFailed: true
    case .tunnelAddress, .deadlineReached: false
    }
}

private extension PrivateVPNSession.Input {
    var isSuccess: Bool {
        if case .responseReceived(let response) = self { response.status == 200 } else { false }
    }
}

/// An answer as PrivateVPN gives them, shaped by the input.
private func privateVPNAnswer(_ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 404, 500, 503])
    let port = Int(input.uint32() % 100_000)
    let fuzzed = String(decoding: input.bytes(Int(input.byte() % 24)), as: UTF8.self)
    return answer(status, [("Content-Type", "application/json")],
                  input.pick([#"{"supported":true,"status":"Port \#(port) UDP/TCP"}"#, #"{"supported":false}"#,
                              #"{"supported":true,"status":"\#(fuzzed)"}"#, #"{"supported":true}"#, fuzzed]))
}
