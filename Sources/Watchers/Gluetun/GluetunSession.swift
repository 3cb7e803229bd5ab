import Domain
import HTTP
import Reactor

/// How the Gluetun poller reaches Gluetun's control server.
public struct GluetunSettings: Equatable, Sendable {
    public var url: HTTPURL
    /// How an https server's certificate is checked.
    public var tls: TLSOptions
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

    public init(url: HTTPURL, tls: TLSOptions = TLSOptions(), apiKey: Secret? = nil, username: String? = nil, password: Secret? = nil,
                pollInterval: Duration = .seconds(10), portIndex: Int = 0, authRetryDelay: Duration = .seconds(300),
                requestTimeout: Duration = .seconds(10)) {
        self.url = url
        self.tls = tls
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
        let value: JSONValue
        switch JSONValue.object(body) {
        case .success(let members): value = .object(members)
        case .failure(let why): throw ParseError(message: "\(why): \"\(HTTPResponse(status: 200, body: body).bodyExcerpt)\"")
        }
        if let list = value["ports"]?.array {
            let ports = list.compactMap { $0.integer.flatMap(Port.init) }
            guard ports.count == list.count || list.allSatisfy({ $0.integer == 0 }) else {
                throw ParseError(message: "\"ports\" holds something that is not a port: \(JSONValue.array(list).excerpt)")
            }
            if !ports.isEmpty { return ports }
        }
        switch value["port"] {
        case .none, .some(.null):
            guard value["ports"] != nil else { throw ParseError(message: "neither \"port\" nor \"ports\" in \(value.excerpt)") }
            return []
        case .some(let port):
            guard let number = port.integer, (0...65535).contains(number) else {
                throw ParseError(message: "\"port\" is not a port: \(port.excerpt)")
            }
            return Port(number).map { [$0] } ?? []
        }
    }
}

/// The Gluetun poller's logic, with no I/O: it asks `GET /v1/portforward` (v3.41+) and reports
/// the port whenever it changes. When that route answers 404, or 401/403 (v3.40 checks roles
/// before routing, so a route it does not have is refused: see `GluetunTests.swift`), it asks
/// the other route, `/v1/openvpn/portforwarded`, with the same credentials, once in that poll,
/// and remembers whichever route answered. It follows a redirect (v3.41 answers the old route
/// with 301). Only a refusal on every route it asked is a refusal: said once, clearly, and asked
/// again only after `authRetryDelay`: no hammering.
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
    /// The API key and password in every form a server may echo them: out of every message.
    public let redaction: Redaction
    /// The route each poll asks first: the one that last answered.
    public private(set) var route = GluetunSession.currentRoute
    public private(set) var nextDeadline: Instant?
    private var inFlight: String?
    /// This poll's answers so far, in order.
    private var answers: [(path: String, status: Int)] = []
    private var redirects = 0
    /// The route that last answered with the ports (nil: none yet).
    private var answeredOn: String?
    public private(set) var lastProblem: String?
    private var lastProblemKind: String?
    /// The last answer's ports (nil: no answer yet).
    public private(set) var lastPorts: [Port]?
    /// The last poll ended in a refusal (401/403).
    public private(set) var refused = false
    private let jitter: () -> Double

    /// `jitter`: a number in -1...1 for each wait (spreads polls by up to ±10 %).
    public init(settings: GluetunSettings, jitter: @escaping () -> Double = { Double.random(in: -1...1) }) {
        self.settings = settings
        redaction = Redaction([settings.apiKey, settings.password], basicUser: settings.username)
        self.jitter = jitter
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .start:
            poll(&effects)
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now, inFlight == nil else { break }
            nextDeadline = nil
            poll(&effects)
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
        return effects.map { effect in
            guard case .log(let level, let message) = effect else { return effect }
            return .log(level, redaction(message))
        }
    }

    private mutating func poll(_ effects: inout [Effect]) {
        answers = []
        redirects = 0
        ask(route, &effects)
    }

    private mutating func ask(_ path: String, _ effects: inout [Effect]) {
        inFlight = path
        var headers = HTTPHeaders.request(to: settings.url, ["Accept": "application/json"])
        if let key = settings.apiKey { headers.add("X-API-Key", key.value) }
        if let username = settings.username { headers.addBasicAuthorization(user: username, password: settings.password?.value ?? "") }
        effects.append(.send(HTTPRequest(method: "GET", target: settings.url.target(path), headers: headers)))
    }

    private mutating func answered(_ response: HTTPResponse, to path: String, _ now: Instant, _ effects: inout [Effect]) {
        answers.append((path, response.status))
        switch response.status {
        case 200:
            refused = false
            do {
                let ports = try GluetunAnswer.ports(response.body)
                if lastProblem != nil { effects.append(.log(.info, "Gluetun's control server answers again")) }
                lastProblem = nil
                lastProblemKind = nil
                remember(path, &effects)
                if ports != lastPorts {
                    lastPorts = ports
                    effects.append(.log(.info, ports.isEmpty ? "Gluetun has no forwarded port yet"
                                                             : "Gluetun forwards \(ports.map(\.description).joined(separator: ", "))"))
                    effects.append(.ports(ports))
                }
            } catch {
                problem("GET \(path): \(error)", kind: "GET \(path) unreadable", &effects)
            }
            schedule(now, settings.pollInterval)
        case 301, 302, 307, 308:
            guard redirects < 3, let location = response.headers["Location"], let target = Self.path(of: location) else {
                problem("GET \(path) answered \(response.status) without a usable Location", &effects)
                return schedule(now, settings.pollInterval)
            }
            // v3.41 sends the old route to the new one: when that has just refused, so would the redirect.
            if answers.contains(where: { $0.path == target && Self.isRefusal($0.status) }) { return refuse(now, &effects) }
            redirects += 1
            ask(target, &effects)
        case let status where (Self.isRefusal(status) || Self.isMissingRoute(response)) && untriedRoute(after: path) != nil:
            // v3.40 has no /v1/portforward and refuses it (401) before routing, since no role can
            // list it; v3.39 and older, with no auth, answer 400 "… not found" for it; a future
            // Gluetun may drop the old route (404). Same credentials, once a poll.
            let other = untriedRoute(after: path)!
            effects.append(.log(.debug, "GET \(path) answered \(response.status); asking \(other) with the same credentials"))
            ask(other, &effects)
        case 401, 403:
            refuse(now, &effects)
        case _ where Self.isMissingRoute(response) && answers.contains(where: { Self.isRefusal($0.status) }):
            // The route that exists refused; the one that is missing says nothing about the credentials.
            refuse(now, &effects)
        default:
            problem("GET \(path) answered \(response.status) \"\(response.bodyExcerpt)\"; is \(settings.url) Gluetun's control server?",
                    kind: "GET \(path) answered \(response.status)", &effects)
            schedule(now, settings.pollInterval)
        }
    }

    /// Every route asked in this poll refused (or was missing): the credentials are wrong, or no role lists them.
    private mutating func refuse(_ now: Instant, _ effects: inout [Effect]) {
        refused = true
        let refusals = answers.filter { Self.isRefusal($0.status) }.map { "GET \($0.path) (\($0.status))" }.joined(separator: " and ")
        let how = settings.apiKey != nil ? "the API key ([gluetun].api_key_file)" : settings.username != nil
            ? "the user name and password ([gluetun].username, password_file)" : "no credentials (set [gluetun].api_key_file)"
        problem("Gluetun's control server refused \(refusals) with \(how); its auth config.toml needs a role for them listing \"GET \(Self.legacyRoute)\" and, on v3.41 and later, \"GET \(Self.currentRoute)\". Asking again in \(settings.authRetryDelay.components.seconds / 60) min", &effects)
        nextDeadline = now + settings.authRetryDelay
    }

    /// Polls go first to the route that answered; a change of route is said once.
    private mutating func remember(_ path: String, _ effects: inout [Effect]) {
        guard path != answeredOn, Self.otherRoute(path) != nil else { return }
        if path == Self.legacyRoute {
            effects.append(.log(.info, "Gluetun answers on \(path) (v3.40 or older)"))
        } else if answeredOn != nil {
            effects.append(.log(.info, "Gluetun answers on \(path) (v3.41 or later)"))
        }
        answeredOn = path
        route = path
    }

    /// The other route, when this poll has not asked it yet.
    private func untriedRoute(after path: String) -> String? {
        guard let other = Self.otherRoute(path), !answers.contains(where: { $0.path == other }) else { return nil }
        return other
    }

    private static func otherRoute(_ path: String) -> String? {
        switch path {
        case currentRoute: legacyRoute
        case legacyRoute: currentRoute
        default: nil
        }
    }

    private static func isRefusal(_ status: Int) -> Bool { status == 401 || status == 403 }

    /// 404, or v3.39's router: 400 "GET /portforward not found".
    private static func isMissingRoute(_ response: HTTPResponse) -> Bool {
        response.status == 404 || (response.status == 400 && response.text.trimmingSpaces.hasSuffix("not found"))
    }

    /// Said once per problem: `kind` names it when the message quotes Gluetun (whose text may
    /// change from one poll to the next); by default the message is the kind.
    private mutating func problem(_ message: String, kind: String? = nil, _ effects: inout [Effect]) {
        let kind = kind ?? message
        effects.append(.log(kind == lastProblemKind ? .debug : .error, message))
        lastProblem = redaction(message)
        lastProblemKind = kind
    }

    private mutating func schedule(_ now: Instant, _ base: Duration) {
        nextDeadline = now + base + base * (jitter() / 10)
    }

    /// The path of a Location header: absolute ("http://host/v1/x") or not ("/v1/x"); nil
    /// for anything that is not a valid path (a space, a CR, a query).
    static func path(of location: String) -> String? {
        if location.hasPrefix("/") { return HTTPURL.isValidPath(location) ? location : nil }
        guard let url = try? HTTPURL(parsing: location) else { return nil }
        return url.basePath.isEmpty ? "/" : url.basePath
    }
}
