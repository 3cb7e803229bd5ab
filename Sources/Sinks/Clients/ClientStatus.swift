import Reactor

/// What a client sink says about itself: for logs, `status`, metrics.
public struct ClientStatus: Equatable, Sendable {
    public enum Health: Equatable, Sendable {
        case idle
        case applying
        case verified
        case unreachable(String)
        case failing(String)
        case loginRefused(String)
    }

    public var health: Health = .idle
    /// The port the client was last seen listening on, by a read-back.
    public var verifiedPort: Port?
    /// The client's own version, as it reports it ("3.00 (bb6b5a062e)", "2.0.3").
    public var version: String?

    public init() {}
}

/// Running totals, for metrics and tests.
public struct ClientCounters: Equatable, Sendable {
    public var logins = 0
    public var failedLogins = 0
    public var applies = 0
    public var failedApplies = 0
    public var requests = 0
    public var reannounces = 0

    public init() {}
}
