import Domain
import Reactor

/// When a verified new port may be told to the trackers: once the client listens on it.
/// Clients apply a port asynchronously: qBittorrent answers `setPreferences` (and its read-back
/// already shows the port) before libtorrent has re-opened its listen sockets, and a tracker's
/// endpoints belong to those sockets, so a forced announce that comes first is lost or held
/// back by the tracker's `min interval`. On this machine the kernel's socket table shows the
/// new listener (a few milliseconds after the read-back with qBittorrent 4.5.2); a remote
/// client's cannot be seen, so it is given `remoteSettle`.
struct ListenerGate: Equatable {
    enum Step: Equatable {
        case wait
        /// Look in the socket table for a listener on the port; answer with `listenerChecked`.
        case checkListener(Port)
        /// Tell the trackers now.
        case announce(Port, Listener)
    }

    /// What was known of the listener when the announce went out.
    enum Listener: Equatable, CustomStringConvertible {
        /// Seen in the socket table this long after the port was verified.
        case seen(after: Duration)
        /// Not seen within `listenLimit`: announced anyway, the trackers may not hear it.
        case notSeen(within: Duration)
        /// Cannot be seen (a remote client, or the socket table unreadable): after `remoteSettle`.
        case unseen(after: Duration)

        var description: String {
            switch self {
            case .seen(let after): "once it listened on it (\(after.millisecondsText) after it took the port)"
            case .notSeen(let within): "although nothing listened on it within \(within.millisecondsText)"
            case .unseen(let after): "\(after.millisecondsText) after it took the port (its listener cannot be seen from here)"
            }
        }
    }

    static let pollInterval = Duration.milliseconds(5)
    static let listenLimit = Duration.seconds(2)
    static let remoteSettle = Duration.seconds(1)

    /// The client runs on this machine, so its sockets can be seen.
    var canSeeListener: Bool
    /// The port waiting to be announced.
    private(set) var port: Port?
    /// When to look again (or, unseen, to announce).
    private(set) var wakeAt: Instant?
    private var since = Instant(nanoseconds: 0)
    private var tableReadable = true

    init(canSeeListener: Bool) {
        self.canSeeListener = canSeeListener
    }

    /// `port` was verified: wait for its listener.
    mutating func open(_ port: Port, _ now: Instant) -> Step {
        self.port = port
        since = now
        tableReadable = true
        if canSeeListener {
            wakeAt = nil
            return .checkListener(port)
        }
        wakeAt = now + Self.remoteSettle
        return .wait
    }

    mutating func listenerChecked(_ check: ListeningSockets.Check, _ now: Instant) -> Step {
        guard let port, wakeAt == nil else { return .wait }
        switch check {
        case .listening:
            return finish(port, .seen(after: now - since))
        case .unknown:
            tableReadable = false
            return wake(at: since + Self.remoteSettle, now)
        case .absent, .stale:
            // A socket on a vanished interface is the old one: the new one is still to come.
            if now - since >= Self.listenLimit { return finish(port, .notSeen(within: Self.listenLimit)) }
            return wake(at: now + Self.pollInterval, now)
        }
    }

    mutating func deadlineReached(_ now: Instant) -> Step {
        guard let port, let at = wakeAt, at <= now else { return .wait }
        wakeAt = nil
        if canSeeListener && tableReadable { return .checkListener(port) }
        return finish(port, .unseen(after: now - since))
    }

    /// Nothing waits any more (the port moved on, a login was refused).
    mutating func cancel() {
        port = nil
        wakeAt = nil
    }

    private mutating func wake(at deadline: Instant, _ now: Instant) -> Step {
        guard let port else { return .wait }
        if deadline <= now { return finish(port, .unseen(after: now - since)) }
        wakeAt = deadline
        return .wait
    }

    private mutating func finish(_ port: Port, _ listener: Listener) -> Step {
        cancel()
        return .announce(port, listener)
    }
}

extension Duration {
    /// "7 ms", "1.5 s": for a person.
    var millisecondsText: String {
        let milliseconds = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds) ms" }
        let tenths = milliseconds / 100
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }
}
