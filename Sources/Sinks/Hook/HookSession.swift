import Reactor

/// The command hook's logic, with no I/O (as `QBittorrentSession`): port changes and the ends
/// of runs in, runs to start out. Never two runs at once: a change that comes while one runs
/// waits, and only the latest of those runs after it. A failed run is tried once more after
/// `retryDelay`; after that the next change or a reload runs it again. A port named again (the
/// same port after a lapse) runs it again too: what stands behind the hook may have been reset.
/// Healthy (verified) when the last run for the current port exited with 0.
public struct HookSession {
    public enum Input {
        case portChanged(PortChange)
        case settingsChanged(HookSettings)
        /// The run asked for by `.run` ended, with the first line of its stderr.
        case ended(HookOutcome, errorLine: String?)
        case deadlineReached
    }

    public enum Effect: Equatable {
        /// Start `command` with exactly `environment`; answer with `.ended` once it has ended
        /// (also when it could not start).
        case run(command: [String], environment: [String])
        case log(LogLevel, String)
        case statusChanged(SinkStatus)
    }

    public private(set) var settings: HookSettings
    public private(set) var status = SinkStatus()
    /// `applies`: runs; `failedApplies`: runs that did not exit with 0.
    public private(set) var counters = SinkCounters()
    public private(set) var lastRun: HookRun?
    /// The latest change handed over: what the hook should have seen last.
    public private(set) var current: PortChange?
    /// The change the running hook was given.
    public private(set) var running: PortChange?
    public private(set) var nextDeadline: Instant?
    /// The current change waits for the running hook to end.
    private var waiting = false
    /// The current change's one retry is used.
    private var retried = false

    public init(settings: HookSettings) {
        self.settings = settings
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        let before = status
        switch input {
        case .portChanged(let change):
            current = change
            retried = false
            nextDeadline = nil
            status.health = .applying
            start(&effects)
        case .settingsChanged(let fresh):
            let changed = fresh != settings
            settings = fresh
            guard current != nil, changed || lastRun?.outcome.succeeded != true else { break }
            retried = false
            nextDeadline = nil
            status.health = .applying
            start(&effects)
        case .ended(let outcome, let errorLine):
            guard let change = running else { break }
            running = nil
            ended(HookRun(port: change.port, outcome: outcome, errorLine: errorLine), of: change, now, &effects)
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now, let change = current else { break }
            nextDeadline = nil
            retried = true
            effects.append(.log(.info, "running the hook for port \(change.port) once more"))
            start(&effects)
        }
        if status != before { effects.append(.statusChanged(status)) }
        return effects
    }

    private mutating func start(_ effects: inout [Effect]) {
        guard let change = current else { return }
        guard running == nil else {
            if !waiting { effects.append(.log(.info, "port \(change.port) waits for the hook still running for port \(running!.port)")) }
            waiting = true
            return
        }
        waiting = false
        running = change
        counters.applies += 1
        effects.append(.run(command: settings.command, environment: environment(for: change)))
    }

    /// The inherited variables and the change.
    func environment(for change: PortChange) -> [String] {
        settings.environment + [
            "PORTSYNC_PORT=\(change.port)",
            "PORTSYNC_PREVIOUS_PORT=\(change.previous.map { "\($0)" } ?? "")",
            "PORTSYNC_SOURCE=\(change.source)",
            "PORTSYNC_REASON=\(change.reason.rawValue)",
        ]
    }

    private mutating func ended(_ run: HookRun, of change: PortChange, _ now: Instant, _ effects: inout [Effect]) {
        lastRun = run
        if run.outcome.succeeded {
            effects.append(.log(.info, "\(run)"))
        } else {
            counters.failedApplies += 1
            effects.append(.log(.error, "\(run)"))
        }
        if waiting { return start(&effects) }
        guard change == current else { return }
        if run.outcome.succeeded {
            status.health = .verified
            status.verifiedPort = run.port
        } else {
            status.health = .failing("\(run)")
            if !retried { nextDeadline = now + settings.retryDelay }
        }
    }
}
