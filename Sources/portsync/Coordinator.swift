import Reactor
import Watchers

/// Decides the port qBittorrent should listen on from what the watchers saw. A live NAT-PMP
/// mapping outranks a file hint; among equals the newer wins; an observation past its expiry
/// no longer counts. "No port" never becomes a port: the last desired port stands until a
/// source names another. Pure: the daemon feeds it and carries out its decisions.
struct Coordinator {
    struct Decision: Equatable {
        let port: Port
        let source: PortObservation.Source
        let previous: Port?
    }

    private(set) var observations: [PortObservation.Source: PortObservation] = [:]
    private(set) var desired: Port?
    private(set) var desiredSource: PortObservation.Source?

    /// Takes an observation; returns a decision when the desired port changes.
    mutating func observe(_ observation: PortObservation, now: Instant) -> Decision? {
        observations[observation.source] = observation
        return decide(now: now)
    }

    /// Re-decides at `now`, when an observation may have expired.
    mutating func decide(now: Instant) -> Decision? {
        let live = observations.values.filter { $0.port != nil && ($0.expiry.map { $0 > now } ?? true) }
        let authorities = live.filter(\.source.isAuthority)
        let pool = authorities.isEmpty ? live : authorities
        guard let winner = pool.max(by: { $0.time < $1.time }), let port = winner.port else { return nil }
        desiredSource = winner.source
        guard port != desired else { return nil }
        let previous = desired
        desired = port
        return Decision(port: port, source: winner.source, previous: previous)
    }

    /// Whether some source currently says there is a port.
    func hasLivePort(now: Instant) -> Bool {
        observations.values.contains { $0.port != nil && ($0.expiry.map { $0 > now } ?? true) }
    }

    /// The earliest expiry still ahead, so the daemon can re-decide then.
    func nextExpiry(after now: Instant) -> Instant? {
        observations.values.compactMap(\.expiry).filter { $0 > now }.min()
    }
}
