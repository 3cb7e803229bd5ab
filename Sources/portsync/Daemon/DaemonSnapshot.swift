import Domain
import Reactor
import Sinks
import Watchers

/// What came of the reloads (SIGHUP) since the start: `/metrics` counts them by result, and says
/// whether the last one was taken, so a configuration mistake can be alerted on.
struct ReloadCounts: Equatable {
    enum Result: String, CaseIterable {
        /// A new configuration, now in force.
        case applied
        /// The file said what it said before: nothing to do.
        case unchanged
        /// It could not be loaded (a typo, a secret gone): the previous one stays in force.
        case rejected
    }

    private(set) var counts: [Result: Int] = [:]
    private(set) var lastWasRejected = false

    mutating func count(_ result: Result) {
        counts[result, default: 0] += 1
        lastWasRejected = result == .rejected
    }
}

/// What `/metrics`, `/healthz` and STATUS= report, taken from the daemon when asked.
struct DaemonSnapshot {
    struct Client {
        /// The client's configuration label (`qbittorrent`), the metrics' `client` label.
        var label: String
        /// "qBittorrent v4.5.2"
        var title: String
        var status: SinkStatus
        var counters: SinkCounters
        /// The port this client should be on: the one handed to all, or its `port_index`'s.
        var wanted: Port? = nil
        /// This client's part of the health: ok when verified on `wanted`.
        var health = Health.starting
        /// A BitTorrent client (not the hook).
        var isTorrentClient = true
        /// It runs here: its sockets are in this machine's socket table.
        var listenerVisible = false
        var canReopenListener = false
    }

    var port: Port?
    var source: String?
    var health: Health
    var clients: [Client]
    var portChanges: Int
    var lastChange: Int64?
    /// Every source, in the plan's order, and what it says of itself.
    var sources: [(source: PortObservation.Source, status: SourceStatus)] = []
    var linkUp: Bool?
    /// Seconds left on the lease of the port in use, when its source leases it.
    var leaseSecondsLeft: Int?
    /// The command hook's last run, when there is a hook and it has run.
    var hook: HookRecord? = nil
    /// The last change in the history, and the changes since the start by reason.
    var lastRecord: ChangeRecord? = nil
    var changesByReason: [ChangeReason: Int] = [:]
    /// The last connectability verdict.
    var connectability: ConnectabilityRecord? = nil
    /// The notifier's totals, when `[notify]` is on.
    var notifications: NotifyCounters? = nil
    /// SIGHUPs so far by what came of them, and whether the last one (if any) was taken.
    var reloads = ReloadCounts()

    var isHealthy: Bool { health.isOK && (leaseSecondsLeft.map { $0 > 0 } ?? true) }

    /// In words: "port 51413 on qBittorrent v4.5.2 via natpmp; lease renewed at 16:31:02; last
    /// change 16:10:03 (gateway-restarted)".
    var statusLine: String {
        guard health.isOK, let port, let source else { return health.description }
        var line = "port \(port) on \(clients.map(\.title).joined(separator: ", ")) via \(source)"
        if let lastGrant = sources.first(where: { $0.source.rawValue == source })?.status.lastGrant {
            line += "; lease renewed at \(WallClock.text(lastGrant).suffix(8))"
        }
        if let connectability { line += "; \(connectability.verdict)" }
        if let lastRecord { line += "; last change \(WallClock.text(lastRecord.time).suffix(8)) (\(lastRecord.reason.rawValue))" }
        return line
    }
}
