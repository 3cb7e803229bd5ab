import Reactor

/// What a client sink says about itself: for logs, `status`, metrics. One shape for every
/// client: qBittorrent's (the version is the client's own, e.g. Transmission's "3.00 (bb6b5a062e)").
public typealias ClientStatus = QBittorrentStatus

/// Running totals, for metrics and tests.
public struct ClientCounters: Equatable, Sendable {
    /// Sessions begun: Deluge's accepted `auth.login`; Transmission's first answer that passed
    /// its Basic auth (it has no login of its own).
    public var logins = 0
    public var failedLogins = 0
    public var applies = 0
    public var failedApplies = 0
    public var requests = 0
    public var reannounces = 0

    public init() {}
}
