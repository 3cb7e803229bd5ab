import Domain
import HTTP
import Reactor

/// qBittorrent's WebUI API as portsync uses it, with no I/O: the requests (headers, login form,
/// preferences form), what a login answer means, and the answers decoded. The sink's session
/// speaks through it.
public struct QBittorrentAPI: Sendable {
    public enum Endpoint: String, Sendable {
        case login = "/api/v2/auth/login"
        case webAPIVersion = "/api/v2/app/webapiVersion"
        case version = "/api/v2/app/version"
        case interfaces = "/api/v2/app/networkInterfaceList"
        case preferences = "/api/v2/app/preferences"
        case setPreferences = "/api/v2/app/setPreferences"
        case reannounce = "/api/v2/torrents/reannounce"
        case torrents = "/api/v2/torrents/info"
        case trackers = "/api/v2/torrents/trackers"
        case transferInfo = "/api/v2/transfer/info"

        public var method: String { [.login, .setPreferences, .reannounce].contains(self) ? "POST" : "GET" }
    }

    /// What a login answer means.
    public enum LoginOutcome: Equatable, Sendable {
        /// `cookie`: `name=value` of the session cookie, when one was sent.
        case loggedIn(cookie: String?)
        /// Wrong username or password (`status` 200 "Fails." or 401).
        case rejected(status: Int)
        /// qBittorrent has banned this IP after too many failed logins.
        case banned
        /// Another 403.
        case refused
        case unexpected
    }

    public let settings: QBittorrentSettings

    public init(settings: QBittorrentSettings) {
        self.settings = settings
    }

    /// A request to `endpoint`; `form` for a POST, `query` (already encoded) for a GET;
    /// `cookie` is the session's (never on a login).
    public func request(_ endpoint: Endpoint, cookie: String?, form: [(String, String)] = [], query: String = "") -> HTTPRequest {
        var headers = HTTPHeaders.request(to: settings.url)
        if case .apiKey(let key) = settings.authentication { headers.add("Authorization", "Bearer \(key.value)") }
        if let cookie, endpoint != .login { headers.add("Cookie", cookie) }
        let target = settings.url.target(endpoint.rawValue) + (query.isEmpty ? "" : "?\(query)")
        return endpoint.method == "POST" ? .form(target, fields: form, headers: headers)
                                         : HTTPRequest(method: "GET", target: target, headers: headers)
    }

    /// The login form, when the settings have a password.
    public func login() -> HTTPRequest? {
        guard case .password(let username, let password) = settings.authentication else { return nil }
        return request(.login, cookie: nil, form: [("username", username), ("password", password.value)])
    }

    public func setPreferences(_ fields: [String: JSONValue], cookie: String?) -> HTTPRequest {
        request(.setPreferences, cookie: cookie, form: [("json", JSONValue.object(fields).serialized)])
    }

    /// 4.x-5.1: 200 "Ok." or "Fails."; 5.2+: 204 or 401. The cookie's name differs too (SID,
    /// QBT_SID_<port>): it is taken as sent. Success is a 2xx that is not "Fails."; the first
    /// authenticated call then confirms it.
    public static func loginOutcome(_ response: HTTPResponse) -> LoginOutcome {
        let body = response.text.trimmingSpaces
        switch response.status {
        case _ where response.status == 204 || (response.status == 200 && body != "Fails."):
            return .loggedIn(cookie: response.cookies.first.map { "\($0.name)=\($0.value)" })
        case 200, 401: return .rejected(status: response.status)
        case 403 where body.lowercased().contains("banned"): return .banned
        case 403: return .refused
        default: return .unexpected
        }
    }

    /// `/app/version`'s answer, made one printable line; nil when it is not a version.
    public static func version(_ response: HTTPResponse) -> String? {
        let version = response.text.trimmingSpaces
        // A byte test: String.contains(String) would load _StringProcessing at start.
        guard !version.isEmpty, version.count < 40, !version.utf8.contains(UInt8(ascii: "<")) else { return nil }
        return version.oneLine(limit: 40)
    }

    /// The interface names in `/app/networkInterfaceList`'s answer; nil when it is not a list.
    public static func interfaceNames(_ response: HTTPResponse) -> [String]? {
        (try? JSONValue.parse(response.body))?.array?.compactMap { $0["value"]?.string }
    }

    /// The preferences in `/app/preferences`'s answer, or what is wrong with it.
    public static func preferences(_ response: HTTPResponse) -> Result<Preferences, PreferencesError> {
        let object: JSONValue
        switch JSONValue.object(response.body, members: Preferences.members) {
        case .success(let members): object = .object(members)
        case .failure(let why): return .failure(.notAnObject(why, response.bodyExcerpt))
        }
        guard let listenPort = object["listen_port"]?.integer else { return .failure(.noListenPort) }
        return .success(Preferences(listenPort: listenPort, randomPort: object["random_port"]?.bool == true,
                                    upnp: object["upnp"]?.bool == true, interface: object["current_network_interface"]?.string,
                                    announcePort: object["announce_port"]?.integer ?? 0))
    }

    /// The preferences portsync looks at.
    public struct Preferences: Equatable, Sendable {
        /// The members of qBittorrent's answer read here; the other 170 are checked, not built.
        static let members: Set<String> = ["listen_port", "random_port", "upnp", "current_network_interface", "announce_port"]

        public var listenPort: Int
        public var randomPort: Bool
        public var upnp: Bool
        /// `current_network_interface`; "" or nil: any.
        public var interface: String?
        /// `announce_port` (qBittorrent 5.1+, Advanced: "Port reported to trackers"): when not 0,
        /// trackers are told this port instead of `listen_port`. 0 when absent (older versions).
        public var announcePort: Int = 0

        /// Why trackers would hear of another port than `port`, when they would: portsync does
        /// not own `announce_port` (it takes effect only after a restart of qBittorrent), so it says so.
        public func announceProblem(port: Port) -> String? {
            guard announcePort != 0, announcePort != Int(port.value) else { return nil }
            return "qBittorrent's announce_port is \(announcePort): trackers are told that port, not \(port) (Advanced → \"Port reported to trackers\"); set it to 0 and restart qBittorrent"
        }

        /// What differs from what the settings want on `port`, in words ("listen_port 8999").
        public func differences(from settings: QBittorrentSettings, port: Port) -> [String] {
            var differences: [String] = []
            if listenPort != Int(port.value) { differences.append("listen_port \(listenPort)") }
            if randomPort { differences.append("random_port true") }
            if settings.disableUPnP && upnp { differences.append("upnp true") }
            if let wanted = settings.interface, interface != wanted { differences.append("interface \"\(interface ?? "")\"") }
            return differences
        }
    }

    public enum PreferencesError: Error, Equatable, CustomStringConvertible {
        case notAnObject(JSONValue.NotAnObject, String)
        case noListenPort

        public var description: String {
            switch self {
            case .notAnObject(let why, let excerpt): "answer to GET \(Endpoint.preferences.rawValue) \(why): \"\(excerpt)\""
            case .noListenPort: "answer to GET \(Endpoint.preferences.rawValue) has no listen_port"
            }
        }

        /// What is wrong, without the quote: the same for every answer wrong the same way.
        public var kind: String {
            switch self {
            case .notAnObject: "preferences not an object"
            case .noListenPort: "preferences without listen_port"
            }
        }
    }

    /// `transfer/info`'s `connection_status` and, from 5.1 on, `last_external_address_v4` (an
    /// empty string or a missing member: not known). nil when the answer is not that.
    public static func connection(_ response: HTTPResponse) -> ClientConnection? {
        guard let value = try? JSONValue.parse(response.body), let status = value["connection_status"]?.string,
              let state = ConnectionStatus(rawValue: status) else { return nil }
        return ClientConnection(state: state, externalAddress: value["last_external_address_v4"]?.string.flatMap(IPv4Address.init))
    }

    /// One torrent of `/torrents/info?limit=1`'s answer: whose trackers to look at after a
    /// re-announce. nil when the answer is not a list; `.none` inside when there are no torrents.
    public static func firstTorrent(_ response: HTTPResponse) -> (hash: String, name: String)?? {
        guard let list = (try? JSONValue.parse(response.body))?.array else { return nil }
        guard let first = list.first else { return .some(nil) }
        guard let hash = first["hash"]?.string, !hash.isEmpty, hash.utf8.allSatisfy(Self.isHexDigit) else { return nil }
        return (hash, (first["name"]?.string ?? hash).oneLine(limit: 60))
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }

    /// `/torrents/trackers`'s answer summed up; nil when it is not a list of trackers.
    public static func trackerReport(_ response: HTTPResponse, torrent: String, port: Port) -> TrackerReport? {
        guard let list = (try? JSONValue.parse(response.body))?.array else { return nil }
        var report = TrackerReport(port: port, torrent: torrent)
        for tracker in list {
            // DHT, PeX and LSD are listed as pseudo-trackers of tier -1 (and "** [DHT] **" URLs).
            guard let status = tracker["status"]?.integer else { return nil }
            if tracker["tier"]?.integer == -1 || tracker["url"]?.string?.hasPrefix("** [") == true { continue }
            switch status {
            case 2: report.working += 1
            case 3: report.updating += 1
            case 4:
                report.notWorking += 1
                if report.message == nil, let message = tracker["msg"]?.string, !message.isEmpty { report.message = message.oneLine(limit: 120) }
            default: report.notContacted += 1
            }
        }
        return report
    }

    /// What one torrent's trackers said a few seconds after they were told of `port`.
    public struct TrackerReport: Equatable, Sendable, CustomStringConvertible {
        public var port: Port
        public var torrent: String
        public var working = 0
        public var updating = 0
        public var notWorking = 0
        public var notContacted = 0
        /// The first not-working tracker's message.
        public var message: String?

        public init(port: Port, torrent: String) {
            self.port = port
            self.torrent = torrent
        }

        public var trackers: Int { working + updating + notWorking + notContacted }

        public var description: String {
            guard trackers > 0 else { return "torrent \"\(torrent)\" has no trackers to tell of port \(port)" }
            let parts = [(working, "working"), (updating, "still updating"), (notWorking, "not working"), (notContacted, "not contacted")]
                .filter { $0.0 > 0 }.map { "\($0.0) \($0.1)" }
            let message = message.map { " (\"\($0)\")" } ?? ""
            return "the trackers of \"\(torrent)\" after being told of port \(port): \(parts.joined(separator: ", "))\(message)"
        }
    }
}
