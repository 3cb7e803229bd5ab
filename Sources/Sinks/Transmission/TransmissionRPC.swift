import Domain
import HTTP
import Reactor

/// The calls portsync makes to Transmission's RPC (`docs/rpc-spec.md`), as pure functions
/// from values to bodies and back. Never `port-test` (it asks Transmission's outside checker)
/// and never `"ids": "all"` (it matches nothing; no `ids` means every torrent).
///
/// Two dialects: the legacy one (`{"method":"session-get","arguments":…,"tag":N}`, answered
/// `{"arguments":…,"result":"success","tag":N}`), which every version speaks (4.1 still, as
/// deprecated), and JSON-RPC 2.0 with snake_case names (`{"jsonrpc":"2.0","method":"session_get",
/// "params":…,"id":N}`, answered `{"id":N,"jsonrpc":"2.0","result":…}` or with an `error`
/// object), which Transmission 4.1 (RPC 6.0.0) brought. The 409 of the CSRF handshake says
/// which: from 4.1 on it carries `X-Transmission-Rpc-Version`.
public enum TransmissionRPC {
    public static let path = "/transmission/rpc"
    /// The CSRF token: a 409 carries it, every request sends it back.
    public static let sessionIDHeader = "X-Transmission-Session-Id"
    /// The RPC's semantic version (`rpc_version_semver`), on the 409 since 6.0.0 (Transmission 4.1).
    public static let rpcVersionHeader = "X-Transmission-Rpc-Version"
    /// From this RPC major version on (6.0.0, Transmission 4.1) JSON-RPC 2.0 is spoken.
    public static let jsonRPCMajorVersion = 6

    public enum Dialect: Equatable, Sendable, CustomStringConvertible {
        /// `method`/`arguments`/`tag`, kebab-case names: every version.
        case legacy
        /// JSON-RPC 2.0, snake_case names: Transmission 4.1 and later.
        case jsonRPC

        public var description: String {
            switch self {
            case .legacy: "the legacy RPC"
            case .jsonRPC: "JSON-RPC 2.0"
            }
        }

        /// The dialect a 409's `X-Transmission-Rpc-Version` names; legacy without one (before
        /// 4.1). Nil for a value that is not a semantic version (`6.0.1`, `6.1.0-dev`).
        public init?(rpcVersionHeader value: String?) {
            guard let value = value?.trimmingSpaces else {
                self = .legacy
                return
            }
            let core = value.prefix { $0 != "-" && $0 != "+" }
            let parts = core.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.count <= 9 && $0.allSatisfy(\.isASCIIDigit) }),
                  let major = Int(parts[0]) else { return nil }
            self = major >= TransmissionRPC.jsonRPCMajorVersion ? .jsonRPC : .legacy
        }

        /// A name of the legacy RPC ("peer-port", "session-get") in this dialect.
        public func name(_ kebab: String) -> String {
            self == .jsonRPC ? kebab.replacingHyphens : kebab
        }

        /// The version field a probe reads (in the legacy spelling): the integer `rpc-version`
        /// (legacy), the semantic `rpc_version_semver` (JSON-RPC, where `rpc_version` is deprecated).
        public var versionField: String { self == .jsonRPC ? "rpc-version-semver" : "rpc-version" }

        /// The RPC version a probe read, for messages: "rpc-version 16",
        /// "rpc_version_semver 6.0.1, JSON-RPC 2.0".
        public func describe(rpcVersion: String) -> String {
            "\(name(versionField)) \(rpcVersion)\(self == .jsonRPC ? ", \(self)" : "")"
        }
    }

    /// A request body: `{"arguments":…,"method":…,"tag":…}` or `{"id":…,"jsonrpc":"2.0","method":…,"params":…}`,
    /// `method` and the argument names given in the legacy spelling.
    public static func body(_ dialect: Dialect, method: String, arguments: [String: JSONValue], id: Int) -> [UInt8] {
        let call: [String: JSONValue]
        switch dialect {
        case .legacy:
            call = ["method": .string(method), "arguments": .object(arguments), "tag": .number(Double(id))]
        case .jsonRPC:
            call = ["jsonrpc": .string("2.0"), "method": .string(dialect.name(method)),
                    "params": .object(Dictionary(uniqueKeysWithValues: arguments.map { (dialect.name($0.key), $0.value) })), "id": .number(Double(id))]
        }
        return Array(JSONValue.object(call).serialized.utf8)
    }

    /// The POST of `body` with Basic auth (when a password is set) and the session id.
    public static func request(_ body: [UInt8], settings: ClientSettings, sessionID: String?) -> HTTPRequest {
        var headers = HTTPHeaders.request(to: settings.url, ["Content-Type": "application/json"])
        if let password = settings.password { headers.addBasicAuthorization(user: settings.username, password: password.value) }
        if let sessionID { headers.add(sessionIDHeader, sessionID) }
        return HTTPRequest(method: "POST", target: settings.url.target(path), headers: headers, body: body)
    }

    /// `session-get` of the fields in `names` (legacy spelling), in `dialect`.
    static func sessionGet(_ dialect: Dialect, _ names: [String], id: Int) -> [UInt8] {
        body(dialect, method: "session-get", arguments: ["fields": .array(names.map { .string(dialect.name($0)) })], id: id)
    }

    /// The first call of a session: the RPC version and the version, and what a sync reads.
    public static func probe(_ dialect: Dialect, id: Int) -> [UInt8] {
        sessionGet(dialect, [dialect.versionField, "version", "peer-port", "peer-port-random-on-start", "port-forwarding-enabled"], id: id)
    }

    /// What a sync reads: the port and the two settings that would move it.
    public static func read(_ dialect: Dialect, id: Int) -> [UInt8] {
        sessionGet(dialect, ["peer-port", "peer-port-random-on-start", "port-forwarding-enabled"], id: id)
    }

    /// Sets the port, with random-port-on-start and port forwarding (UPnP/NAT-PMP, which cannot
    /// reach a VPN's gateway) off.
    public static func write(_ dialect: Dialect, port: Port, id: Int) -> [UInt8] {
        body(dialect, method: "session-set", arguments: ["peer-port": .number(Double(port.value)),
                                                         "peer-port-random-on-start": .bool(false),
                                                         "port-forwarding-enabled": .bool(false)], id: id)
    }

    /// The read-back after a write: the port alone.
    public static func verify(_ dialect: Dialect, id: Int) -> [UInt8] {
        sessionGet(dialect, ["peer-port"], id: id)
    }

    /// A parsed answer to the call with the id sent.
    public enum Answer: Equatable, Sendable {
        /// It succeeded: the `arguments` (legacy) or `result` (JSON-RPC) object.
        case succeeded(Fields)
        /// It failed, as Transmission says: the legacy `result` string, or the JSON-RPC error
        /// (`error -32601 "Method not found"`, with its `data.error_string` when there is one).
        case failed(String)
    }

    /// The fields of a successful answer.
    public struct Fields: Equatable, Sendable {
        public let members: [String: JSONValue]

        /// A field under either spelling, so an answer reads the same whichever the daemon used.
        public func value(_ kebab: String) -> JSONValue? { members[kebab] ?? members[kebab.replacingHyphens] }

        /// The RPC version a probe in `dialect` read, as text ("16", "6.0.1"); nil without one.
        public func rpcVersion(_ dialect: Dialect) -> String? {
            value(dialect.versionField).flatMap { $0.integer.map(String.init) ?? $0.string?.oneLine(limit: 20) }
        }
    }

    /// Parses an answer body in `dialect` to the call with `id`, strictly: the error says what
    /// is wrong with it (the wrong id, a result that is not an object, …), quoting at most an
    /// excerpt.
    public static func parse(_ body: [UInt8], dialect: Dialect, id: Int) -> Result<Answer, AnswerError> {
        let members: [String: JSONValue]
        switch JSONValue.object(body) {
        case .success(let object): members = object
        case .failure(let why):
            return .failure(AnswerError("\(why): \"\(String(decoding: body.prefix(1024), as: UTF8.self).oneLine(limit: 80))\"", kind: "not JSON"))
        }
        switch dialect {
        case .legacy: return parseLegacy(members, tag: id)
        case .jsonRPC: return parseJSONRPC(members, id: id)
        }
    }

    private static func parseLegacy(_ members: [String: JSONValue], tag: Int) -> Result<Answer, AnswerError> {
        guard let result = members["result"]?.string else {
            if members["jsonrpc"] != nil { return .failure(AnswerError("is JSON-RPC (\(JSONValue.object(members).excerpt)), not the legacy RPC asked for", kind: "JSON-RPC to a legacy call")) }
            return .failure(AnswerError("has no \"result\" string", kind: "no result"))
        }
        guard members["tag"]?.integer == tag else {
            return .failure(AnswerError("has tag \(members["tag"]?.excerpt ?? "(none)"), not \(tag)", kind: "another tag"))
        }
        guard case .object(let arguments)? = members["arguments"] else {
            return .failure(AnswerError("has no \"arguments\" object", kind: "no arguments"))
        }
        return .success(result == "success" ? .succeeded(Fields(members: arguments)) : .failed("\"\(result.oneLine(limit: 80))\""))
    }

    private static func parseJSONRPC(_ members: [String: JSONValue], id: Int) -> Result<Answer, AnswerError> {
        guard members["jsonrpc"] == .string("2.0") else {
            let what = members["jsonrpc"].map { "has jsonrpc \($0.excerpt), not \"2.0\"" }
                ?? (members["tag"] != nil || members["arguments"] != nil ? "is a legacy answer, not JSON-RPC 2.0" : "has no \"jsonrpc\": \"2.0\"")
            return .failure(AnswerError(what, kind: "not JSON-RPC 2.0"))
        }
        let result = members["result"], error = members["error"]
        if result != nil && error != nil { return .failure(AnswerError("has both \"result\" and \"error\"", kind: "result and error")) }
        if let error {
            // An error about a request whose id could not be read has id null (JSON-RPC 2.0 §5).
            guard members["id"]?.integer == id || members["id"] == .null else {
                return .failure(AnswerError("has id \(members["id"]?.excerpt ?? "(none)"), not \(id)", kind: "another id"))
            }
            guard let code = error["code"]?.integer, let message = error["message"]?.string else {
                return .failure(AnswerError("has an \"error\" that is not a JSON-RPC error object: \(error.excerpt)", kind: "malformed error"))
            }
            let detail = error["data"]?["error_string"]?.string.map { ": \($0.oneLine(limit: 80))" } ?? ""
            return .success(.failed("error \(code) \"\(message.oneLine(limit: 80))\"\(detail)"))
        }
        guard members["id"]?.integer == id else {
            return .failure(AnswerError("has id \(members["id"]?.excerpt ?? "(none)"), not \(id)", kind: "another id"))
        }
        guard let result else { return .failure(AnswerError("has neither \"result\" nor \"error\"", kind: "no result")) }
        guard case .object(let fields) = result else {
            return .failure(AnswerError("has a \"result\" that is not an object: \(result.excerpt)", kind: "result not an object"))
        }
        return .success(.succeeded(Fields(members: fields)))
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

extension Character {
    fileprivate var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
