import Domain
import HTTP
import Reactor

/// What a sink says about itself: for logs, `status`, systemd's STATUS= and metrics.
public struct SinkStatus: Equatable, Sendable {
    public enum Health: Equatable, Sendable {
        case idle
        case applying
        case verified
        case unreachable(String)
        case failing(String)
        case loginRefused(String)

        /// Still working on the port (nothing tried yet, or a request in flight).
        public var isPending: Bool { self == .idle || self == .applying }
    }

    public var health: Health = .idle
    /// The port the client was last seen listening on, by our read-back.
    public var verifiedPort: Port?
    /// The client's own version, e.g. "v4.5.2".
    public var version: String?
    /// Why the health is not fine, as a value, when it came at a step of reaching the client;
    /// nil while it is fine, and for a failure after the handshake.
    public var problem: ClientProblem?
    /// The client's port settings as first read (at connect); nil until then.
    public var inspection: ClientInspection?
    /// What the client says of its own connectability, when it says (qBittorrent's
    /// `transfer/info`), as last asked.
    public var connection: ClientConnection?

    public init() {}

    /// With every secret taken out of the texts quoted from the client (its messages, its
    /// version): what leaves the session.
    func redacted(by redaction: Redaction) -> SinkStatus {
        var copy = self
        switch health {
        case .unreachable(let message): copy.health = .unreachable(redaction(message))
        case .failing(let message): copy.health = .failing(redaction(message))
        case .loginRefused(let message): copy.health = .loginRefused(redaction(message))
        case .idle, .applying, .verified: break
        }
        copy.version = version.map { redaction($0) }
        copy.problem = problem?.redacted(by: redaction)
        copy.inspection = inspection?.redacted(by: redaction)
        return copy
    }
}

/// Running totals, for metrics and tests.
public struct SinkCounters: Equatable, Sendable {
    /// Sessions begun: qBittorrent's and Deluge's accepted logins; Transmission's first answer
    /// that passed its Basic auth (it has no login of its own).
    public var logins = 0
    public var failedLogins = 0
    public var applies = 0
    public var failedApplies = 0
    public var reasserts = 0
    public var requests = 0
    /// Trackers told of a new port (a client that does not re-announce by itself).
    public var reannounces = 0
    /// The client's port changed behind portsync's back and was set back.
    public var driftRepairs = 0
    /// The client's listener was dead (nothing listened, or it was bound to a vanished
    /// interface) and the client was made to re-open its sockets.
    public var listenerRepairs = 0

    public init() {}
}

/// What a client says of whether peers reach it: qBittorrent's `transfer/info`.
public struct ClientConnection: Equatable, Sendable {
    public var state: ConnectionStatus
    /// `last_external_address_v4` (qBittorrent 5.1+): the address peers and trackers saw it
    /// come from, when it has one.
    public var externalAddress: IPv4Address?

    public init(state: ConnectionStatus, externalAddress: IPv4Address? = nil) {
        self.state = state
        self.externalAddress = externalAddress
    }
}
