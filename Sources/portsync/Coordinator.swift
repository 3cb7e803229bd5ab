import Reactor
import Watchers

/// Decides the port qBittorrent should listen on from what the watchers saw. A live NAT-PMP
/// mapping outranks a file hint; among equals the newer wins; an observation past its expiry
/// no longer counts. "No port" never becomes a port: the last desired port stands until a
/// source names another. A port named again after a time when no source had one is a decision
/// too (`again`): whatever happened to the client meanwhile (a "down" hook that set it to 0)
/// is looked at and repaired. Pure: the daemon feeds it and carries out its decisions.
struct Coordinator {
    struct Decision: Equatable {
        let port: Port
        let source: PortObservation.Source
        let previous: Port?
        /// The same port as before, named again after no source had one.
        var again: Bool { previous == port }
    }

    private(set) var observations: [PortObservation.Source: PortObservation] = [:]
    private(set) var desired: Port?
    private(set) var desiredSource: PortObservation.Source?
    /// No source has named a port since the last decision.
    private var lapsed = true

    /// Takes an observation; returns a decision when the desired port changes.
    mutating func observe(_ observation: PortObservation, now: Instant) -> Decision? {
        observations[observation.source] = observation
        return decide(now: now)
    }

    /// Re-decides at `now`, when an observation may have expired.
    mutating func decide(now: Instant) -> Decision? {
        let live = observations.values.filter { Self.isLive($0, now) }
        let authorities = live.filter(\.source.isAuthority)
        let pool = authorities.isEmpty ? live : authorities
        guard let winner = pool.max(by: { $0.time < $1.time }), let port = winner.port else {
            lapsed = true
            return nil
        }
        desiredSource = winner.source
        guard port != desired || lapsed else { return nil }
        lapsed = false
        let previous = desired
        desired = port
        return Decision(port: port, source: winner.source, previous: previous)
    }

    /// Whether some source currently says there is a port.
    func hasLivePort(now: Instant) -> Bool {
        observations.values.contains { Self.isLive($0, now) }
    }

    /// Names a port and has not expired.
    private static func isLive(_ observation: PortObservation, _ now: Instant) -> Bool {
        observation.port != nil && (observation.expiry.map { $0 > now } ?? true)
    }

    /// The earliest expiry still ahead, so the daemon can re-decide then.
    func nextExpiry(after now: Instant) -> Instant? {
        observations.values.compactMap(\.expiry).filter { $0 > now }.min()
    }
}

/// Keeps bursts of changes from turning into bursts of applies, without delaying the usual
/// lone change: a change is handed to the sinks at once, unless the previous hand-off was less
/// than `window` ago; then it waits until changes have been quiet for `window` (but never more
/// than `longest` after the first one that waited). A burst ends with one apply of its last value.
/// Forwarded ports change seconds apart at the most; a program rewriting the file in a loop does
/// so every fraction of a millisecond: 25 ms tells them apart.
struct BurstGate {
    let window: Duration
    let longest: Duration
    private var lastHandOff: Instant?
    private var waitingSince: Instant?

    init(window: Duration = .milliseconds(25), longest: Duration = .seconds(1)) {
        self.window = window
        self.longest = longest
    }

    /// A change at `now`: nil to hand it off now, else when to hand off the latest value.
    mutating func changed(at now: Instant) -> Instant? {
        guard let lastHandOff, now - lastHandOff < window || waitingSince != nil else {
            handedOff(at: now)
            return nil
        }
        let since = waitingSince ?? now
        waitingSince = since
        return min(now + window, since + longest)
    }

    mutating func handedOff(at now: Instant) {
        lastHandOff = now
        waitingSince = nil
    }
}
