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
        var natpmpInternalPort: UInt16?
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
    /// a quick run prints its result alone (stdout, for scripts).
    final class Progress {
        static let patience = Duration.seconds(1)
        private var step = ""
        private var timer: Timer?

        func attach(_ loop: EventLoop) {
            timer = loop.makeTimer(name: "once.progress") { [unowned self] in
                ProcessEnvironment.printToStandardError("portsync once: \(self.step)\n")
            }
        }

        func begin(_ step: String) {
            self.step = step
            timer?.schedule(after: Self.patience)
        }

        func end() {
            timer?.cancel()
        }
    }
    private let steps = Progress()

    func execute() -> Outcome {
        let plan = SyncPlan(loaded)
        var outcome = Outcome(code: .success, source: .protonFile)
        let loop: EventLoop
        do {
            loop = try EventLoop(logger: logger)
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        let deadline = loop.clock.now() + timeout
        steps.attach(loop)
        defer { steps.end() }
        var missingFile: String?
        for (index, source) in plan.sources.enumerated() {
            let result: Result<Forwarded, Problem>
            switch source {
            case .portFile(_, let path, let kind, let portIndex):
                outcome.source = kind
                steps.begin("reading \(path)")
                result = readPortFile(path, index: portIndex)
                if case .failure(let problem) = result, problem.code == .unsupported, index < plan.sources.count - 1 {
                    missingFile = path  // auto: no file; NAT-PMP may still have a port
                    continue
                }
            case .gluetun(let settings):
                outcome.source = .gluetun
                steps.begin("asking Gluetun's control server at \(settings.url)")
                result = pollGluetun(settings, on: loop, until: deadline)
            case .natpmp(let natpmp):
                outcome.source = .natpmp
                steps.begin("waiting for \(natpmp.interface) to be up, with an address and a route")
                result = mapOnce(natpmp, on: loop, until: deadline, &outcome).map { Forwarded(port: $0, ports: [$0]) }
            }
            switch result {
            case .success(let forwarded):
                outcome.port = forwarded.port
                let previous = (try? StateStore(path: loaded.configuration.daemon.stateFile).load())??.port
                let change = PortChange(port: forwarded.port, previous: previous, source: outcome.source.rawValue, ports: forwarded.ports)
                return apply(change, to: plan.sinks, on: loop, until: deadline, &outcome)
            case .failure(let problem):
                let prefix = missingFile.map { "no source available: \($0) does not exist, and " } ?? ""
                return fail(&outcome, problem.code, prefix + problem.message)
            }
        }
        return fail(&outcome, .usageOrConfiguration, "no source configured")
    }

    struct Problem: Error {
        let code: ExitCode
        let message: String
    }

    /// What a source forwards: the port its `port_index` picks, and all of them (a client's own
    /// `port_index` picks from these).
    struct Forwarded {
        let port: Port
        let ports: [Port]
    }

    /// One question to Gluetun's control server.
    private func pollGluetun(_ settings: GluetunSettings, on loop: EventLoop, until deadline: Instant) -> Result<Forwarded, Problem> {
        let poller = GluetunPoller(loop: loop, settings: settings) { _ in }
        defer { poller.stop() }
        poller.start()
        do {
            try loop.run(within: deadline - loop.clock.now()) { poller.lastPorts != nil || poller.lastProblem != nil }
        } catch {
            return .failure(Problem(code: .transientFailure, message: "\(error)"))
        }
        if let ports = poller.lastPorts {
            guard !ports.isEmpty else { return .failure(Problem(code: .transientFailure, message: "Gluetun has no forwarded port yet")) }
            guard settings.portIndex < ports.count else {
                return .failure(Problem(code: .usageOrConfiguration, message: "Gluetun forwards \(ports.count) port(s); port_index \(settings.portIndex) is not among them"))
            }
            return .success(Forwarded(port: ports[settings.portIndex], ports: ports))
        }
        return .failure(Problem(code: poller.refused ? .usageOrConfiguration : .transientFailure,
                                message: poller.lastProblem ?? "no answer from Gluetun at \(settings.url)"))
    }

    private func readPortFile(_ path: String, index: Int = 0) -> Result<Forwarded, Problem> {
        switch PortFile.read(atPath: path, portIndex: index) {
        case .missing:
            .failure(Problem(code: .unsupported, message: "no source available: \(path) does not exist (is the VPN connected, with port forwarding on?)"))
        case .notARegularFile(let error):
            .failure(Problem(code: .transientFailure, message: error))
        case .unreadable(let error):
            .failure(Problem(code: .transientFailure, message: "cannot read \(path): \(error)"))
        case .empty:
            .failure(Problem(code: .transientFailure, message: "no forwarded port right now: \(path) is empty"))
        case .garbage(let error):
            .failure(Problem(code: .transientFailure, message: "\(path): \(error)"))
        case .noPortAtIndex(let count):
            .failure(Problem(code: .usageOrConfiguration, message: "\(path) lists \(count) port(s); port_index \(index) is not among them"))
        case .port(let port, let all):
            .success(Forwarded(port: port, ports: all))
        }
    }

    /// One NAT-PMP mapping on the configured interface. Its lease is not renewed afterwards:
    /// that is what `portsync run` is for.
    private func mapOnce(_ plan: SyncPlan.NATPMP, on loop: EventLoop, until deadline: Instant, _ outcome: inout Outcome) -> Result<Port, Problem> {
        var link: TunnelTracker.State?
        var mapped: Port?
        var failed = false
        let client = NATPMPClient(loop: loop, settings: plan.settings) { observation in
            if let port = observation.port { mapped = port }
        }
        client.onFailure = { _ in failed = true }
        let previous = (try? StateStore(path: loaded.configuration.daemon.stateFile).load()) ?? nil
        if let port = previous?.port { client.prefer(port) }
        if let internalPort = previous?.natpmpInternalPort { client.restore(internalPort: internalPort) }
        var asked = false
        let watcher = TunnelWatcher(loop: loop, interface: plan.interface, gateway: plan.gateway) { state in
            if case .usable(let tunnel) = state, !asked {
                asked = true
                steps.begin("asking the NAT-PMP gateway \(tunnel.gateway) (UDP 5351) for a port, from \(tunnel.address)")
            }
            link = state
            client.tunnelChanged(state)
        }
        defer {
            watcher.stop()
            client.stop(deleteMappings: false)
        }
        do {
            try watcher.start()
            try loop.run(within: deadline - loop.clock.now()) {
                if case .unusable? = link { return true }
                return mapped != nil || failed
            }
        } catch {
            return .failure(Problem(code: .transientFailure, message: "\(error)"))
        }
        switch link {
        case .unusable(let reason)?:
            return .failure(Problem(code: .unsupported, message: "the VPN interface is not usable: \(reason)"))
        case .awaitingRoute?:
            return .failure(Problem(code: .transientFailure, message: "\(link!): the VPN is still connecting, or its routes do not lead through the interface"))
        case .usable?, nil:
            break
        }
        outcome.natpmpInternalPort = client.internalPort
        guard let mapped else {
            let gateway = client.gateway.map { "\($0)" } ?? "the gateway"
            if failed {
                return .failure(Problem(code: .transientFailure, message: "no NAT-PMP mapping from \(gateway): see the warning above"))
            }
            // Silence: the server does not forward ports for this connection.
            return .failure(Problem(code: .transientFailure, message: "no answer from the NAT-PMP gateway \(gateway) to \(client.requestsSent) request(s) in \(timeout.components.seconds) s: this connection forwards no ports. ProtonVPN: connect to a P2P server with port forwarding on; a WireGuard configuration must be made with NAT-PMP (port forwarding) on"))
        }
        return .success(mapped)
    }

    /// Applies the port to every client (each the one its `port_index` picks) and waits until
    /// each has verified it or failed. The port before it is the state file's (for the hook).
    private func apply(_ change: PortChange, to clients: [any PortSinkSettings], on loop: EventLoop, until deadline: Instant,
                       _ outcome: inout Outcome) -> Outcome {
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
        record(port, outcome)
        return outcome
    }

    /// Remembers the result like the daemon does, so `portsync status` shows it.
    private func record(_ port: Port, _ outcome: Outcome) {
        let store = StateStore(path: loaded.configuration.daemon.stateFile)
        let previous = (try? store.load()) ?? nil
        let state = DaemonState(port: port, source: outcome.source.rawValue,
                                appliedAt: previous?.port == port ? previous?.appliedAt : WallClock.now,
                                health: .ok, clientVersions: Dictionary(outcome.clients.compactMap { client in client.version.map { (client.label, $0) } },
                                                                        uniquingKeysWith: { first, _ in first }),
                                natpmpInternalPort: outcome.natpmpInternalPort ?? previous?.natpmpInternalPort,
                                pid: ProcessEnvironment.processID, updatedAt: WallClock.now)
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
