import Domain
import HTTP
import Reactor

/// The calls portsync makes to Transmission's RPC (`docs/rpc-spec.md`), as pure functions
/// from values to bodies and back. Never `port-test` (it asks Transmission's outside checker)
/// and never `"ids": "all"` (it matches nothing; no `ids` means every torrent).
public enum TransmissionRPC {
    public static let path = "/transmission/rpc"
    /// The CSRF token: a 409 carries it, every request sends it back.
    public static let sessionIDHeader = "X-Transmission-Session-Id"
    /// From this rpc-version on (Transmission 4.1) the names are snake_case; older ones are
    /// kebab-case (3.00 answers rpc-version 16 and ignores, with "success", names it does not
    /// know).
    public static let snakeCaseVersion = 18

    /// The method and field names of one rpc-version.
    public struct Names: Equatable, Sendable {
        public let sessionGet: String
        public let sessionSet: String
        public let peerPort: String
        public let randomPortOnStart: String
        public let portForwarding: String

        public init(rpcVersion: Int) {
            let snake = rpcVersion >= TransmissionRPC.snakeCaseVersion
            func name(_ kebab: String) -> String { snake ? kebab.replacingHyphens : kebab }
            sessionGet = name("session-get")
            sessionSet = name("session-set")
            peerPort = name("peer-port")
            randomPortOnStart = name("peer-port-random-on-start")
            portForwarding = name("port-forwarding-enabled")
        }
    }

    /// A request body: `{"arguments":…,"method":…,"tag":…}`.
    public static func body(method: String, arguments: [String: JSONValue], tag: Int) -> [UInt8] {
        Array(JSONValue.object(["method": .string(method), "arguments": .object(arguments), "tag": .number(Double(tag))]).serialized.utf8)
    }

    /// The first call, before the rpc-version is known: kebab-case, which every version
    /// understands. Its answer also holds what a sync reads.
    /// The POST of `body` with Basic auth (when a password is set) and the session id.
    public static func request(_ body: [UInt8], settings: ClientSettings, sessionID: String?) -> HTTPRequest {
        var headers = HTTPHeaders.request(to: settings.url, ["Content-Type": "application/json"])
        if let password = settings.password { headers.addBasicAuthorization(user: settings.username, password: password.value) }
        if let sessionID { headers.add(sessionIDHeader, sessionID) }
        return HTTPRequest(method: "POST", target: settings.url.target(path), headers: headers, body: body)
    }

    public static func probe(tag: Int) -> [UInt8] {
        let fields = ["rpc-version", "version", "peer-port", "peer-port-random-on-start", "port-forwarding-enabled"]
        return body(method: "session-get", arguments: ["fields": .array(fields.map { .string($0) })], tag: tag)
    }

    /// What a sync reads: the port and the two settings that would move it.
    public static func read(_ names: Names, tag: Int) -> [UInt8] {
        let fields = [names.peerPort, names.randomPortOnStart, names.portForwarding]
        return body(method: names.sessionGet, arguments: ["fields": .array(fields.map { .string($0) })], tag: tag)
    }

    /// Sets the port, with random-port-on-start and port forwarding (UPnP/NAT-PMP, which cannot
    /// reach a VPN's gateway) off.
    public static func write(_ names: Names, port: Port, tag: Int) -> [UInt8] {
        body(method: names.sessionSet, arguments: [names.peerPort: .number(Double(port.value)),
                                                   names.randomPortOnStart: .bool(false),
                                                   names.portForwarding: .bool(false)], tag: tag)
    }

    /// The read-back after a write: the port alone.
    public static func verify(_ names: Names, tag: Int) -> [UInt8] {
        body(method: names.sessionGet, arguments: ["fields": .array([.string(names.peerPort)])], tag: tag)
    }

    /// A parsed answer: `result` is "success" or an error string.
    public struct Answer: Equatable, Sendable {
        public let result: String
        public let arguments: [String: JSONValue]
        public let tag: Int?

        /// A field under either spelling, so an answer reads the same whichever the daemon used.
        public func value(_ kebab: String) -> JSONValue? { arguments[kebab] ?? arguments[kebab.replacingHyphens] }
    }

    /// Parses an answer body; the error says what is wrong with it, quoting at most an excerpt.
    public static func parse(_ body: [UInt8]) -> Result<Answer, AnswerError> {
        let members: [String: JSONValue]
        switch JSONValue.object(body) {
        case .success(let object): members = object
        case .failure(let why):
            return .failure(AnswerError("\(why): \"\(String(decoding: body.prefix(1024), as: UTF8.self).oneLine(limit: 80))\"", kind: "not JSON"))
        }
        guard let result = members["result"]?.string else { return .failure(AnswerError("has no \"result\"", kind: "no result")) }
        var arguments: [String: JSONValue] = [:]
        if case .object(let fields)? = members["arguments"] { arguments = fields }
        return .success(Answer(result: result, arguments: arguments, tag: members["tag"]?.integer))
    }

    public struct AnswerError: Error, Equatable, CustomStringConvertible {
        public let description: String
        /// What is wrong, without the quote: the same for every answer wrong the same way.
        public let kind: String
        init(_ description: String, kind: String) {
            self.description = description
            self.kind = kind
        }
    }
}

extension String {
    /// "peer-port" → "peer_port".
    var replacingHyphens: String { String(map { $0 == "-" ? "_" : $0 }) }
}
