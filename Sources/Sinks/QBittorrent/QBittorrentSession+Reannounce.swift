import Domain
import HTTP
import Reactor

/// Telling the trackers: qBittorrent 4.5 does not re-announce after its port changes (unless
/// its advanced `reannounce_when_address_changed` is on), so trackers would hand out the dead
/// port until their next interval. After a verified change of port (not a check that found it
/// right, not a reassert of the same port) one `torrents/reannounce` with `hashes=all`, sent
/// once qBittorrent listens on the new port (`ListenerGate`): a new port at once, the same
/// port again at most once per `reannounceInterval`. A few seconds later one torrent's
/// trackers are read (`torrents/trackers`) and what they say is logged and kept
/// (`trackerReport`). All of it is best effort: a refusal is a warning and never touches the
/// session.
extension QBittorrentSession {
    static let trackerCheckDelay = Duration.seconds(3)

    /// After `verified`: `afterMove`, the verified port differs from the one before.
    mutating func reannounceIfDue(afterMove: Bool, _ port: Port, _ now: Instant, _ effects: inout [Effect]) {
        if afterMove && reannounce.due(port, now) {
            reannouncePending = false
            listenerGate.canSeeListener = settings.checkListener
            take(listenerGate.open(port, now), now, &effects)
        } else if reannouncePending && inFlight == nil {
            send(.reannounce, &effects)
        }
    }

    /// The gate's next step: look at the socket table, or tell the trackers.
    mutating func take(_ step: ListenerGate.Step, _ now: Instant, _ effects: inout [Effect]) {
        switch step {
        case .wait:
            break
        case .checkListener(let port):
            effects.append(.checkListenerBeforeAnnouncing(port))
        case .announce(let port, let listener):
            guard status.verifiedPort == port else { return }
            announcedListener = listener
            reannouncePending = true
            startSync(now, &effects)
        }
    }

    /// The deadlines of telling the trackers: the gate's next look, a put-off repeat, the read
    /// of the trackers.
    mutating func announcementDeadlines(_ now: Instant, _ effects: inout [Effect]) {
        take(listenerGate.deadlineReached(now), now, &effects)
        if reannounce.deadlineReached(now), let port = status.verifiedPort, status.health == .verified {
            take(listenerGate.open(port, now), now, &effects)
        }
        if let check = trackerCheck, check.at <= now {
            trackerCheck = nil
            trackerCheckDue = check.port
            startSync(now, &effects)
        }
    }

    /// Nothing more is told (a login refused).
    mutating func cancelAnnouncements() {
        reannouncePending = false
        reannounce.cancel()
        listenerGate.cancel()
        trackerCheck = nil
        trackerCheckDue = nil
    }

    mutating func reannounceAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        reannouncePending = false
        let listener = announcedListener
        announcedListener = nil
        guard let port = status.verifiedPort else { return }
        guard (200..<300).contains(response.status) else {
            return effects.append(.log(.warning, "POST \(Request.reannounce.path) answered \(response.status) \"\(response.bodyExcerpt)\": the trackers hear of port \(port) at their next announce"))
        }
        reannounce.reannounced(port, now)
        counters.reannounces += 1
        announced = (port, listener)
        let when = listener.map { " \($0)" } ?? ""
        effects.append(.log(.info, "asked qBittorrent to tell the trackers of every torrent about port \(port)\(when)"))
        trackerCheck = (now + Self.trackerCheckDelay, port)
    }

    /// The answers to the tracker read: `torrents/info?limit=1`, then its `torrents/trackers`.
    mutating func trackerAnswer(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [Effect]) {
        guard let port = status.verifiedPort, (200..<300).contains(response.status) else {
            return effects.append(.log(.warning, "\(request.method) \(request.path) answered \(response.status) \"\(response.bodyExcerpt)\": what the trackers heard is not known"))
        }
        switch request {
        case .torrentSample:
            switch QBittorrentAPI.firstTorrent(response) {
            case .none:
                effects.append(.log(.warning, "answer to GET \(request.path) is not a list of torrents: \"\(response.bodyExcerpt)\""))
            case .some(.none):
                effects.append(.log(.info, "qBittorrent has no torrents: no tracker to hear of port \(port)"))
            case .some(.some(let torrent)):
                send(.trackers(hash: torrent.hash, torrent: torrent.name), &effects)
            }
        case .trackers(_, let torrent):
            guard let report = QBittorrentAPI.trackerReport(response, torrent: torrent, port: port) else {
                return effects.append(.log(.warning, "answer to GET \(request.path) is not a list of trackers: \"\(response.bodyExcerpt)\""))
            }
            trackerReport = report
            let worrying = report.notWorking > 0 || (report.trackers > 0 && report.working == 0)
            effects.append(.log(worrying ? .warning : .info, "\(report)"))
        default:
            break
        }
    }
}
