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
    /// How long qBittorrent gets to answer in all.
    var timeout: Duration = .seconds(30)

    struct Outcome {
        var code: ExitCode
        var source: PortObservation.Source
        var port: Port?
        var applied = false
        var changed = false
        var version: String?
        var error: String?
        var natpmpInternalPort: UInt16?
    }

    func run() -> ExitCode {
        let outcome = execute()
        ProcessEnvironment.printToStandardOutput((json ? render(json: outcome) : render(text: outcome)) + "\n")
        return outcome.code
    }

    func execute() -> Outcome {
        let configuration = loaded.configuration
        var outcome = Outcome(code: .success, source: .protonFile)
        let strategy = configuration.source.strategy
        let loop: EventLoop
        do {
            loop = try EventLoop(logger: logger)
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        if strategy == .gluetun {
            outcome.source = configuration.gluetun.portFile.isEmpty ? .gluetun : .gluetunFile
            let result = configuration.gluetun.portFile.isEmpty
                ? pollGluetun(on: loop)
                : readPortFile(configuration.gluetun.portFile, index: configuration.gluetun.portIndex)
            switch result {
            case .success(let port):
                outcome.port = port
                return apply(port, on: loop, &outcome)
            case .failure(let problem):
                return fail(&outcome, problem.code, problem.message)
            }
        }
        if strategy == .file || strategy == .auto {
            switch readPortFile(configuration.proton.portFile) {
            case .success(let port):
                outcome.port = port
                return apply(port, on: loop, &outcome)
            case .failure(let problem) where strategy == .file || problem.code != .unsupported:
                return fail(&outcome, problem.code, problem.message)
            case .failure:
                break  // auto: no file; NAT-PMP may still have a port
            }
        }
        outcome.source = .natpmp
        switch mapOnce(on: loop, &outcome) {
        case .success(let port):
            outcome.port = port
            return apply(port, on: loop, &outcome)
        case .failure(let problem):
            let prefix = strategy == .auto ? "no source available: \(configuration.proton.portFile) does not exist, and " : ""
            return fail(&outcome, problem.code, prefix + problem.message)
        }
    }

    struct Problem: Error {
        let code: ExitCode
        let message: String
    }

    /// One question to Gluetun's control server.
    private func pollGluetun(on loop: EventLoop) -> Result<Port, Problem> {
        let settings = GluetunSettings(loaded.configuration, loaded.credentials)
        let poller = GluetunPoller(loop: loop, settings: settings) { _ in }
        defer { poller.stop() }
        poller.start()
        do {
            try loop.run(within: timeout) { poller.lastPorts != nil || poller.lastProblem != nil }
        } catch {
            return .failure(Problem(code: .transientFailure, message: "\(error)"))
        }
        if let ports = poller.lastPorts {
            guard !ports.isEmpty else { return .failure(Problem(code: .transientFailure, message: "Gluetun has no forwarded port yet")) }
            guard settings.portIndex < ports.count else {
                return .failure(Problem(code: .usageOrConfiguration, message: "Gluetun forwards \(ports.count) port(s); port_index \(settings.portIndex) is not among them"))
            }
            return .success(ports[settings.portIndex])
        }
        return .failure(Problem(code: poller.refused ? .usageOrConfiguration : .transientFailure,
                                message: poller.lastProblem ?? "no answer from Gluetun at \(settings.url)"))
    }

    private func readPortFile(_ path: String, index: Int = 0) -> Result<Port, Problem> {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 4096)
        } catch let error as SystemCallError where error.errno == .noSuchFileOrDirectory {
            return .failure(Problem(code: .unsupported, message: "no source available: \(path) does not exist (is the VPN connected, with port forwarding on?)"))
        } catch let error as NotARegularFileError {
            return .failure(Problem(code: .transientFailure, message: "\(error)"))
        } catch {
            return .failure(Problem(code: .transientFailure, message: "cannot read \(path): \(error)"))
        }
        do {
            guard case .ports(let ports) = try PortFile.parse(bytes) else {
                return .failure(Problem(code: .transientFailure, message: "no forwarded port right now: \(path) is empty"))
            }
            guard index < ports.count else {
                return .failure(Problem(code: .usageOrConfiguration, message: "\(path) lists \(ports.count) port(s); port_index \(index) is not among them"))
            }
            return .success(ports[index])
        } catch {
            return .failure(Problem(code: .transientFailure, message: "\(path): \(error)"))
        }
    }

    /// One NAT-PMP mapping on the configured interface. Its lease is not renewed afterwards:
    /// that is what `portsync run` is for.
    private func mapOnce(on loop: EventLoop, _ outcome: inout Outcome) -> Result<Port, Problem> {
        let configuration = loaded.configuration
        var link: TunnelTracker.State?
        var mapped: Port?
        var failed = false
        let client = NATPMPClient(loop: loop, settings: NATPMPSettings(configuration)) { observation in
            if let port = observation.port { mapped = port }
        }
        client.onFailure = { _ in failed = true }
        let previous = (try? StateStore(path: configuration.daemon.stateFile).load()) ?? nil
        if let port = previous?.port { client.prefer(port) }
        if let internalPort = previous?.natpmpInternalPort { client.restore(internalPort: internalPort) }
        let watcher = TunnelWatcher(loop: loop, interface: configuration.natpmp.interface, gateway: configuration.natpmp.gateway) { state in
            link = state
            client.tunnelChanged(state)
        }
        defer {
            watcher.stop()
            client.stop(deleteMappings: false)
        }
        do {
            try watcher.start()
            try loop.run(within: timeout) {
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
            return .failure(Problem(code: .transientFailure, message: "no NAT-PMP mapping from \(client.gateway.map { "\($0)" } ?? "the gateway") (see the log above)"))
        }
        return .success(mapped)
    }

    private func apply(_ port: Port, on loop: EventLoop, _ outcome: inout Outcome) -> Outcome {
        let sink = QBittorrentSink(loop: loop, settings: QBittorrentSettings(loaded.configuration, loaded.credentials))
        sink.apply(port)
        do {
            try loop.run(within: timeout) { sink.status.health != .idle && sink.status.health != .applying }
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        outcome.version = sink.status.version
        outcome.changed = sink.counters.applies > 0
        switch sink.status.health {
        case .verified:
            outcome.applied = true
            record(port, outcome)
            return outcome
        case .loginRefused(let message):
            return fail(&outcome, .usageOrConfiguration, message)
        case .unreachable(let message), .failing(let message):
            return fail(&outcome, .transientFailure, message)
        case .idle, .applying:
            return fail(&outcome, .transientFailure, "qBittorrent did not finish within \(timeout.components.seconds) s")
        }
    }

    /// Remembers the result like the daemon does, so `portsync status` shows it.
    private func record(_ port: Port, _ outcome: Outcome) {
        let store = StateStore(path: loaded.configuration.daemon.stateFile)
        let previous = (try? store.load()) ?? nil
        let state = DaemonState(port: port, source: outcome.source.rawValue,
                                appliedAt: previous?.port == port ? previous?.appliedAt : WallClock.now,
                                health: "ok", qbittorrentVersion: outcome.version,
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
        let client = "qBittorrent\(outcome.version.map { " \($0)" } ?? "")"
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
        if let version = outcome.version { members["qbittorrent"] = .string(version) }
        if let error = outcome.error { members["error"] = .string(error) }
        return JSONValue.object(members).serialized
    }
}
