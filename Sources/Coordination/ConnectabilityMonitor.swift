import Domain
import Reactor

/// When to look whether peers can connect, and what to mend, once per cause. The daemon says
/// `.look` after a port was verified and when the tunnel changed; the monitor asks the shell to
/// gather the facts (`.gather`, answered at once with `.gathered`), judges them, and looks again
/// soon while no peer has connected yet (`followUps`), then every `interval`.
///
/// A listener that cannot take connections is mended by re-opening it (the client moved off its
/// port and back), once per cause; if the same cause is still there at the next look, the heal
/// failed and is said once (`.healFailed`: the daemon runs the recovery command). Never a loop:
/// a cause is healed again only after it went away.
public struct ConnectabilityMonitor: LoopStateMachine {
    public struct Settings: Equatable, Sendable {
        public var interval: Duration
        /// Looks after a change while no peer has connected yet, each after the one before.
        public var followUps: [Duration]
        public var heal: Bool
        /// From a heal to the look that tells whether it worked.
        public var healSettle: Duration

        public init(interval: Duration = .seconds(300), followUps: [Duration] = [.seconds(15), .seconds(60)], heal: Bool = true,
                    healSettle: Duration = .seconds(3)) {
            self.interval = interval
            self.followUps = followUps
            self.heal = heal
            self.healSettle = healSettle
        }
    }

    public enum Input: Equatable, Sendable {
        /// Something changed (a port verified, the tunnel back or recreated): look now.
        case look
        /// The facts, in answer to `.gather`; nil while a change is still on its way to the
        /// clients (looked at again shortly).
        case gathered(Connectability.Facts?)
        /// A fact came in by itself (the outside check answered): look now, as planned otherwise.
        case factsChanged
        case deadlineReached
    }

    public enum Effect: Equatable, Sendable {
        /// Gather the facts now and answer with `.gathered`.
        case gather
        /// A new judgement (its verdict or evidence differ from the last).
        case judged(Connectability.Judgement, verdictChanged: Bool)
        /// Re-open this client's listener (move its port away and back) for `cause`.
        case heal(client: String, cause: Connectability.Cause)
        /// Ask the source for its mapping again, now, for `cause`.
        case remap(cause: Connectability.Cause)
        /// The heal for `cause` did not mend it.
        case healFailed(Connectability.Cause)
    }

    public let settings: Settings
    public private(set) var nextDeadline: Instant?
    public private(set) var judgement: Connectability.Judgement?
    /// The last verdict decided: the judgement shown while a listener opens is not one.
    private var verdict: Connectability.Verdict?
    /// When the last judgement was made.
    public private(set) var judgedAt: Instant?
    private var followUp = 0
    /// When the last `.look` came: a client opens its listener a moment after it takes a port.
    private var lookedAt: Instant?
    /// Causes healed (or given up on) while they last.
    private var healed: Set<Connectability.Cause> = []
    /// When the last heal was made: it is judged only once it had `healSettle`.
    private var healedAt: Instant?
    private var gaveUp: Set<Connectability.Cause> = []
    /// A peer was seen connecting since the last change: the port stays connectable while no
    /// peer happens to be connected and nothing is wrong (connections come and go).
    private var proven = false

    public init(settings: Settings) {
        self.settings = settings
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        switch input {
        case .look:
            followUp = 0
            proven = false
            lookedAt = now
            nextDeadline = nil
            return [.gather]
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now else { return [] }
            nextDeadline = nil
            return [.gather]
        case .factsChanged:
            if let healedAt, now < healedAt + settings.healSettle { return [] }
            return [.gather]
        case .gathered(nil):
            nextDeadline = now + min(settings.interval, Self.notSettledRetry)
            return []
        case .gathered(let facts?):
            return judged(Connectability.judge(facts), facts, now)
        }
    }

    /// How long after a change a missing listener is waited for, looked at every `listenerPoll`.
    public static let listenerPatience = Duration.seconds(2)
    public static let listenerPoll = Duration.milliseconds(50)

    /// How long after a heal an outside check still being asked is waited for.
    public static let outsidePatience = Duration.seconds(40)

    /// How soon to look again when a change was still on its way.
    public static let notSettledRetry = Duration.seconds(5)

    private mutating func judged(_ judged: Connectability.Judgement, _ facts: Connectability.Facts, _ now: Instant) -> [Effect] {
        var effects: [Effect] = []
        var fresh = judged
        if case .notConnectable(let missing) = judged.verdict, case .notListening(let label, let port) = missing,
           let lookedAt, now < lookedAt + Self.listenerPatience {
            // qBittorrent answers the port's write before libtorrent opens its sockets: nothing
            // listening is a verdict only once the listener had its time (as `ListenerGate`).
            // Meanwhile the port's verdict is unknown, never the last port's.
            fresh.verdict = .unknown(.listenerOpening(label: label, port: port))
            fresh.evidence = fresh.evidence.map { $0.cause == missing ? Connectability.Evidence(kind: $0.kind, ok: nil, text: "\($0.text), not yet") : $0 }
            proven = false
            // Shown, but not a verdict of its own: neither logged nor kept in the history.
            if fresh != judgement { effects.append(.judged(fresh, verdictChanged: false)) }
            judgement = fresh
            judgedAt = now
            nextDeadline = min(now + Self.listenerPoll, lookedAt + Self.listenerPatience)
            return effects
        }
        switch fresh.verdict {
        case .connectable:
            proven = true
        case .unknown(.noIncomingYet) where proven:
            fresh.verdict = .connectable
            fresh.evidence.append(Connectability.Evidence(kind: "incoming", ok: true, text: "a peer connected earlier, since the port was last changed"))
        case .notConnectable, .unknown:
            proven = false
        }
        let verdictChanged = fresh.verdict != verdict
        if fresh != judgement { effects.append(.judged(fresh, verdictChanged: verdictChanged)) }
        judgement = fresh
        verdict = fresh.verdict
        judgedAt = now
        let cause = fresh.verdict.cause
        if facts.outside == .asking, healedAt.map({ now < $0 + Self.outsidePatience }) == true {
            // After a re-map, the outside check is asked anew: nothing is decided until it says.
            nextDeadline = now + settings.healSettle
            return effects
        }
        // A cause that went away may be healed again when it comes back.
        let found = fresh.causes
        healed = healed.filter(found.contains)
        gaveUp = gaveUp.filter(found.contains)
        // What a heal mends: each listener that did not open, of a client that can re-open it,
        // once it had its time (the verdict names only the first thing wrong: another client's
        // is healed too); the verdict's own cause when mapping again mends it.
        let opening = lookedAt.map { now < $0 + Self.listenerPatience } ?? false
        let healable = !settings.heal ? [] : found.filter { found in
            guard let client = found.healableClient else { return found.wantsRemap && found == cause }
            return !opening && facts.clients.contains { $0.label == client && $0.canReopen }
        }
        let due = healable.filter { !healed.contains($0) }
        if !due.isEmpty {
            healed.formUnion(due)
            healedAt = now
            effects += due.map { cause in cause.healableClient.map { .heal(client: $0, cause: cause) } ?? .remap(cause: cause) }
            nextDeadline = now + settings.healSettle
            return effects
        }
        if !healable.isEmpty, let healedAt, now < healedAt + settings.healSettle {
            // Looked at again before the heal had its time (another change brought a look).
            nextDeadline = healedAt + settings.healSettle
            return effects
        }
        for cause in healable where !gaveUp.contains(cause) {
            gaveUp.insert(cause)
            effects.append(.healFailed(cause))
        }
        if opening, let lookedAt, found.contains(where: { $0.healableClient != nil }) {
            // Another client's listener is still opening: looked at again once it had its time.
            nextDeadline = lookedAt + Self.listenerPatience
            return effects
        }
        if case .unknown(.noIncomingYet) = fresh.verdict, followUp < settings.followUps.count {
            nextDeadline = now + settings.followUps[followUp]
            followUp += 1
        } else {
            nextDeadline = now + settings.interval
        }
        return effects
    }
}
