import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// DelugeSession, driven through a sequence of inputs: desired ports, new settings, deadlines,
/// the passing of time, failed requests and answers, each answer bytes that go through the HTTP
/// parser first (raw from the input, or shaped like what deluge-web sends to the call in
/// flight: a result, error 1 "Not authenticated", 2 "Unknown method" or another, a status, the
/// request echoed back; the session cookie with the Path of 2.0/2.1 (`<base>json`) or 2.2
/// (`<base>`)).
///
/// Properties: one request at a time, none while one is in flight; none while the login is
/// refused, until the settings change or the pause ends; every request is well-formed, a POST
/// of JSON to /json with its own id, the cookie never on a login; a write sets listen_ports to
/// the desired port, never 0; "verified" only on the desired port; deadlines never in the past;
/// no login storm (between two inputs that are not answers, at most one login and one fresh
/// login per kind of call); the password never in a log line or the status, in any form.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDelugeSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    var session = DelugeSession(settings: settings(input.byte()))
    var now = Instant(nanoseconds: 1_000_000_000)
    var steps = 0
    var loginsThisRound = 0
    var lastID = 0
    while !input.isAtEnd && steps < 200 {
        steps += 1
        let sessionInput: ClientSessionInput
        switch input.byte() % 7 {
        case 0:
            guard let port = Port(input.uint16()) else { continue }
            sessionInput = .desiredPort(port)
        case 1:
            sessionInput = .settingsChanged(settings(input.byte()))
        case 2:
            sessionInput = exchange(response(from: input.chunk()))
        case 3:
            sessionInput = .requestFailed(input.pick([.timedOut, .closed, .connect(.refused), .resolve("no such host")]))
        case 4:
            if let deadline = session.nextDeadline, deadline > now { now = deadline }
            sessionInput = .deadlineReached
        case 5:
            now = now + .milliseconds(Int(input.uint16()) * 100)
            continue
        default:
            guard let (call, id) = session.inFlight else { continue }
            sessionInput = exchange(response(from: delugeAnswer(to: call, id: id, request: session.httpRequest(for: call, id: id), &input)))
        }

        let before = (inFlight: session.inFlight, refused: session.isLoginRefused, deadline: session.nextDeadline)
        var isAnswer = false
        var isUnblocking = false
        switch sessionInput {
        case .responseReceived, .requestFailed: isAnswer = before.inFlight != nil
        case .settingsChanged, .deadlineReached: isUnblocking = true
        case .desiredPort, .connect, .listenerChecked: break
        }
        if !isAnswer { loginsThisRound = 0 }
        let effects = session.handle(sessionInput, now: now)
        var sent: [HTTPRequest] = []
        for effect in effects {
            switch effect {
            case .send(let request, _): sent.append(request)
            case .log(_, let message): checkNoSecret(message, session.settings)
            case .statusChanged(let status): checkNoSecret(status, session.settings)
            case .checkListener: break
            }
        }
        checkNoSecret(session.status, session.settings)
        require(sent.count <= 1, "\(sent.count) requests at once")
        if !sent.isEmpty {
            require(before.inFlight == nil || isAnswer, "a request sent while \(before.inFlight!.call) is in flight")
            require(!before.refused || isUnblocking, "a request sent while the login is refused")
        }
        for request in sent {
            checkRequest(request, to: session.settings.url, methods: ["POST"])
            require(request.target == session.settings.url.target(DelugeRPC.path), "target \(request.target)")
            require(request.headers["Content-Type"] == DelugeRPC.contentType, "Content-Type")
            guard let body = try? JSONValue.parse(request.body), let method = body["method"]?.string, let id = body["id"]?.integer else {
                fatalError("property violated: a body that is not a call: \(String(decoding: request.body, as: UTF8.self))")
            }
            require(id > lastID, "id \(id) after \(lastID)")
            lastID = id
            if method == "auth.login" {
                require(session.settings.password != nil, "a login without a password")
                require(!request.headers.contains("Cookie"), "a login that sends a cookie")
                loginsThisRound += 1
                require(loginsThisRound <= 1 + 9, "\(loginsThisRound) logins without a deadline: a login storm")
            }
            if method == "core.set_config" {
                let ports = body["params"]?.array?.first?["listen_ports"]
                require(ports == .array([.number(Double(session.core.desired?.value ?? 0)), .number(Double(session.core.desired?.value ?? 0))])
                        && session.core.desired != nil, "listen_ports \(ports?.serialized ?? "none") while \(String(describing: session.core.desired)) is desired")
            }
        }
        if session.status.health == .verified {
            require(session.status.verifiedPort == session.core.desired, "verified on \(String(describing: session.status.verifiedPort)), desired \(String(describing: session.core.desired))")
        }
        if let deadline = session.nextDeadline, deadline != before.deadline {
            require(deadline >= now, "a deadline in the past")
        }
    }
    return 0
}

func exchange(_ result: Result<HTTPResponse, HTTPClientError>) -> ClientSessionInput {
    switch result {
    case .success(let response): .responseReceived(response)
    case .failure(let error): .requestFailed(error)
    }
}

func settings(_ byte: UInt8) -> ClientSettings {
    let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:8112" : "https://deluge.example.lan/deluge/")
    let password: Secret? = switch byte >> 1 & 3 {
    case 0: nil
    case 1: Secret(value: "p@ss w\"rd\\1%", origin: "fuzz")
    default: Secret(value: "deluge", origin: "fuzz")
    }
    return ClientSettings(url: url, password: password, reannounce: byte & 8 == 0)
}

/// What deluge-web would answer to `call`, shaped by the input.
func delugeAnswer(to call: DelugeRPC.Call, id: Int, request: HTTPRequest, _ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 200, 403, 404, 500])
    // The cookie's Path as deluge-web sets it, <base>json up to 2.1, <base> from 2.2 on, picked
    // by the value's length so that the older seeds read the input as they did.
    let paths = ["; Path=/json", "; Path=/", "; Path=/deluge/", "; Path=/deluge/json", ""]
    let cookie: [(String, String)] = input.bool() ? [input.bytes(Int(input.byte() % 20))].map { value in
        ("Set-Cookie", "_session_id=" + String(decoding: value, as: UTF8.self) + "; Expires=Mon, 07 Dec 2026 10:30:00 GMT" + paths[value.count % paths.count])
    } : []
    let echo = String(decoding: request.body, as: UTF8.self)
    let answerID = input.pick([id, id, id, id - 1])
    let error = input.pick([nil, (1, "Not authenticated"), (2, "Unknown method"), (3, "KeyError \(input.byte())"), (5, "bad request: \(echo)")])
    if let error {
        return answer(status, cookie, #"{"result": null, "error": {"code": \#(error.0), "message": \#(JSONValue.quoted(error.1))}, "id": \#(answerID)}"#)
    }
    let result: String
    switch call {
    case .login, .connected: result = input.pick(["true", "false", "null"])
    case .hosts: result = input.pick([#"[["a1b2", "127.0.0.1", 58900, "portsync"]]"#, "[]", #"[["x"]]"#])
    case .connect: result = input.pick([#"["core.get_config_value", "core.set_config"]"#, "null", "[]"])
    case .readPorts:
        let port = Int(input.uint16())
        result = #"{"listen_ports": [\#(port), \#(input.bool() ? port : port + 1)], "random_port": \#(input.bool())}"#
    case .verifyPorts:
        let port = Int(input.uint16())
        result = "[\(port), \(port)]"
    case .writePorts, .reannounce: result = "null"
    case .torrents: result = input.pick([#"["aa11", "bb22"]"#, "[]", "null"])
    }
    return answer(status, cookie, status == 200 ? #"{"result": \#(result), "error": null, "id": \#(answerID)}"# : "<pre>\(echo)</pre>")
}
