import Domain
import Glibc
import HTTP
import Reactor
import Sinks
import Watchers

/// `portsync once`: reads the configured source once, applies the port to qBittorrent,
/// verifies it, prints one line (or one JSON object) and exits: 0 ok (also when nothing needed
/// changing), 1 transient failure, 2 configuration problem (wrong credentials too), 3 no source
/// available here.
struct OnceCommand {
    let loaded: LoadedConfiguration
    let logger: Logger
    let json: Bool
    /// How long it may take in all (`--timeout`), the source and every client together: a
    /// client that keeps refusing ends it then, named.
    var timeout: Duration = .seconds(30)

    struct Outcome {
        var code: ExitCode
        var source: PortObservation.Source
        var port: Port?
        var applied = false
        var changed = false
        /// Each client's label, title ("qBittorrent v4.5.2") and version.
        var clients: [(label: String, title: String, version: String?)] = []
        var error: String?
        /// What the source said of itself at the end, for the state file.
        var sourceStatus: SourceStatus?
    }

    func run() -> ExitCode {
        // Beside a running daemon, once would fight it over the same clients: refused, naming it.
        let lock: StateLock?
        switch try? StateLock.acquire(stateFile: loaded.configuration.daemon.stateFile) {
        case .success(let held)?: lock = held
        case .failure(let held)?:
            ProcessEnvironment.printToStandardError("portsync: portsync run\(held.pid.map { " (pid \($0))" } ?? "") keeps the port for the state file \(loaded.configuration.daemon.stateFile): once would fight it; see portsync status, or stop the daemon first\n")
            return .usageOrConfiguration
        case nil: lock = nil  // no lock to be had (a read-only directory): nothing to fight over
        }
        defer { withExtendedLifetime(lock) {} }
        let outcome = execute()
        ProcessEnvironment.printToStandardOutput((json ? render(json: outcome) : render(text: outcome)) + "\n")
        return outcome.code
    }

    /// Says on stderr each step still going after a second, so that a wait is never silent;
    /// a quick run prints its result alone (stdout, for scripts). The step is put in words when
    /// it is said, so that it tells where the wait stands then.
    final class Progress {
        static let patience = Duration.seconds(1)
        private var step: () -> String = { "" }
        private var timer: Timer?

        func attach(_ loop: EventLoop) {
            timer = loop.makeTimer(name: "once.progress") { [unowned self] in
                ProcessEnvironment.printToStandardError("portsync once: \(self.step())\n")
            }
        }

        func begin(_ step: @escaping () -> String) {
            self.step = step
            timer?.schedule(after: Self.patience)
        }

        func begin(_ step: String) {
            begin { step }
        }

        func end() {
            timer?.cancel()
        }
    }
    private let steps = Progress()

    /// The plan's sources in order, each asked until it names a port or says why not: the first
    /// with a port is applied. A source that is not here at all (`auto` without the ProtonVPN
    /// file) hands over to the next.
    func execute() -> Outcome {
        let plan = SyncPlan(loaded)
        var outcome = Outcome(code: .success, source: plan.sources.settings.first?.identity ?? .protonFile)
        let loop: EventLoop
        do {
            loop = try EventLoop(logger: logger)
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        let deadline = loop.clock.now() + timeout
        steps.attach(loop)
        defer { steps.end() }
        let previous = (try? StateStore(path: loaded.configuration.daemon.stateFile).load()) ?? nil
        var missing: [SourceProblem] = []
        for (index, settings) in plan.sources.settings.enumerated() {
            outcome.source = settings.identity
            let asked: (observation: PortObservation?, status: SourceStatus)
            do {
                asked = try ask(settings.makeSource(loop: loop, memory: previous?.memory(for: settings.identity) ?? SourceMemory()), settings,
                                on: loop, until: deadline)
            } catch {
                return fail(&outcome, .transientFailure, "\(error)")
            }
            outcome.sourceStatus = asked.status
            if let observation = asked.observation, let port = observation.port {
                outcome.port = port
                let change = PortChange(port: port, previous: previous?.port, source: settings.identity.rawValue, ports: observation.ports)
                return apply(change, to: plan.sinks, previous: previous, on: loop, until: deadline, &outcome)
            }
            let prefix = missing.isEmpty ? "" : "no source available: \(missing.map(\.message).joined(separator: ", ")), and "
            switch asked.status.state {
            case .unavailable(let problem) where index < plan.sources.settings.count - 1:
                missing.append(problem)  // auto: no file; NAT-PMP may still have a port
            case .unavailable(let problem):
                return fail(&outcome, .unsupported, (prefix.isEmpty ? "no source available: " : prefix) + "\(problem.message); \(problem.fix)")
            case .standingBy where index < plan.sources.settings.count - 1:
                continue
            case .standingBy(let reason):
                // auto's router while the tunnel is there: the tunnel's source had its say.
                return fail(&outcome, .unsupported, (prefix.isEmpty ? "no source available: " : prefix) + "\(settings.identity.spokenName) is not asked: \(reason)")
            case .misconfigured(let problem):
                return fail(&outcome, .usageOrConfiguration, prefix + "\(problem.message); \(problem.fix)")
            case .failing(let problem):
                return fail(&outcome, .transientFailure, prefix + "\(problem.message); \(problem.fix)")
            case .waiting(let problem):
                return fail(&outcome, .transientFailure, prefix + "\(problem.message) in \(timeout.components.seconds) s: \(problem.fix)")
            case .starting, .forwarding:
                return fail(&outcome, .transientFailure, prefix + "no answer from \(settings.summary) in \(timeout.components.seconds) s")
            }
        }
        return fail(&outcome, .usageOrConfiguration, "no source configured")
    }

    /// Runs `source` until it names a port, says it has none or cannot, or the deadline. A
    /// lease it got is not renewed afterwards: that is what `portsync run` is for.
    private func ask(_ source: any PortSource, _ settings: any PortSourceSettings, on loop: EventLoop,
                     until deadline: Instant) throws -> (observation: PortObservation?, status: SourceStatus) {
        var seen: PortObservation?
        source.onObservation = { observation in if observation.port != nil { seen = observation } }
        steps.begin { source.status.problem?.message ?? "asking \(settings.summary)" }
        defer { source.stop(final: false) }
        try source.start()
        try loop.run(within: deadline - loop.clock.now()) { seen != nil || source.status.state.isDecided }
        return (seen, source.status)
    }

    /// Applies the port to every client (each the one its `port_index` picks) and waits until
    /// each has verified it or failed. The port before it is the state file's (for the hook).
    /// `previous`: the state file as `once` found it, read once.
    private func apply(_ change: PortChange, to clients: [any PortSinkSettings], previous: DaemonState?, on loop: EventLoop,
                       until deadline: Instant, _ outcome: inout Outcome) -> Outcome {
        let port = change.port
        let sinks = SinkSet(loop: loop, settings: clients)
        steps.begin("port \(port) from \(outcome.source.rawValue); setting it on \(sinks.clients.map { "\($0.title) (\($0.label))" }.joined(separator: ", "))")
        // The change goes into the history as the daemon's do, once every client has answered.
        let history = HistoryRecorder(stateFile: loaded.configuration.daemon.stateFile, logger: logger)
        history.load()
        sinks.apply(change)
        history.handedOff(change, clients: sinks.clients, now: loop.now)
        do {
            try loop.run(within: deadline - loop.clock.now()) { !sinks.statuses.contains { $0.health.isPending } }
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        history.observe(sinks.clients, now: loop.now)
        history.flush(sinks.clients, now: loop.now)
        outcome.clients = sinks.clients.map { ($0.label, $0.title, $0.status.version) }
        // A hook's run changes no client's port.
        outcome.changed = sinks.sinks.contains { !($0.sink is HookSink) && $0.sink.counters.applies > 0 }
        let unfinished = sinks.clients.filter { $0.status.health.isPending }
        if !unfinished.isEmpty {
            let names = unfinished.map { "\($0.title) (\($0.label))" }.joined(separator: ", ")
            return fail(&outcome, .transientFailure, "no answer within \(timeout.components.seconds) s (--timeout) from \(names)")
        }
        for client in sinks.clients {
            switch client.status.health {
            case .verified, .idle, .applying:
                continue
            case .loginRefused(let message):
                return fail(&outcome, .usageOrConfiguration, message)
            case .unreachable(let message), .failing(let message):
                return fail(&outcome, .transientFailure, message)
            }
        }
        outcome.applied = true
        record(port, outcome, previous: previous)
        return outcome
    }

    /// Remembers the result like the daemon does, so `portsync status` shows it.
    private func record(_ port: Port, _ outcome: Outcome, previous: DaemonState?) {
        let store = StateStore(path: loaded.configuration.daemon.stateFile)
        var sources = previous?.sources ?? [:]
        if let status = outcome.sourceStatus {
            sources[outcome.source.rawValue] = (sources[outcome.source.rawValue] ?? SourceRecord()).updated(outcome.source, status)
        }
        let state = DaemonState(port: port, source: outcome.source.rawValue,
                                appliedAt: previous?.port == port ? previous?.appliedAt : WallClock.now,
                                health: .ok, clientVersions: Dictionary(outcome.clients.compactMap { client in client.version.map { (client.label, $0) } },
                                                                        uniquingKeysWith: { first, _ in first }),
                                sources: sources, pid: ProcessEnvironment.processID, updatedAt: WallClock.now)
        do {
            try store.save(state)
        } catch {
            logger.warning("portsync", "cannot write the state file: \(error)")
        }
    }

    private func fail(_ outcome: inout Outcome, _ code: ExitCode, _ message: String) -> Outcome {
        outcome.code = code
        outcome.error = message
        return outcome
    }

    func render(text outcome: Outcome) -> String {
        if let error = outcome.error { return "portsync: \(error)" }
        let port = outcome.port.map(String.init(describing:)) ?? "?"
        let client = outcome.clients.map(\.title).joined(separator: ", ")
        return outcome.changed
            ? "port \(port) from \(outcome.source.rawValue) applied to \(client) and verified"
            : "\(client) already listens on port \(port) (\(outcome.source.rawValue)); nothing to change"
    }

    func render(json outcome: Outcome) -> String {
        var members: [String: JSONValue] = [
            "source": .string(outcome.source.rawValue), "applied": .bool(outcome.applied),
            "verified": .bool(outcome.applied), "changed": .bool(outcome.changed),
            "exit_code": .number(Double(outcome.code.rawValue)),
        ]
        members["port"] = outcome.port.map { .number(Double($0.value)) } ?? .null
        for client in outcome.clients { if let version = client.version { members[client.label] = .string(version) } }
        if let error = outcome.error { members["error"] = .string(error) }
        return JSONValue.object(members).serialized
    }
}
