import Reactor

/// When a client may tell its trackers about a new port: at once after a change, but never
/// twice within `interval`; a change inside the interval is told when it ends, once. Every
/// session that re-announces keeps one (`ClientSessionCore` for Deluge, `QBittorrentSession`).
struct ReannounceAllowance {
    var enabled: Bool
    var interval: Duration
    /// When a put-off re-announce is due.
    private(set) var dueAt: Instant?
    private var last: Instant?

    init(enabled: Bool, interval: Duration) {
        self.enabled = enabled
        self.interval = interval
    }

    /// After a verified change: whether to tell the trackers now. Within the interval of the
    /// last re-announce, it is put off to the interval's end instead (`dueAt`).
    mutating func due(_ now: Instant) -> Bool {
        guard enabled else { return false }
        if let last, now < last + interval {
            dueAt = last + interval
            return false
        }
        return true
    }

    /// Whether the put-off re-announce is due now (cleared when it is).
    mutating func deadlineReached(_ now: Instant) -> Bool {
        guard let at = dueAt, at <= now else { return false }
        dueAt = nil
        return enabled
    }

    mutating func reannounced(_ now: Instant) {
        last = now
        dueAt = nil
    }

    /// No put-off re-announce (a login refused: nothing is sent until it ends).
    mutating func cancel() {
        dueAt = nil
    }
}
