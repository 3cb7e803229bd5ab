import Domain
import HTTP
import Reactor

/// Where and how PrivateVPN's port API is asked.
public struct PrivateVPNSettings: Equatable, Sendable {
    /// The API Gluetun asks; a test points `url` at a stand-in.
    public static let defaultURL = try! HTTPURL(parsing: "https://connect.pvdatanet.com/v3/Api/port")

    /// The tunnel whose IPv4 address is asked about, and which the request leaves from.
    public var interface: String
    public var url: HTTPURL
    public var tls: TLSOptions
    /// Who the API's name is asked of, through the tunnel; empty: resolv.conf's name servers
    /// (those the tunnel can reach).
    public var nameServers: [IPv4Address]
    /// While the address stays, the port is asked again this often (it needs no renewal).
    public var recheckInterval: Duration
    public var requestTimeout: Duration
    /// After a failure the next try comes after this, doubling up to `longestRetryDelay`: short,
    /// since OpenVPN gives the tunnel its new address before its routes, and the first request
    /// for a new address may find no route yet (ENETUNREACH).
    public var firstRetryDelay: Duration
    public var longestRetryDelay: Duration

    public init(interface: String, url: HTTPURL = PrivateVPNSettings.defaultURL, tls: TLSOptions = TLSOptions(),
                nameServers: [IPv4Address] = [], recheckInterval: Duration = .seconds(15 * 60), requestTimeout: Duration = .seconds(10),
                firstRetryDelay: Duration = .seconds(2), longestRetryDelay: Duration = .seconds(300)) {
        self.interface = interface
        self.url = url
        self.tls = tls
        self.nameServers = nameServers
        self.recheckInterval = recheckInterval
        self.requestTimeout = requestTimeout
        self.firstRetryDelay = firstRetryDelay
        self.longestRetryDelay = longestRetryDelay
    }
}

/// The PrivateVPN source's logic, with no I/O: each tunnel address it is given is asked about
/// at once (`GET …/port?ip[]=<address>`, from that address); the answer names the port, or says
/// the server forwards none. Nothing is renewed: the same address is asked again every
/// `recheckInterval`, a failure after a back-off. A failure keeps the last port; a server that
/// forwards none takes it back.
public struct PrivateVPNSession {
    public enum Input: Sendable {
        /// The tunnel's IPv4 address while it is usable, nil once it is not.
        case tunnelAddress(IPv4Address?)
        case deadlineReached
        case responseReceived(HTTPResponse)
        case requestFailed(HTTPClientError)
    }

    public enum Effect: Equatable {
        /// The request, to be sent from `address` (a fresh connection when it differs from the last).
        case send(HTTPRequest, from: IPv4Address)
        /// The port now forwarded, nil for none, and why it differs from the one before.
        case port(Port?, ChangeReason)
        case log(LogLevel, String)
    }

    /// What the last exchange for the current address said.
    public enum Outcome: Equatable, Sendable {
        case forwarding(Port)
        /// `{"supported":false}`: this server forwards no port.
        case unsupported
        case failed(SourceProblem)
    }

    public let settings: PrivateVPNSettings
    public private(set) var address: IPv4Address?
    /// nil: the current address has not been answered yet.
    public private(set) var outcome: Outcome?
    public private(set) var nextDeadline: Instant?
    public private(set) var failureStreak = 0
    public private(set) var isAsking = false
    /// The last port reported (`.some(nil)`: "none"); nil before the first.
    private var reported: Port??
    /// The address changed since the last report: the next new port is a new server's.
    private var serverChanged = false
    private var retryDelay: Duration
    private var lastProblemKind: String?

    public init(settings: PrivateVPNSettings) {
        self.settings = settings
        retryDelay = settings.firstRetryDelay
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .tunnelAddress(let next):
            guard next != address else { break }
            if address != nil || reported != nil { serverChanged = true }
            address = next
            outcome = nil
            isAsking = false
            nextDeadline = nil
            failureStreak = 0
            retryDelay = settings.firstRetryDelay
            lastProblemKind = nil
            if next != nil { ask(&effects) }
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now, !isAsking, address != nil else { break }
            nextDeadline = nil
            ask(&effects)
        case .responseReceived(let response):
            guard isAsking else { break }
            isAsking = false
            answered(response, now, &effects)
        case .requestFailed(let error):
            guard isAsking else { break }
            isAsking = false
            let how = error.isUnreachable ? "is unreachable" : "failed"
            let fix = switch error {
            case .resolve: "set [privatevpn] nameserver to a name server reached through \(settings.interface): the one PrivateVPN's server pushes (dhcp-option DNS in OpenVPN's log), or a public one"
            case _ where error.isUnreachable: "check that the tunnel \(settings.interface) is connected and routes to the internet"
            default: "check the tunnel; portsync asks again after a back-off"
            }
            fail(SourceProblem("PrivateVPN's port API at \(settings.url) \(how): \(error)", fix: fix), kind: "request \(how)", now, &effects)
        }
        return effects
    }

    /// `GET <url>?ip[]=<address>`, the query as PrivateVPN's API and Gluetun write it.
    private mutating func ask(_ effects: inout [Effect]) {
        guard let address else { return }
        isAsking = true
        let target = settings.url.basePath + "?ip[]=\(address)"
        effects.append(.send(HTTPRequest(method: "GET", target: target,
                                         headers: HTTPHeaders.request(to: settings.url, ["Accept": "application/json"])), from: address))
    }

    private mutating func answered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        guard response.status == 200 else {
            return fail(SourceProblem("PrivateVPN's port API answered \(response.status) \"\(response.bodyExcerpt)\"",
                                      fix: "PrivateVPN's side: portsync asks again after a back-off; check [privatevpn].url if it was changed"),
                        kind: "HTTP \(response.status)", now, &effects)
        }
        let answer: PrivateVPNAnswer
        do {
            answer = try PrivateVPNAnswer.parse(response.body)
        } catch {
            return fail(SourceProblem("PrivateVPN's port API: \(error)", fix: "PrivateVPN's side: portsync asks again after a back-off"),
                        kind: "unreadable", now, &effects)
        }
        if failureStreak > 0 { effects.append(.log(.info, "PrivateVPN's port API answers again")) }
        failureStreak = 0
        retryDelay = settings.firstRetryDelay
        lastProblemKind = nil
        nextDeadline = now + settings.recheckInterval
        switch answer {
        case .port(let port):
            outcome = .forwarding(port)
            report(port, &effects)
        case .unsupported:
            outcome = .unsupported
            if reported != .some(nil) {
                effects.append(.log(.warning, "PrivateVPN forwards no port for \(address.map(String.init(describing:)) ?? "the tunnel"): {\"supported\":false} (port forwarding works on its OpenVPN servers only, not over WireGuard)"))
            }
            report(nil, &effects)
        }
    }

    private mutating func report(_ port: Port?, _ effects: inout [Effect]) {
        guard reported != .some(port) else {
            serverChanged = false
            return
        }
        let reason: ChangeReason = port == nil ? .sourceEmptied : serverChanged ? .tunnelRecreated : .sourceChanged
        if let port { effects.append(.log(.info, "PrivateVPN forwards port \(port) to \(address.map(String.init(describing:)) ?? "the tunnel")")) }
        reported = .some(port)
        serverChanged = false
        effects.append(.port(port, reason))
    }

    /// Said once per kind of failure (at error, then at debug), and asked again after the back-off.
    private mutating func fail(_ problem: SourceProblem, kind: String, _ now: Instant, _ effects: inout [Effect]) {
        failureStreak += 1
        outcome = .failed(problem)
        effects.append(.log(kind == lastProblemKind ? .debug : .error, "\(problem.message); asking again in \(retryDelay.limitText)"))
        lastProblemKind = kind
        nextDeadline = now + retryDelay
        retryDelay = min(retryDelay * 2, settings.longestRetryDelay)
    }
}
