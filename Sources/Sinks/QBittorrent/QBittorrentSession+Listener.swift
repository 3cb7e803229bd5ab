import Domain
import Reactor

/// The look at the kernel's socket table that ends a drift check (qBittorrent on this host).
extension QBittorrentSession {
    /// One reassert per cause (nothing listens; a socket bound to a vanished interface), then
    /// a clear failure until the listener is fine again.
    mutating func listenerChecked(_ check: ListeningSockets.Check, port: Port, _ now: Instant, _ effects: inout [Effect]) {
        let cause: String
        switch check {
        case .listening, .unknown:
            if case .unknown(let why) = check { effects.append(.log(.debug, "cannot read the socket table (\(why)); taking the listener as fine")) }
            reassertedFor = nil
            return verified(port, changed: false, now, &effects)
        case .absent:
            cause = "qBittorrent has listen_port \(port) but nothing listens on it"
        case .stale(let listener):
            cause = "qBittorrent's socket on port \(port) (\(listener.address)) is bound to interface index \(listener.interfaceIndex), which no longer exists (the tunnel was recreated): it refuses every connection"
        }
        if reassertedFor == cause {
            problem("\(cause), even after a reassert; is qBittorrent bound to an interface that is down?",
                    health: .failing("not listening on port \(port)"), &effects)
            schedule(now + settings.checkInterval, .driftCheck)
        } else {
            effects.append(.log(.warning, "\(cause); making it re-open its sockets"))
            reassertedFor = cause
            reassertPending = true
            counters.listenerRepairs += 1
            status.health = .applying
            startSync(now, &effects)
        }
    }
}
