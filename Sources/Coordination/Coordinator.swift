import Domain
import Reactor

/// Decides the port the clients should listen on from what the watchers saw, and when to hand
/// it to them. The live port of a higher-ranked source (a gateway's lease) outranks a lower one
/// (a file hint); among equals the newer wins; an
/// observation past its expiry no longer counts. "No port" never becomes a port: the last
/// desired port stands until a source names another. A port named again after a time when no
/// source had one is handed off too ("again"): whatever happened to the client meanwhile (a
/// "down" hook that set it to 0) is looked at and repaired.
///
/// Bursts of changes do not become bursts of applies, and the usual lone change is not delayed:
/// a change is handed off at once, unless the previous hand-off was less than `window` ago; then
/// it waits until changes have been quiet for `window` (but never more than `longest` after the
/// first one that waited), and the burst ends with one hand-off of its last value. Forwarded
/// ports change seconds apart at the most; a program rewriting the file in a loop does so every
/// fraction of a millisecond: 25 ms tells them apart.
///
/// Every hand-off says why (`ChangeReason`): the winning source's reason, except for the first
/// port of a run (or of a reload), and a third new port within `rotationWindow`, which is a rapid
/// rotation whatever the source says.
///
/// Pure, in a module of its own that knows nothing of sources or clients but what `Domain` says:
/// the daemon's `Dispatcher` feeds it and hands `.apply` to every client.
public struct Coordinator: LoopStateMachine {
    public enum Input: Equatable, Sendable {
        case observed(PortObservation)
        /// `nextDeadline` passed: an observation expired, or a burst settled.
        case deadlineReached
    }

    public enum Effect: Equatable, Sendable {
        /// Give this port to every client.
        case apply(PortChange)
        /// The desired port changed (not a port named again), for the metrics.
        case desiredPortChanged(Port)
        /// A file's port is not applied because a live mapping outranks it.
        case outranked(Outranking)
        /// The winning source stopped naming a port (its file was emptied, its lease lapsed):
        /// the clients keep theirs. Not said for a tunnel that went down.
        case withdrawn(source: PortObservation.Source, reason: ChangeReason)
        case log(LogLevel, String)
    }

    /// A port one source names that is not applied because another's live mapping outranks it.
    public struct Outranking: Equatable, Sendable, CustomStringConvertible {
        public let hint: Port
        public let hintSource: PortObservation.Source
        public let winner: Port
        public let winnerSource: PortObservation.Source
        /// The first time this pair of ports is seen in a row: the log says so once, the
        /// trace every time.
        public let isNew: Bool

        public var description: String {
            "\(hintSource.spokenName) says \(hint); the live mapping \(winner) from \(winnerSource.spokenName) outranks it"
        }
    }

    public let window: Duration
    public let longest: Duration
    /// Three new ports within this long are a rapid rotation.
    public let rotationWindow: Duration
    /// The reason of the first hand-off: the start of a run, or a reload.
    private let firstReason: ChangeReason
    public private(set) var observations: [PortObservation.Source: PortObservation] = [:]
    public private(set) var desired: Port?
    public private(set) var desiredSource: PortObservation.Source?
    /// Why the desired port is what it is.
    private var desiredReason: ChangeReason?
    /// When the recent new ports were decided (not the first of a run), for rapid rotation.
    private var recentChanges: [Instant] = []
    /// Every port the winning source forwards (`PortObservation.ports`): a change among them
    /// alone is handed off too, for the clients with a `port_index` of their own.
    public private(set) var desiredPorts: [Port] = []
    /// The port last handed off, for the next hand-off's `previous`.
    private var handedOff: Port?
    /// No source has named a port since the last decision.
    private var lapsed = true
    private var lastHandOff: Instant?
    /// The (hint, winner) pair last reported as outranked; nil when no port was.
    private var outranked: (hint: Port, winner: Port)?
    /// The first change of the burst being held back, and when it is to be handed off.
    private var waitingSince: Instant?
    private var burstEnds: Instant?
    private var now: Instant?

    /// A port is decided but held back until its burst settles: the clients are not on it yet.
    public var holdsBackAChange: Bool { burstEnds != nil }

    public init(window: Duration = .milliseconds(25), longest: Duration = .seconds(1), rotationWindow: Duration = .seconds(600),
         firstReason: ChangeReason = .started) {
        self.window = window
        self.longest = longest
        self.rotationWindow = rotationWindow
        self.firstReason = firstReason
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        self.now = now
        var effects: [Effect] = []
        switch input {
        case .observed(let observation):
            observations[observation.source] = observation
            decide(now, why: "", withdrawal: observation.reason, &effects)
        case .deadlineReached:
            if let burstEnds, burstEnds <= now { burstSettled(now, &effects) }
            decide(now, why: " (an observation expired)", withdrawal: .leaseLapsed, &effects)
        }
        return effects
    }

    /// The earlier of the next expiry and the end of the burst being held back.
    public var nextDeadline: Instant? {
        let expiry = observations.values.compactMap(\.expiry).filter { expiry in now.map { expiry > $0 } ?? true }.min()
        return [expiry, burstEnds].compactMap { $0 }.min()
    }

    /// Whether some source currently says there is a port.
    public func hasLivePort(now: Instant) -> Bool {
        observations.values.contains { Self.isLive($0, now) }
    }

    /// `withdrawal`: why, if no source names a port any more.
    private mutating func decide(_ now: Instant, why: String, withdrawal: ChangeReason, _ effects: inout [Effect]) {
        let live = observations.values.filter { Self.isLive($0, now) }
        let rank = live.map(\.source.rank).max()
        guard let winner = live.filter({ $0.source.rank == rank }).max(by: { $0.time < $1.time }), let port = winner.port else {
            if !lapsed, let desiredSource, withdrawal == .sourceEmptied || withdrawal == .leaseLapsed {
                effects.append(.withdrawn(source: desiredSource, reason: withdrawal))
            }
            lapsed = true
            outranked = nil
            return
        }
        reportOutranked(live: live, winner: winner, port: port, &effects)
        desiredSource = winner.source
        guard port != desired || lapsed || winner.ports != desiredPorts else { return }
        let again = lapsed
        lapsed = false
        let previous = desired
        desired = port
        desiredPorts = winner.ports
        desiredReason = winner.reason
        if previous != port { effects.append(.desiredPortChanged(port)) }
        let was = previous != port ? previous.map { " (was \($0))" } ?? ""
            : again ? " (again)" : " (its ports are now \(winner.ports.map(\.description).joined(separator: ", ")))"
        handOff(port, source: winner.source, was: was, why: why, now, &effects)
    }

    /// A live port of a source the winner outranks that differs from the winner's: said once per
    /// pair of ports in a row, and every time to the trace.
    private mutating func reportOutranked(live: [PortObservation], winner: PortObservation, port: Port,
                                          _ effects: inout [Effect]) {
        let overruled = live.filter { $0.source.rank < winner.source.rank && $0.port != port }.max { $0.time < $1.time }
        guard let overruled, let hint = overruled.port else {
            outranked = nil
            return
        }
        let isNew = outranked.map { $0.hint != hint || $0.winner != port } ?? true
        outranked = (hint, port)
        effects.append(.outranked(Outranking(hint: hint, hintSource: overruled.source, winner: port,
                                             winnerSource: winner.source, isNew: isNew)))
    }

    /// Gives the port to the clients now, or after a burst of changes has settled.
    private mutating func handOff(_ port: Port, source: PortObservation.Source, was: String, why: String,
                                  _ now: Instant, _ effects: inout [Effect]) {
        if let lastHandOff, now - lastHandOff < window || waitingSince != nil {
            if burstEnds == nil { effects.append(.log(.info, "the port changes in a burst: applying the last value once it settles")) }
            effects.append(.log(.debug, "port \(port) from \(source.rawValue) (in a burst)"))
            let since = waitingSince ?? now
            waitingSince = since
            burstEnds = min(now + window, since + longest)
            return
        }
        lastHandOff = now
        effects.append(.log(.notice, "port \(port) from \(source.rawValue)\(was)\(why)"))
        effects.append(.apply(change(port, source, now, &effects)))
    }

    private mutating func burstSettled(_ now: Instant, _ effects: inout [Effect]) {
        lastHandOff = now
        waitingSince = nil
        burstEnds = nil
        guard let desired else { return }
        effects.append(.log(.notice, "port \(desired) from \(desiredSource?.rawValue ?? "?") (the last of a burst)"))
        effects.append(.apply(change(desired, desiredSource, now, &effects)))
    }

    /// The hand-off of `port`, with its reason: the first of the run (or reload) has
    /// `firstReason`; the third new port handed off within `rotationWindow` is a rapid rotation,
    /// said once per rotation; any other has the source's reason.
    private mutating func change(_ port: Port, _ source: PortObservation.Source?, _ now: Instant,
                                 _ effects: inout [Effect]) -> PortChange {
        defer { handedOff = port }
        var reason = handedOff == nil ? firstReason : desiredReason ?? firstReason
        if let handedOff, handedOff != port {
            recentChanges = recentChanges.filter { now - $0 < rotationWindow } + [now]
            if recentChanges.count >= 3 { reason = .rapidRotation }
            if recentChanges.count == 3 {
                effects.append(.log(.warning, "\(recentChanges.count) new ports within \(rotationWindow.components.seconds / 60) minutes: two tunnels that share one WireGuard key (two devices with one configuration file) take the forwarded port from each other; give each device a configuration of its own"))
            }
        }
        return PortChange(port: port, previous: handedOff, source: source?.rawValue ?? "", ports: desiredPorts, reason: reason)
    }

    /// Names a port and has not expired.
    private static func isLive(_ observation: PortObservation, _ now: Instant) -> Bool {
        observation.port != nil && (observation.expiry.map { $0 > now } ?? true)
    }
}
