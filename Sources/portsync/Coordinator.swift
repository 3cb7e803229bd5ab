import Domain
import Reactor
import Sinks
import Watchers

/// Decides the port the clients should listen on from what the watchers saw, and when to hand
/// it to them. A live NAT-PMP mapping outranks a file hint; among equals the newer wins; an
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
/// Pure: `Dispatcher` feeds it and hands `.apply` to every client.
struct Coordinator: LoopStateMachine {
    enum Input: Equatable {
        case observed(PortObservation)
        /// `nextDeadline` passed: an observation expired, or a burst settled.
        case deadlineReached
    }

    enum Effect: Equatable {
        /// Give this port to every client.
        case apply(PortChange)
        /// The desired port changed (not a port named again), for the metrics.
        case desiredPortChanged(Port)
        /// A file's port is not applied because a live mapping outranks it.
        case outranked(Outranking)
        case log(LogLevel, String)
    }

    /// A port one source names that is not applied because another's live mapping outranks it.
    struct Outranking: Equatable, CustomStringConvertible {
        let hint: Port
        let hintSource: PortObservation.Source
        let winner: Port
        let winnerSource: PortObservation.Source
        /// The first time this pair of ports is seen in a row: the log says so once, the
        /// trace every time.
        let isNew: Bool

        var description: String {
            "\(hintSource.spokenName) says \(hint); \(winnerSource.possessiveName) live mapping \(winner) outranks it"
        }
    }

    let window: Duration
    let longest: Duration
    private(set) var observations: [PortObservation.Source: PortObservation] = [:]
    private(set) var desired: Port?
    private(set) var desiredSource: PortObservation.Source?
    /// Every port the winning source forwards (`PortObservation.ports`): a change among them
    /// alone is handed off too, for the clients with a `port_index` of their own.
    private(set) var desiredPorts: [Port] = []
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

    init(window: Duration = .milliseconds(25), longest: Duration = .seconds(1)) {
        self.window = window
        self.longest = longest
    }

    mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        self.now = now
        var effects: [Effect] = []
        switch input {
        case .observed(let observation):
            observations[observation.source] = observation
            decide(now, why: "", &effects)
        case .deadlineReached:
            if let burstEnds, burstEnds <= now { burstSettled(now, &effects) }
            decide(now, why: " (an observation expired)", &effects)
        }
        return effects
    }

    /// The earlier of the next expiry and the end of the burst being held back.
    var nextDeadline: Instant? {
        let expiry = observations.values.compactMap(\.expiry).filter { expiry in now.map { expiry > $0 } ?? true }.min()
        return [expiry, burstEnds].compactMap { $0 }.min()
    }

    /// Whether some source currently says there is a port.
    func hasLivePort(now: Instant) -> Bool {
        observations.values.contains { Self.isLive($0, now) }
    }

    private mutating func decide(_ now: Instant, why: String, _ effects: inout [Effect]) {
        let live = observations.values.filter { Self.isLive($0, now) }
        let authorities = live.filter(\.source.isAuthority)
        let pool = authorities.isEmpty ? live : authorities
        guard let winner = pool.max(by: { $0.time < $1.time }), let port = winner.port else {
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
        if previous != port { effects.append(.desiredPortChanged(port)) }
        let was = previous != port ? previous.map { " (was \($0))" } ?? ""
            : again ? " (again)" : " (its ports are now \(winner.ports.map(\.description).joined(separator: ", ")))"
        handOff(port, source: winner.source, was: was, why: why, now, &effects)
    }

    /// A live port of a source the winner outranks that differs from the winner's: said once per
    /// pair of ports in a row, and every time to the trace.
    private mutating func reportOutranked(live: [PortObservation], winner: PortObservation, port: Port,
                                          _ effects: inout [Effect]) {
        let overruled = live.filter { !$0.source.isAuthority && $0.port != port }.max { $0.time < $1.time }
        guard winner.source.isAuthority, let overruled, let hint = overruled.port else {
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
        effects.append(.apply(change(port, source)))
    }

    private mutating func burstSettled(_ now: Instant, _ effects: inout [Effect]) {
        lastHandOff = now
        waitingSince = nil
        burstEnds = nil
        guard let desired else { return }
        effects.append(.log(.notice, "port \(desired) from \(desiredSource?.rawValue ?? "?") (the last of a burst)"))
        effects.append(.apply(change(desired, desiredSource)))
    }

    private mutating func change(_ port: Port, _ source: PortObservation.Source?) -> PortChange {
        defer { handedOff = port }
        return PortChange(port: port, previous: handedOff, source: source?.rawValue ?? "", ports: desiredPorts)
    }

    /// Names a port and has not expired.
    private static func isLive(_ observation: PortObservation, _ now: Instant) -> Bool {
        observation.port != nil && (observation.expiry.map { $0 > now } ?? true)
    }
}

private extension PortObservation.Source {
    /// How a person names the source at the start of a sentence.
    var spokenName: String {
        switch self {
        case .protonFile: "the ProtonVPN file"
        case .natpmp: "NAT-PMP"
        case .gluetun: "Gluetun's control server"
        case .gluetunFile: "Gluetun's port file"
        }
    }

    var possessiveName: String {
        switch self {
        case .protonFile: "the ProtonVPN file's"
        case .natpmp: "NAT-PMP's"
        case .gluetun: "Gluetun's"
        case .gluetunFile: "Gluetun's port file's"
        }
    }
}
