import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// TransmissionSession, driven through a sequence of inputs: desired ports, new settings,
/// deadlines, the passing of time, failed requests and answers, each answer bytes that go
/// through the HTTP parser first (raw from the input, or shaped like what transmission-daemon
/// sends to the request in flight: a 409 with a session id, with or without an
/// X-Transmission-Rpc-Version (6.x: JSON-RPC), 401, 403, a legacy or a JSON-RPC answer with the
/// right id or another, a result that is no object, an error object, the request echoed back in
/// an error page).
///
/// Properties: one request at a time, none while one is in flight; none while the login is
/// refused, until the settings change or the pause ends; every request is well-formed, a POST
/// of JSON to the RPC path with the session id last handed out, in the session's dialect
/// (JSON-RPC: `"jsonrpc":"2.0"`, snake_case, `params`, an integer `id`; legacy: kebab-case,
/// `arguments`, an integer `tag`), JSON-RPC only once a 409 handed out a session id; a write
/// sets peer-port to the desired port (or is the write in flight, sent once more after a 409),
/// never 0; "verified" only on the desired port; deadlines never in the past; no storm (between
/// two inputs that are not answers, a bounded number of requests); the password never in a log
/// line or the status, in any form.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTransmissionSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    var session = TransmissionSession(settings: settings(input.byte()))
    var now = Instant(nanoseconds: 1_000_000_000)
    var steps = 0
    var requestsThisRound = 0
    var lastWrite: Int?
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
            guard let request = session.inFlight else { continue }
            sessionInput = exchange(response(from: transmissionAnswer(to: request, request: session.httpRequest(for: request), &input)))
        }

        let before = (inFlight: session.inFlight, refused: session.isLoginRefused, deadline: session.nextDeadline)
        var isAnswer = false
        var isUnblocking = false
        switch sessionInput {
        case .responseReceived, .requestFailed: isAnswer = before.inFlight != nil
        case .settingsChanged, .deadlineReached: isUnblocking = true
        case .desiredPort, .connect, .listenerChecked: break
        }
        if !isAnswer { requestsThisRound = 0 }
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
            require(before.inFlight == nil || isAnswer, "a request sent while \(before.inFlight!) is in flight")
            require(!before.refused || isUnblocking, "a request sent while the login is refused")
        }
        for request in sent {
            requestsThisRound += 1
            require(requestsThisRound <= 12, "\(requestsThisRound) requests without a deadline: a storm")
            checkRequest(request, to: session.settings.url, methods: ["POST"])
            require(request.target == session.settings.url.target(TransmissionRPC.path), "target \(request.target)")
            require(request.headers[TransmissionRPC.sessionIDHeader] == session.sessionID, "the session id")
            guard let body = try? JSONValue.parse(request.body), let method = body["method"]?.string else {
                fatalError("property violated: a body that is not a call: \(String(decoding: request.body, as: UTF8.self))")
            }
            switch session.dialect {
            case .jsonRPC:
                require(session.sessionID != nil, "JSON-RPC before a 409 said so")
                require(body["jsonrpc"] == .string("2.0") && body["id"]?.integer != nil && (body["params"]?["fields"] != nil || body["params"]?["peer_port"] != nil),
                        "a JSON-RPC call without its members: \(body.excerpt)")
                require(body["tag"] == nil && body["arguments"] == nil && !method.contains("-"), "a JSON-RPC call with legacy members: \(body.excerpt)")
            case .legacy:
                require(body["jsonrpc"] == nil && body["params"] == nil && body["tag"]?.integer != nil && body["arguments"] != nil && !method.contains("_"),
                        "a legacy call with JSON-RPC members: \(body.excerpt)")
            }
            if method == "session-set" || method == "session_set" {
                // The desired port, or the write in flight sent once more with a new session id.
                let port = (body["arguments"]?["peer-port"] ?? body["params"]?["peer_port"])?.integer
                require(port.map { (1...65535).contains($0) && ($0 == session.core.desired.map { Int($0.value) } || $0 == lastWrite) } == true,
                        "peer-port \(port.map(String.init) ?? "none") while \(String(describing: session.core.desired)) is desired")
                lastWrite = port
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
    let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:9091" : "https://transmission.example.lan/seedbox/")
    let password: Secret? = byte & 2 == 0 ? nil : Secret(value: "pa:ss w&rd=1\"%", origin: "fuzz")
    return ClientSettings(url: url, username: byte & 4 == 0 ? "portsync" : "", password: password)
}

/// What transmission-daemon would answer to `request`, shaped by the input: 3.00's legacy
/// answers (with the tag sent), or 4.1's (a 409 with X-Transmission-Rpc-Version, JSON-RPC
/// answers to JSON-RPC calls, right or wrong). A legacy call reads the input as it always did,
/// so the older seeds keep their meaning.
func transmissionAnswer(to request: TransmissionSession.Request, request http: HTTPRequest, _ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 409, 401, 403, 500])
    let call = try? JSONValue.parse(http.body)
    let sentID = (call?["tag"] ?? call?["id"])?.integer ?? 0
    switch status {
    case 409:
        // The length byte of the random id also picks the RPC version: below 20, none (3.00).
        let length = input.byte()
        let random = String(decoding: input.bytes(Int(length % 20)), as: UTF8.self)
        let id = input.pick(["", "abc123", random])
        var headers = id.isEmpty ? [] : [(TransmissionRPC.sessionIDHeader, id)]
        let versions = ["", "6.0.1", "6.1.0", "5.3.0", "7.0.0", "6.0", "x.y.z", random, "6.0.1 "]
        let version = versions[Int(length / 20) % versions.count]
        if !version.isEmpty { headers.append((TransmissionRPC.rpcVersionHeader, version)) }
        return answer(409, headers, "<h1>409: Conflict</h1>")
    case 200 where call?["jsonrpc"] != nil:
        return jsonRPCAnswer(to: request, id: sentID, body: http.body, &input)
    case 200:
        let snake = input.bool()
        func name(_ kebab: String) -> String { snake ? kebab.replacingHyphens : kebab }
        let port = input.pick([Int(input.uint16()), 52001])
        let result = input.pick(["success", "success", "success", "error: \(String(decoding: http.body, as: UTF8.self))"])
        var arguments = [#""\#(name("peer-port"))": \#(port)"#, #""\#(name("peer-port-random-on-start"))": \#(input.bool())"#,
                         #""\#(name("port-forwarding-enabled"))": \#(input.bool())"#]
        if case .probe = request { arguments += [#""\#(name("rpc-version"))": \#(input.pick([15, 17, 18]))"#, #""version": "3.00""#] }
        return answer(200, [], #"{"arguments": {\#(arguments.joined(separator: ", "))}, "result": \#(JSONValue.quoted(result)), "tag": \#(sentID)}"#)
    default:
        let echo = http.headers.map { "\($0.name): \($0.value)" }.reversed().joined(separator: "\n")
        return answer(status, [], "<pre>\(echo)</pre>")
    }
}

/// 4.1's answer to a JSON-RPC call: a result object (mostly), an error object, the wrong id, a
/// result that is no object, another version, a legacy answer.
func jsonRPCAnswer(to request: TransmissionSession.Request, id sentID: Int, body: [UInt8], _ input: inout FuzzInput) -> [UInt8] {
    let port = input.pick([Int(input.uint16()), 52001])
    var fields = [#""peer_port": \#(port)"#, #""peer_port_random_on_start": \#(input.bool())"#, #""port_forwarding_enabled": \#(input.bool())"#]
    if case .probe = request {
        fields += [input.pick([#""rpc_version_semver": "6.0.1""#, #""rpc_version_semver": "6.1.0""#, #""rpc_version": 19"#, #""rpc_version_semver": 6"#]),
                   #""version": "4.1.3 (838877323f)""#]
    }
    let id = input.pick([sentID, sentID, sentID, sentID - 1])
    let object = "{\(fields.joined(separator: ", "))}"
    return answer(200, [], input.pick([
        #"{"id": \#(id), "jsonrpc": "2.0", "result": \#(object)}"#,
        #"{"id": \#(id), "jsonrpc": "2.0", "result": \#(object)}"#,
        #"{"id": \#(id), "jsonrpc": "2.0", "result": \#(object)}"#,
        #"{"error": {"code": -32601, "message": "Method not found"}, "id": \#(id), "jsonrpc": "2.0"}"#,
        #"{"error": {"code": 7, "data": {"error_string": \#(JSONValue.quoted(String(decoding: body, as: UTF8.self)))}, "message": "HTTP error"}, "id": null, "jsonrpc": "2.0"}"#,
        #"{"id": \#(id), "jsonrpc": "2.0", "result": [\#(port)]}"#,
        #"{"id": \#(id), "jsonrpc": "1.0", "result": \#(object)}"#,
        #"{"arguments": \#(String(object.map { $0 == "_" ? "-" : $0 })), "result": "success", "tag": \#(id)}"#,
    ]))
}
