import Domain
import Reactor

/// When a client may tell its trackers about a port: a new port at once, whatever the last
/// announce was (the trackers would otherwise hand out a dead port); the same port again never
/// twice within `interval`, a repeat inside it being told when it ends, once. Every session that
/// re-announces keeps one, in its `ClientSessionCore` (Deluge, qBittorrent).
struct ReannounceAllowance {
    var enabled: Bool
    var interval: Duration
    /// When a put-off re-announce is due.
    private(set) var dueAt: Instant?
    private var last: (port: Port, at: Instant)?

    init(enabled: Bool, interval: Duration) {
        self.enabled = enabled
        self.interval = interval
    }

    /// After a verified change to `port`: whether to tell the trackers now. The port they were
    /// last told of, within the interval, is put off to the interval's end instead (`dueAt`).
    mutating func due(_ port: Port, _ now: Instant) -> Bool {
        guard enabled else { return false }
        if let last, last.port == port, now < last.at + interval {
            dueAt = last.at + interval
            return false
        }
        dueAt = nil
        return true
    }

    /// Whether the put-off re-announce is due now (cleared when it is).
    mutating func deadlineReached(_ now: Instant) -> Bool {
        guard let at = dueAt, at <= now else { return false }
        dueAt = nil
        return enabled
    }

    mutating func reannounced(_ port: Port, _ now: Instant) {
        last = (port, now)
        dueAt = nil
    }

    /// No put-off re-announce (a login refused: nothing is sent until it ends).
    mutating func cancel() {
        dueAt = nil
    }
}
