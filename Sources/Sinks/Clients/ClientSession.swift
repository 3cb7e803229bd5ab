import Domain
import HTTP
import Reactor

/// The inputs of a client session (`TransmissionSession`, `DelugeSession`): what happened.
public enum ClientSessionInput {
    /// Reach the client now, before any port (the daemon's start): its handshake, its login and
    /// its port settings, read once (`SinkStatus.inspection`).
    case connect
    /// The same, changing nothing on the client (`portsync doctor`): deluge-web is not
    /// connected to its daemon when it is not. A port given later is applied as ever.
    case inspect
    case desiredPort(Port)
    case settingsChanged(ClientSettings)
    case responseReceived(HTTPResponse)
    case requestFailed(HTTPClientError)
    case deadlineReached
    /// The answer to `.checkListener`.
    case listenerChecked(ListeningSockets.Check)
    /// Re-open the listener on the verified port: the client re-binds only for a port other
    /// than its own, so the port is moved one away and back.
    case reassert
}

/// What a client session asks its shell to do.
public enum ClientSessionEffect: Equatable {
    /// Send this request; its answer comes back as `.responseReceived` or `.requestFailed`.
    /// `retryIfStale`: safe to resend on a fresh connection if the kept-alive one was dead.
    case send(HTTPRequest, retryIfStale: Bool)
    case log(LogLevel, String)
    case statusChanged(SinkStatus)
    /// Look in the socket table for a listener on the port before telling the trackers of it
    /// (`ListenerGate`); answer with `.listenerChecked`.
    case checkListener(Port)
}

/// What the core adds to its session's effects (`ClientSessionEffect`, `QBittorrentSession.Effect`).
protocol ClientSessionCoreEffect {
    static func log(_ level: LogLevel, _ message: String) -> Self
    static func statusChanged(_ status: SinkStatus) -> Self
    /// Look for a listener on the new port before telling the trackers of it (`ListenerGate`).
    static func checkListenerBeforeAnnouncing(_ port: Port) -> Self
    /// The level and text, when this is a log line.
    var logLine: (level: LogLevel, message: String)? { get }
}

extension ClientSessionEffect: ClientSessionCoreEffect {
    static func checkListenerBeforeAnnouncing(_ port: Port) -> ClientSessionEffect { .checkListener(port) }

    var logLine: (level: LogLevel, message: String)? {
        if case .log(let level, let message) = self { (level, message) } else { nil }
    }
}

/// A session built around a `ClientSessionCore`: what it says about itself comes from there.
protocol ClientSessionCoreOwner {
    var core: ClientSessionCore { get }
}

extension ClientSessionCoreOwner {
    public var status: SinkStatus { core.status }
    public var counters: SinkCounters { core.counters }
    public var isLoginRefused: Bool { core.login.refusedUntil != nil }
}

/// What every client session keeps the same way: the status, the login's state and the pause
/// after a refused login, the back-off after failures, the drift check and the re-announce
/// allowance, and the deadline that is the earliest of them. The sessions (qBittorrent,
/// Transmission, Deluge) own one each and speak their protocol around it.
struct ClientSessionCore {
    /// "Transmission", "deluge-web": for messages.
    let client: String
    /// How the log line of a port applied names it: "listen_port" gives "listen_port 51413
    /// applied and verified"; nil, "Transmission: port 51413 applied and verified".
    let portSetting: String?
    var settings: ClientSettings
    var status = SinkStatus()
    var counters = SinkCounters()
    var login = ClientLogin()
    var desired: Port?
    /// A sync was asked for while a request was in flight: it starts when the answer is in.
    var syncRequested = false
    /// Reach the client before any port is wanted (`.connect`), until its port settings are read.
    var connectRequested = false
    /// The connect is an `.inspect`: it changes nothing on the client.
    var changesNothing = false
    /// A sync has something to do: a port is wanted, or the client is to be reached.
    var hasWork: Bool { desired != nil || connectRequested }
    /// The next sync writes the desired port without reading first (see `desire`).
    var writeWithoutReading = false
    /// The next sync writes this port first, then the desired one again (`reassert`).
    private var detour: Port?

    /// The latency path: when the client was verified on another port, the new one is written
    /// at once, without the read before it (the read-back still verifies). Returns the port it
    /// had then, nil when a read comes first; either way the shortcut is used up.
    mutating func writeAtOnce(_ wanted: Port) -> Port? {
        defer { writeWithoutReading = false }
        guard writeWithoutReading, let verified = status.verifiedPort, verified != wanted else { return nil }
        return verified
    }
    private(set) var retryAt: Instant?
    private(set) var driftCheckAt: Instant?
    private var allowance: ReannounceAllowance
    private var gate: ListenerGate
    /// What the gate knew of the listener when the trackers were told (for the log line).
    private(set) var announcedListener: ListenerGate.Listener?
    private var consecutiveFailures = 0
    /// The kind of the last problem (see `fail`), or the message of a refusal.
    private var lastProblem: String?
    /// The settings' secrets in every form a peer may echo them.
    private var redaction: Redaction

    init(client: String, settings: ClientSettings, portSetting: String? = nil) {
        self.client = client
        self.portSetting = portSetting
        self.settings = settings
        redaction = Self.redaction(settings)
        allowance = ReannounceAllowance(enabled: settings.reannounce, interval: settings.reannounceInterval)
        gate = ListenerGate(canSeeListener: settings.canSeeListener)
    }

    var nextDeadline: Instant? { [retryAt, driftCheckAt, login.refusedUntil, allowance.dueAt, gate.wakeAt].compactMap { $0 }.min() }

    /// A new desired port. `sync`: whether to sync now (not while a login is refused);
    /// `skipRead`: verified on the old port with nothing in flight (`idle`), so the new port can
    /// be written at once (the read-back still verifies): the latency path.
    mutating func desire<Effect: ClientSessionCoreEffect>(_ port: Port, idle: Bool, _ effects: inout [Effect]) -> (sync: Bool, skipRead: Bool) {
        let unchanged = port == desired && status.verifiedPort == port && status.health == .verified
        let skipRead = !unchanged && status.health == .verified && idle
        // The wait for the last port's listener, to tell its trackers, is over: the trackers
        // hear of the port the client ends up on.
        if port != desired { gate.cancel() }
        desired = port
        if login.refusedUntil != nil {
            effects.append(.log(.warning, "port \(port) noted, but not applied: \(client) refused the login (see above)"))
            return (false, skipRead)
        }
        if unchanged {
            // The same port again (a source that had none names it anew): the client may have
            // been set elsewhere meanwhile (to 0, by a VPN's "down" hook); one read tells, and
            // writes only what differs.
            effects.append(.log(.debug, "port \(port) again: checking that \(client) still has it"))
        } else {
            status.health = .applying
        }
        return (true, skipRead)
    }

    /// Moves a client verified on the desired port one port away and back, so that it re-opens
    /// its listener (none of Transmission, Deluge and qBittorrent re-binds for a write of the
    /// port it has). Whether there was something to move: nothing is done for a client that is
    /// not verified on it, or whose login is refused.
    mutating func reassert<Effect: ClientSessionCoreEffect>(_ effects: inout [Effect]) -> Bool {
        guard let port = desired, status.verifiedPort == port, status.health == .verified, login.refusedUntil == nil else { return false }
        let away = port.neighbour
        detour = away
        counters.listenerRepairs += 1
        status.health = .applying
        effects.append(.log(.warning, "re-opening \(client)'s listener on port \(port): moving it to \(away) and back"))
        return true
    }

    /// The port to write before the desired one, once: the detour of a `reassert`.
    mutating func takeDetour() -> Port? {
        defer { detour = nil }
        return detour
    }

    /// A request that got no answer: the client is not there, or `call` failed; `step`: the
    /// step of reaching the client it was for, if any.
    mutating func requestFailed<Effect: ClientSessionCoreEffect>(_ call: String, _ error: HTTPClientError, step: ClientProblem.Step?,
                                                               _ now: Instant, _ effects: inout [Effect]) {
        let problem = step.map { ClientProblem($0, .noAnswer(error)) }
        if error.isUnreachable {
            fail("\(client) at \(settings.url) is unreachable: \(error)", unreachable: true, problem: problem, now, &effects)
        } else {
            fail("\(call): \(error)", problem: problem, now, &effects)
        }
    }

    /// Says what differs before a write that restores `wanted`: a warning when the port was
    /// verified (someone changed it behind portsync's back), plain information otherwise.
    mutating func differs<Effect: ClientSessionCoreEffect>(_ differences: [String], setting wanted: String, _ effects: inout [Effect]) {
        let listed = differences.joined(separator: ", ")
        let drifted = status.verifiedPort == desired && status.health == .verified
        if drifted {
            // Off its port until the write is read back: a repair in progress, as the status says.
            counters.driftRepairs += 1
            status.health = .applying
        }
        effects.append(drifted
            ? .log(.warning, "\(client)'s settings changed behind portsync's back (\(listed)); restoring \(wanted)")
            : .log(.info, "\(client) has \(listed); setting \(wanted)"))
    }

    /// Ends a `handle`: every secret is taken out of what the session says (its log lines and
    /// its status quote the client), and a status that differs from `before` is announced.
    mutating func finish<Effect: ClientSessionCoreEffect>(since before: SinkStatus, _ effects: inout [Effect]) {
        status = status.redacted(by: redaction)
        effects = effects.map { effect in
            guard let line = effect.logLine else { return effect }
            return .log(line.level, redaction(line.message))
        }
        if status != before { effects.append(.statusChanged(status)) }
    }

    private static func redaction(_ settings: ClientSettings) -> Redaction {
        Redaction([settings.password], basicUser: settings.username)
    }

    /// Which deadlines have passed, each cleared; a refusal that ended is logged. `driftCheck`:
    /// the drift check is among them (`sync` is then true too).
    mutating func deadlinesReached<Effect: ClientSessionCoreEffect>(_ now: Instant, _ effects: inout [Effect]) -> (sync: Bool, driftCheck: Bool, reannounce: Bool) {
        var sync = false
        var driftCheck = false
        if let at = retryAt, at <= now {
            retryAt = nil
            sync = true
        }
        if let at = driftCheckAt, at <= now {
            driftCheckAt = nil
            sync = true
            driftCheck = true
        }
        if login.pauseEnds(now) {
            effects.append(.log(.info, "trying to log in to \(client) again after the pause"))
            sync = true
        }
        var reannounce = take(gate.deadlineReached(now), &effects)
        if allowance.deadlineReached(now), let port = status.verifiedPort, status.health == .verified {
            reannounce = take(gate.open(port, now), &effects) || reannounce
        }
        return (sync, driftCheck, reannounce)
    }

    /// New settings: a changed URL or account ends the session and a login refusal. Whether it
    /// changed.
    mutating func update<Effect: ClientSessionCoreEffect>(_ fresh: ClientSettings, _ effects: inout [Effect]) -> Bool {
        let accountChanged = !fresh.sameAccount(as: settings)
        settings = fresh
        redaction = Self.redaction(fresh)
        allowance.enabled = fresh.reannounce
        allowance.interval = fresh.reannounceInterval
        gate.canSeeListener = fresh.canSeeListener
        consecutiveFailures = 0
        lastProblem = nil
        retryAt = nil
        if accountChanged {
            status.version = nil
            status.inspection = nil
            if login.refusedUntil != nil { effects.append(.log(.info, "settings changed: trying to log in to \(client) again")) }
        }
        login.settingsChanged(accountChanged: accountChanged)
        return accountChanged
    }

    /// The port is on the client, read back: the drift check is armed, problems are over.
    mutating func verified<Effect: ClientSessionCoreEffect>(_ port: Port, changed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        if changed {
            effects.append(.log(.notice, "\(portSetting.map { "\($0) \(port)" } ?? "\(client): port \(port)") applied and verified"))
        } else if status.verifiedPort != port || status.health != .verified {
            effects.append(.log(.info, "\(client) already listens on port \(port)"))
        }
        if lastProblem != nil { effects.append(.log(.info, "\(client) is fine again")) }
        consecutiveFailures = 0
        lastProblem = nil
        login.verified()
        retryAt = nil
        status.verifiedPort = port
        status.health = .verified
        status.problem = nil
        driftCheckAt = now + settings.checkInterval
    }

    /// The client's port settings, read: the first read is kept in the status, and the connect
    /// is done. Before any port, a problem met on the way there (and retried since) is over.
    mutating func inspected<Effect: ClientSessionCoreEffect>(_ inspection: ClientInspection, _ effects: inout [Effect]) {
        connectRequested = false
        guard status.inspection == nil else { return }
        status.inspection = inspection
        guard desired == nil else { return }
        if lastProblem != nil { effects.append(.log(.info, "\(client) is fine again")) }
        consecutiveFailures = 0
        lastProblem = nil
        retryAt = nil
        status.health = .idle
        status.problem = nil
    }

    /// Stops all requests until the settings change or `loginRetryDelay` passes.
    mutating func refuse<Effect: ClientSessionCoreEffect>(_ message: String, failed: Bool, problem: ClientProblem?, _ now: Instant, _ effects: inout [Effect]) {
        if failed { counters.failedLogins += 1 }
        login.refuse(until: now + settings.loginRetryDelay)
        syncRequested = false
        retryAt = nil
        driftCheckAt = nil
        allowance.cancel()
        gate.cancel()
        lastProblem = message
        status.health = .loginRefused(message)
        status.problem = problem
        effects.append(.log(.error, "\(message); no more logins until the configuration is reloaded or \(settings.loginRetryDelay.minutesText) pass"))
    }

    /// A transient failure: retried with capped exponential back-off, logged once per change
    /// of problem, not once per retry. `kind` names the problem when the message quotes the
    /// client (whose text may change on every retry); by default the message is the kind.
    /// `problem`: the same as a value, when it came at a step of reaching the client.
    mutating func fail<Effect: ClientSessionCoreEffect>(_ message: String, kind: String? = nil, unreachable: Bool = false, problem: ClientProblem? = nil,
                                                      _ now: Instant, _ effects: inout [Effect]) {
        consecutiveFailures += 1
        self.problem(message, kind: kind, health: unreachable ? .unreachable(message) : .failing(message), &effects)
        status.problem = problem
        let exponent = min(consecutiveFailures - 1, 20)
        retryAt = now + min(settings.retryInitial * (1 << exponent), settings.retryMax)
        // The retry reads the port again: a drift check armed before the failure would only
        // come first (past, after a suspend) and cut the back-off short.
        driftCheckAt = nil
    }

    /// A problem that a repair did not fix (nothing listens on the port even after a reassert):
    /// said once, `health` until it is fixed, and looked at again by the next drift check, not
    /// sooner: retrying would repeat what did not help.
    mutating func persists<Effect: ClientSessionCoreEffect>(_ message: String, health: SinkStatus.Health, _ now: Instant, _ effects: inout [Effect]) {
        problem(message, health: health, &effects)
        status.problem = nil
        retryAt = nil
        driftCheckAt = now + settings.checkInterval
    }

    private mutating func problem<Effect: ClientSessionCoreEffect>(_ message: String, kind: String? = nil, health: SinkStatus.Health, _ effects: inout [Effect]) {
        let kind = kind ?? message
        effects.append(kind == lastProblem ? .log(.debug, "still: \(message)") : .log(.error, message))
        lastProblem = kind
        status.health = health
    }

    /// After a verified change of port: whether to tell the trackers now. A new port is told
    /// once the client listens on it (`ListenerGate`: the socket table is looked at first, or a
    /// remote client given its settling time); the same port again at most once per allowance.
    mutating func reannounceDue<Effect: ClientSessionCoreEffect>(_ port: Port, _ now: Instant, _ effects: inout [Effect]) -> Bool {
        guard allowance.due(port, now) else { return false }
        return take(gate.open(port, now), &effects)
    }

    /// The socket table's answer: whether to tell the trackers now.
    mutating func listenerChecked<Effect: ClientSessionCoreEffect>(_ check: ListeningSockets.Check, _ now: Instant, _ effects: inout [Effect]) -> Bool {
        take(gate.listenerChecked(check, now), &effects)
    }

    private mutating func take<Effect: ClientSessionCoreEffect>(_ step: ListenerGate.Step, _ effects: inout [Effect]) -> Bool {
        switch step {
        case .wait:
            return false
        case .checkListener(let port):
            effects.append(.checkListenerBeforeAnnouncing(port))
            return false
        case .announce(let port, let listener):
            guard status.verifiedPort == port else { return false }
            announcedListener = listener
            return true
        }
    }

    mutating func reannounced(_ port: Port, _ now: Instant) {
        allowance.reannounced(port, now)
        counters.reannounces += 1
    }
}

extension Duration {
    /// "65 min", "30 s": for messages about long pauses.
    var minutesText: String {
        let seconds = components.seconds
        return seconds >= 120 ? "\(seconds / 60) min" : "\(seconds) s"
    }
}
