import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// TransmissionSession through the client sessions' driver (`fuzzClientSession`), with answers
/// shaped like what transmission-daemon sends to the request in flight: a 409 with a session
/// id, 401, 403, a result, the request echoed back in an error page.
///
/// Its own properties: every request a POST of JSON to the RPC path with the session id last
/// handed out; a write sets peer-port to the desired port (or is the write in flight, sent
/// once more after a 409); no storm (between two inputs that are not answers, at most 12
/// requests).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTransmissionSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var lastWrite: Int?
    return fuzzClientSession(data, count, TransmissionSession.self) { request, session, round in
        require(round <= 12, "\(round) requests without a deadline: a storm")
        require(request.target == session.settings.url.target(TransmissionRPC.path), "target \(request.target)")
        require(request.headers[TransmissionRPC.sessionIDHeader] == session.sessionID, "the session id")
        guard let body = try? JSONValue.parse(request.body), body["method"]?.string != nil else {
            fatalError("property violated: a body that is not a call: \(String(decoding: request.body, as: UTF8.self))")
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
        return [(body["arguments"]?["peer-port"] ?? body["arguments"]?["peer_port"])?.integer ?? 0]
    }
}

/// What transmission-daemon would answer to `request`, shaped by the input.
func transmissionAnswer(to request: TransmissionSession.Request, request http: HTTPRequest, _ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 409, 401, 403, 500])
    switch status {
    case 409:
        let id = input.pick(["", "abc123", String(decoding: input.bytes(Int(input.byte() % 20)), as: UTF8.self)])
        return answer(409, id.isEmpty ? [] : [(TransmissionRPC.sessionIDHeader, id)], "<h1>409: Conflict</h1>")
    case 200:
        let snake = input.bool()
        func name(_ kebab: String) -> String { snake ? kebab.replacingHyphens : kebab }
        let port = input.pick([Int(input.uint16()), 52001])
        let result = input.pick(["success", "success", "success", "error: \(String(decoding: http.body, as: UTF8.self))"])
        var arguments = [#""\#(name("peer-port"))": \#(port)"#, #""\#(name("peer-port-random-on-start"))": \#(input.bool())"#,
                         #""\#(name("port-forwarding-enabled"))": \#(input.bool())"#]
        if case .probe = request { arguments += [#""\#(name("rpc-version"))": \#(input.pick([15, 17, 18]))"#, #""version": "3.00""#] }
        return answer(200, [], #"{"arguments": {\#(arguments.joined(separator: ", "))}, "result": \#(JSONValue.quoted(result)), "tag": 1}"#)
    default:
        let echo = http.headers.map { "\($0.name): \($0.value)" }.reversed().joined(separator: "\n")
        return answer(status, [], "<pre>\(echo)</pre>")
    }
}
