import HTTP
import Reactor

/// Telling the trackers: qBittorrent 4.5 does not re-announce after its port changes (unless
/// its advanced `reannounce_when_address_changed` is on), so trackers would hand out the dead
/// port until their next interval. After a verified change of port (not a check that found it
/// right, not a reassert of the same port) one `torrents/reannounce` with `hashes=all`, at
/// most once per `reannounceInterval`; a change inside it is told when it ends, once. It is
/// best effort: a refusal of any kind, a 403 too, is a warning, not retried, and never taken for
/// the session expiring (a proxy may forbid the call alone; the next sync finds a real expiry).
extension QBittorrentSession {
    /// After `verified`: `afterMove`, the verified port differs from the one before.
    mutating func reannounceIfDue(afterMove: Bool, _ now: Instant, _ effects: inout [Effect]) {
        if afterMove && reannounce.due(now) { reannouncePending = true }
        if reannouncePending && inFlight == nil { send(.reannounce, &effects) }
    }

    mutating func reannounceAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        reannouncePending = false
        let port = status.verifiedPort.map { "\($0)" } ?? "?"
        guard (200..<300).contains(response.status) else {
            return effects.append(.log(.warning, "POST \(Request.reannounce.path) answered \(response.status) \"\(response.bodyExcerpt)\": the trackers hear of port \(port) at their next announce"))
        }
        reannounce.reannounced(now)
        counters.reannounces += 1
        effects.append(.log(.info, "told the trackers of every torrent about port \(port)"))
    }
}
