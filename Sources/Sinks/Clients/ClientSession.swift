import Domain
import HTTP
import Reactor

/// The inputs of a client session (`TransmissionSession`, `DelugeSession`): what happened.
public enum ClientSessionInput {
    /// Reach the client now, before any port (the daemon's start): its handshake and login.
    case connect
    case desiredPort(Port)
    case settingsChanged(ClientSettings)
    case responseReceived(HTTPResponse)
    case requestFailed(HTTPClientError)
    case deadlineReached
    /// The answer to `.checkListener`.
    case listenerChecked(ListeningSockets.Check)
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

/// A session built around a `ClientSessionCore`: what it says about itself comes from there.
protocol ClientSessionCoreOwner {
    var core: ClientSessionCore { get }
}

extension ClientSessionCoreOwner {
    public var settings: ClientSettings { core.settings }
    public var status: SinkStatus { core.status }
    public var counters: SinkCounters { core.counters }
    public var nextDeadline: Instant? { core.nextDeadline }
    public var isLoginRefused: Bool { core.refusedUntil != nil }
}

/// What every client session keeps the same way: the status, the back-off after failures,
/// the pause after a refused login, the drift check and the re-announce allowance, and the
/// deadline that is the earliest of them. The sessions own one each and speak their protocol
/// around it.
struct ClientSessionCore {
    /// "Transmission", "deluge-web": for messages.
    let client: String
    var settings: ClientSettings
    var status = SinkStatus()
    var counters = SinkCounters()
    var desired: Port?
    /// A sync was asked for while a request was in flight: it starts when the answer is in.
    var syncRequested = false
    /// Reach the client before any port is wanted (`.connect`), until its handshake is done.
    var connectRequested = false
    /// A sync has something to do: a port is wanted, or the client is to be reached.
    var hasWork: Bool { desired != nil || connectRequested }
    /// The next sync writes the desired port without reading first (see `desire`).
    var writeWithoutReading = false

    /// The latency path: when the client was verified on another port, the new one is written
    /// at once, without the read before it (the read-back still verifies). Returns the port it
    /// had then, nil when a read comes first; either way the shortcut is used up.
    mutating func writeAtOnce(_ wanted: Port) -> Port? {
        defer { writeWithoutReading = false }
        guard writeWithoutReading, let verified = status.verifiedPort, verified != wanted else { return nil }
        return verified
    }
    private(set) var refusedUntil: Instant?
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

    init(client: String, settings: ClientSettings) {
        self.client = client
        self.settings = settings
        redaction = Self.redaction(settings)
        allowance = ReannounceAllowance(enabled: settings.reannounce, interval: settings.reannounceInterval)
        gate = ListenerGate(canSeeListener: settings.url.isThisHost)
    }

    var nextDeadline: Instant? { [retryAt, driftCheckAt, refusedUntil, allowance.dueAt, gate.wakeAt].compactMap { $0 }.min() }

    /// A new desired port. `sync`: whether to sync now (not while a login is refused);
    /// `skipRead`: verified on the old port with nothing in flight (`idle`), so the new port can
    /// be written at once (the read-back still verifies): the latency path.
    mutating func desire(_ port: Port, idle: Bool, _ effects: inout [ClientSessionEffect]) -> (sync: Bool, skipRead: Bool) {
        let unchanged = port == desired && status.verifiedPort == port && status.health == .verified
        let skipRead = !unchanged && status.health == .verified && idle
        desired = port
        if refusedUntil != nil {
            effects.append(.log(.warning, "port \(port) noted, but not applied: \(client) refused the login (see above)"))
            return (false, skipRead)
        }
        if !unchanged { status.health = .applying }
        return (true, skipRead)
    }

    /// A request that got no answer: the client is not there, or `call` failed.
    mutating func requestFailed(_ call: String, _ error: HTTPClientError, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        if error.isUnreachable {
            fail("\(client) at \(settings.url) is unreachable: \(error)", unreachable: true, now, &effects)
        } else {
            fail("\(call): \(error)", now, &effects)
        }
    }

    /// Says what differs before a write that restores `wanted`: a warning when the port was
    /// verified (someone changed it behind portsync's back), plain information otherwise.
    mutating func differs(_ differences: [String], setting wanted: String, _ effects: inout [ClientSessionEffect]) {
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
    mutating func finish(since before: SinkStatus, _ effects: inout [ClientSessionEffect]) {
        status = status.redacted(by: redaction)
        effects = effects.map { effect in
            guard case .log(let level, let message) = effect else { return effect }
            return .log(level, redaction(message))
        }
        if status != before { effects.append(.statusChanged(status)) }
    }

    private static func redaction(_ settings: ClientSettings) -> Redaction {
        Redaction([settings.password], basicUser: settings.username)
    }

    /// Which deadlines have passed, each cleared; a refusal that ended is logged.
    mutating func deadlinesReached(_ now: Instant, _ effects: inout [ClientSessionEffect]) -> (sync: Bool, reannounce: Bool) {
        var sync = false
        if let at = retryAt, at <= now {
            retryAt = nil
            sync = true
        }
        if let at = driftCheckAt, at <= now {
            driftCheckAt = nil
            sync = true
        }
        if let at = refusedUntil, at <= now {
            refusedUntil = nil
            effects.append(.log(.info, "trying to log in to \(client) again after the pause"))
            sync = true
        }
        var reannounce = take(gate.deadlineReached(now), &effects)
        if allowance.deadlineReached(now), let port = status.verifiedPort, status.health == .verified {
            reannounce = take(gate.open(port, now), &effects) || reannounce
        }
        return (sync, reannounce)
    }

    /// New settings: a changed URL or account ends a login refusal. Whether it changed.
    mutating func update(_ fresh: ClientSettings, _ effects: inout [ClientSessionEffect]) -> Bool {
        let accountChanged = !fresh.sameAccount(as: settings)
        settings = fresh
        redaction = Self.redaction(fresh)
        allowance.enabled = fresh.reannounce
        allowance.interval = fresh.reannounceInterval
        gate.canSeeListener = fresh.url.isThisHost
        consecutiveFailures = 0
        lastProblem = nil
        retryAt = nil
        if accountChanged {
            status.version = nil
            if refusedUntil != nil { effects.append(.log(.info, "settings changed: trying to log in to \(client) again")) }
            refusedUntil = nil
        }
        return accountChanged
    }

    /// The port is on the client, read back: the drift check is armed, problems are over.
    mutating func verified(_ port: Port, changed: Bool, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        if changed {
            effects.append(.log(.notice, "\(client): port \(port) applied and verified"))
        } else if status.verifiedPort != port || status.health != .verified {
            effects.append(.log(.info, "\(client) already listens on port \(port)"))
        }
        if lastProblem != nil { effects.append(.log(.info, "\(client) is fine again")) }
        consecutiveFailures = 0
        lastProblem = nil
        retryAt = nil
        status.verifiedPort = port
        status.health = .verified
        driftCheckAt = now + settings.checkInterval
    }

    /// Stops all requests until the settings change or `loginRetryDelay` passes.
    mutating func refuse(_ message: String, failed: Bool, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        if failed { counters.failedLogins += 1 }
        let until = now + settings.loginRetryDelay
        refusedUntil = until
        retryAt = nil
        driftCheckAt = nil
        allowance.cancel()
        gate.cancel()
        lastProblem = message
        status.health = .loginRefused(message)
        effects.append(.log(.error, "\(message); no more logins until the configuration is reloaded or \(settings.loginRetryDelay.minutesText) pass"))
    }

    /// A transient failure: retried with capped exponential back-off, logged once per change
    /// of problem, not once per retry. `kind` names the problem when the message quotes the
    /// client (whose text may change on every retry); by default the message is the kind.
    mutating func fail(_ message: String, kind: String? = nil, unreachable: Bool = false, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        consecutiveFailures += 1
        let kind = kind ?? message
        effects.append(kind == lastProblem ? .log(.debug, "still: \(message)") : .log(.error, message))
        lastProblem = kind
        status.health = unreachable ? .unreachable(message) : .failing(message)
        let exponent = min(consecutiveFailures - 1, 20)
        retryAt = now + min(settings.retryInitial * (1 << exponent), settings.retryMax)
        // The retry reads the port again: a drift check armed before the failure would only
        // come first (past, after a suspend) and cut the back-off short.
        driftCheckAt = nil
    }

    /// After a verified change of port: whether to tell the trackers now. A new port is told
    /// once the client listens on it (`ListenerGate`: the socket table is looked at first, or a
    /// remote client given its settling time); the same port again at most once per allowance.
    mutating func reannounceDue(_ port: Port, _ now: Instant, _ effects: inout [ClientSessionEffect]) -> Bool {
        guard allowance.due(port, now) else { return false }
        return take(gate.open(port, now), &effects)
    }

    /// The socket table's answer: whether to tell the trackers now.
    mutating func listenerChecked(_ check: ListeningSockets.Check, _ now: Instant, _ effects: inout [ClientSessionEffect]) -> Bool {
        take(gate.listenerChecked(check, now), &effects)
    }

    private mutating func take(_ step: ListenerGate.Step, _ effects: inout [ClientSessionEffect]) -> Bool {
        switch step {
        case .wait:
            return false
        case .checkListener(let port):
            effects.append(.checkListener(port))
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
