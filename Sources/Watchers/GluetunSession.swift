import Reactor

/// How the Gluetun poller reaches Gluetun's control server.
public struct GluetunSettings: Equatable, Sendable {
    public var url: HTTPURL
    /// Sent as `X-API-Key`.
    public var apiKey: Secret?
    /// HTTP basic authentication, when a user name is set.
    public var username: String?
    public var password: Secret?
    public var pollInterval: Duration
    /// Which of several forwarded ports: 0 = the first.
    public var portIndex: Int
    /// After a refusal (401), how long before asking again: refusals do not fix themselves.
    public var authRetryDelay: Duration
    public var requestTimeout: Duration

    public init(url: HTTPURL, apiKey: Secret? = nil, username: String? = nil, password: Secret? = nil,
                pollInterval: Duration = .seconds(10), portIndex: Int = 0, authRetryDelay: Duration = .seconds(300),
                requestTimeout: Duration = .seconds(10)) {
        self.url = url
        self.apiKey = apiKey
        self.username = username
        self.password = password
        self.pollInterval = pollInterval
        self.portIndex = portIndex
        self.authRetryDelay = authRetryDelay
        self.requestTimeout = requestTimeout
    }
}

/// Gluetun's answer: `{"port":N}`, `{"ports":[…]}` or both (unreleased versions). Port 0, null
/// or an empty list mean no port yet.
public enum GluetunAnswer {
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public static func ports(_ body: [UInt8]) throws(ParseError) -> [Port] {
        guard let value = try? JSONValue.parse(body), case .object = value else {
            throw ParseError(message: "not a JSON object: \"\(HTTPResponse(status: 200, body: body).bodyExcerpt)\"")
        }
        if let list = value["ports"]?.array {
            let ports = list.compactMap { $0.integer.flatMap(Port.init) }
            guard ports.count == list.count || list.allSatisfy({ $0.integer == 0 }) else {
                throw ParseError(message: "\"ports\" holds something that is not a port: \(value["ports"]!.serialized)")
            }
            if !ports.isEmpty { return ports }
        }
        switch value["port"] {
        case .none, .some(.null):
            guard value["ports"] != nil else { throw ParseError(message: "neither \"port\" nor \"ports\" in \(value.serialized)") }
            return []
        case .some(let port):
            guard let number = port.integer, (0...65535).contains(number) else {
                throw ParseError(message: "\"port\" is not a port: \(port.serialized)")
            }
            return Port(number).map { [$0] } ?? []
        }
    }
}

/// The Gluetun poller's logic, with no I/O: it asks `GET /v1/portforward` (v3.41+), falls back
/// to `/v1/openvpn/portforwarded` (v3.40 and older) on a 404, follows a redirect (v3.41 answers
/// the old route with 301), and reports the port whenever it changes. A refusal (401) is said
/// once, clearly, and asked again only after `authRetryDelay`: no hammering.
public struct GluetunSession {
    public enum Input {
        case start
        case deadlineReached
        case responseReceived(HTTPResponse)
        case requestFailed(HTTPClientError)
    }

    public enum Effect: Equatable {
        case send(HTTPRequest)
        /// The ports now forwarded (empty: none yet).
        case ports([Port])
        case log(LogLevel, String)
    }

    public static let currentRoute = "/v1/portforward"
    public static let legacyRoute = "/v1/openvpn/portforwarded"

    public let settings: GluetunSettings
    public private(set) var route = GluetunSession.currentRoute
    public private(set) var nextDeadline: Instant?
    private var inFlight: String?
    private var redirects = 0
    private var triedLegacy = false
    public private(set) var lastProblem: String?
    /// The last answer's ports (nil: no answer yet).
    public private(set) var lastPorts: [Port]?
    /// The last answer was a refusal (401/403).
    public private(set) var refused = false
    private let jitter: () -> Double

    /// `jitter`: a number in -1...1 for each wait (spreads polls by up to ±10 %).
    public init(settings: GluetunSettings, jitter: @escaping () -> Double = { Double.random(in: -1...1) }) {
        self.settings = settings
        self.jitter = jitter
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .start:
            ask(route, &effects)
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now, inFlight == nil else { break }
            nextDeadline = nil
            redirects = 0
            ask(route, &effects)
        case .responseReceived(let response):
            guard let asked = inFlight else { break }
            inFlight = nil
            answered(response, to: asked, now, &effects)
        case .requestFailed(let error):
            guard inFlight != nil else { break }
            inFlight = nil
            problem("Gluetun's control server at \(settings.url) \(error.isUnreachable ? "is unreachable" : "failed"): \(error)", &effects)
            schedule(now, settings.pollInterval)
        }
        return effects
    }

    private mutating func ask(_ path: String, _ effects: inout [Effect]) {
        inFlight = path
        var headers: HTTPHeaders = ["Host": settings.url.hostHeader, "User-Agent": "portsync/0.1", "Accept": "application/json"]
        if let key = settings.apiKey { headers.add("X-API-Key", key.value) }
        if let username = settings.username {
            headers.add("Authorization", "Basic " + Base64.encode(Array("\(username):\(settings.password?.value ?? "")".utf8)))
        }
        effects.append(.send(HTTPRequest(method: "GET", target: settings.url.target(path), headers: headers)))
    }

    private mutating func answered(_ response: HTTPResponse, to path: String, _ now: Instant, _ effects: inout [Effect]) {
        switch response.status {
        case 200:
            refused = false
            do {
                let ports = try GluetunAnswer.ports(response.body)
                if lastProblem != nil { effects.append(.log(.info, "Gluetun's control server answers again")) }
                lastProblem = nil
                if ports != lastPorts {
                    lastPorts = ports
                    effects.append(.log(.info, ports.isEmpty ? "Gluetun has no forwarded port yet"
                                                             : "Gluetun forwards \(ports.map(\.description).joined(separator: ", "))"))
                    effects.append(.ports(ports))
                }
            } catch {
                problem("GET \(path): \(error)", &effects)
            }
            schedule(now, settings.pollInterval)
        case 301, 302, 307, 308:
            guard redirects < 3, let location = response.headers["Location"], let target = Self.path(of: location) else {
                problem("GET \(path) answered \(response.status) without a usable Location", &effects)
                return schedule(now, settings.pollInterval)
            }
            redirects += 1
            if target == Self.currentRoute { route = target }
            ask(target, &effects)
        case 404 where path == Self.currentRoute && !triedLegacy:
            // Gluetun v3.40 and older know only the old route.
            triedLegacy = true
            route = Self.legacyRoute
            effects.append(.log(.info, "\(Self.currentRoute) is not there (Gluetun before v3.41); asking \(Self.legacyRoute)"))
            ask(route, &effects)
        case 401, 403:
            refused = true
            let how = settings.apiKey != nil ? "the API key ([gluetun].api_key_file)" : settings.username != nil
                ? "the user name and password ([gluetun].username, password_file)" : "no credentials (set [gluetun].api_key_file)"
            problem("Gluetun's control server refused GET \(path) (\(response.status)) with \(how); its auth config.toml needs a role with \"GET \(Self.currentRoute)\" and \"GET \(Self.legacyRoute)\" for them. Asking again in \(settings.authRetryDelay.components.seconds / 60) min", &effects)
            nextDeadline = now + settings.authRetryDelay
        default:
            problem("GET \(path) answered \(response.status) \"\(response.bodyExcerpt)\"; is \(settings.url) Gluetun's control server?", &effects)
            schedule(now, settings.pollInterval)
        }
    }

    private mutating func problem(_ message: String, _ effects: inout [Effect]) {
        effects.append(.log(message == lastProblem ? .debug : .error, message))
        lastProblem = message
    }

    private mutating func schedule(_ now: Instant, _ base: Duration) {
        nextDeadline = now + base + base * (jitter() / 10)
    }

    /// The path of a Location header: absolute ("http://host/v1/x") or not ("/v1/x").
    static func path(of location: String) -> String? {
        // It goes into the request line as it is: no space, control or non-ASCII character.
        guard location.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return nil }
        if location.hasPrefix("/") { return location }
        guard let url = try? HTTPURL(parsing: location) else { return nil }
        return url.basePath.isEmpty ? "/" : url.basePath
    }
}
