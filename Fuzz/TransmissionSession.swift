import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// TransmissionSession through the client sessions' driver (`fuzzClientSession`), with answers
/// shaped like what transmission-daemon sends to the request in flight: a 409 with a session
/// id, with or without an X-Transmission-Rpc-Version (6.x: JSON-RPC), 401, 403, a legacy or a
/// JSON-RPC answer with the right id or another, a result that is no object, an error object,
/// the request echoed back in an error page.
///
/// Its own properties: every request a POST of JSON to the RPC path with the session id last
/// handed out, in the session's dialect (JSON-RPC: `"jsonrpc":"2.0"`, snake_case, `params`, an
/// integer `id`; legacy: kebab-case, `arguments`, an integer `tag`), JSON-RPC only once a 409
/// handed out a session id; a write sets peer-port to the desired port (or is the write in
/// flight, sent once more after a 409); no storm (between two inputs that are not answers, at
/// most 12 requests).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTransmissionSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var lastWrite: Int?
    return fuzzClientSession(data, count, TransmissionSession.self) { request, session, round in
        require(round <= 12, "\(round) requests without a deadline: a storm")
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
        if let port = TransmissionSession.writtenPorts(request)?.first {
            // The desired port, or the write in flight sent once more with a new session id.
            require(port == session.core.desired.map { Int($0.value) } || port == lastWrite,
                    "peer-port \(port) while \(String(describing: session.core.desired)) is desired")
            lastWrite = port
        }
    }
}

extension TransmissionSession: FuzzedClientSession {
    static func settings(_ byte: UInt8) -> ClientSettings {
        let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:9091" : "https://transmission.example.lan/seedbox/")
        let password: Secret? = byte & 2 == 0 ? nil : Secret(value: "pa:ss w&rd=1\"%", origin: "fuzz")
        return ClientSettings(url: url, username: byte & 4 == 0 ? "portsync" : "", password: password)
    }

    func shapedAnswer(_ input: inout FuzzInput) -> [UInt8]? {
        inFlight.map { transmissionAnswer(to: $0, request: httpRequest(for: $0), &input) }
    }

    /// A session-set: its peer-port (none when it has none).
    static func writtenPorts(_ request: HTTPRequest) -> [Int]? {
        guard let body = try? JSONValue.parse(request.body), let method = body["method"]?.string,
              method.hasPrefix("session-set") || method.hasPrefix("session_set") else { return nil }
        return [(body["arguments"]?["peer-port"] ?? body["params"]?["peer_port"])?.integer ?? 0]
    }
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
