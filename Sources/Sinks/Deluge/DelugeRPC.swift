import Domain
import HTTP
import Reactor

/// The calls portsync makes to Deluge's Web UI (`deluge/ui/web/json_api.py`), as pure functions
/// from values to bodies and back. `Content-Type` must be `application/json` exactly (with a
/// charset, deluge-web 2.0.3 answers error 5); each call has its own `id`. Never
/// `core.test_listen_port` (it asks an outside server).
public enum DelugeRPC {
    public static let path = "/json"
    public static let contentType = "application/json"
    /// The session cookie. Its Path is `<base>json` up to 2.1 and `<base>` from 2.2 on (auth.py;
    /// `base` is deluge-web's web root or the `X-Deluge-Base` a proxy sends); it is kept whatever
    /// its Path says and sent to the one endpoint portsync calls, which deluge-web also serves
    /// outside that path (`/json` beside `/<base>/json`).
    public static let cookieName = "_session_id"

    /// The calls, with their parameters.
    public enum Call: Equatable, Sendable {
        case login(Secret)
        case connected
        case hosts
        case connect(hostID: String)
        /// `core.get_config_values ["listen_ports", "random_port"]`: what a sync reads.
        case readPorts
        /// `core.set_config [{"listen_ports": [P, P], "random_port": false}]`: Deluge listens on
        /// every port of the range, so both ends are the port.
        case writePorts(Port)
        /// `core.get_config_value ["listen_ports"]`: the read-back.
        case verifyPorts
        /// `core.get_session_state`: the ids of every torrent.
        case torrents
        case reannounce([String])

        public var method: String {
            switch self {
            case .login: "auth.login"
            case .connected: "web.connected"
            case .hosts: "web.get_hosts"
            case .connect: "web.connect"
            case .readPorts: "core.get_config_values"
            case .writePorts: "core.set_config"
            case .verifyPorts: "core.get_config_value"
            case .torrents: "core.get_session_state"
            case .reannounce: "core.force_reannounce"
            }
        }

        /// Whether deluge-web hands it to its daemon (and so answers "Unknown method" when it
        /// is not connected to one, and nothing at all when its daemon went away unnoticed).
        public var isCore: Bool { method.hasPrefix("core.") }

        var params: [JSONValue] {
            switch self {
            case .login(let password): [.string(password.value)]
            case .connected, .hosts, .torrents: []
            case .connect(let id): [.string(id)]
            case .readPorts: [.array([.string("listen_ports"), .string("random_port")])]
            case .writePorts(let port):
                [.object(["listen_ports": .array([.number(Double(port.value)), .number(Double(port.value))]), "random_port": .bool(false)])]
            case .verifyPorts: [.string("listen_ports")]
            case .reannounce(let ids): [.array(ids.map { .string($0) })]
            }
        }
    }

    /// `{"id":…,"method":…,"params":[…]}`.
    /// The POST of `call` with the session cookie (never with the login).
    public static func request(_ call: Call, id: Int, url: HTTPURL, cookie: String?) -> HTTPRequest {
        var headers = HTTPHeaders.request(to: url, ["Content-Type": contentType])
        if let cookie, call.method != "auth.login" { headers.add("Cookie", cookie) }
        return HTTPRequest(method: "POST", target: target(url), headers: headers, body: body(call, id: id))
    }

    /// `/json` under the URL's base path; a URL that already ends in `/json` (as Deluge's own
    /// JSON-RPC documentation writes it) is the endpoint itself.
    public static func target(_ url: HTTPURL) -> String {
        url.basePath.hasSuffix(path) ? url.basePath : url.target(path)
    }

    public static func body(_ call: Call, id: Int) -> [UInt8] {
        Array(JSONValue.object(["method": .string(call.method), "params": .array(call.params), "id": .number(Double(id))]).serialized.utf8)
    }

    /// A parsed answer: a result, or deluge-web's error.
    public enum Answer: Equatable, Sendable {
        case result(JSONValue)
        /// 1 "Not authenticated", 2 "Unknown method", 3 an exception, 4 RPC failure, 5 a bad request.
        case error(code: Int, message: String)
    }

    /// Parses an answer to the call with `id`; the error says what is wrong with it, quoting at
    /// most an excerpt.
    public static func parse(_ body: [UInt8], id: Int) -> Result<Answer, AnswerError> {
        let members: [String: JSONValue]
        switch JSONValue.object(body) {
        case .success(let object): members = object
        case .failure(let why):
            return .failure(AnswerError("\(why): \"\(String(decoding: body.prefix(1024), as: UTF8.self).oneLine(limit: 80))\"", kind: "not JSON"))
        }
        if let error = members["error"], error != .null {
            return .success(.error(code: error["code"]?.integer ?? 0, message: (error["message"]?.string ?? error.excerpt).oneLine(limit: 120)))
        }
        guard members["id"]?.integer == id else {
            return .failure(AnswerError("has id \(members["id"]?.excerpt ?? "(none)"), not \(id)", kind: "another id"))
        }
        return .success(.result(members["result"] ?? .null))
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

    /// A daemon in deluge-web's host list: `web.get_hosts` answers `[[id, host, port, user], …]`.
    public struct Host: Equatable, Sendable, CustomStringConvertible {
        public let id: String
        public let host: String
        public let port: Int

        public var description: String { "\(host):\(port)" }

        public static func list(_ result: JSONValue) -> [Host]? {
            result.array?.compactMap { entry in
                guard let fields = entry.array, fields.count >= 3, let id = fields[0].string, let host = fields[1].string,
                      let port = fields[2].integer else { return nil }
                return Host(id: id, host: host, port: port)
            }
        }
    }

    /// `[P, P]` as Deluge keeps `listen_ports`; nil for anything else.
    public static func ports(_ value: JSONValue?) -> (low: Int, high: Int)? {
        guard let pair = value?.array, pair.count == 2, let low = pair[0].integer, let high = pair[1].integer else { return nil }
        return (low, high)
    }
}
