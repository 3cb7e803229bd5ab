import Glibc
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
    }

    func run() -> ExitCode {
        let outcome = execute()
        ProcessEnvironment.printToStandardOutput((json ? render(json: outcome) : render(text: outcome)) + "\n")
        return outcome.code
    }

    func execute() -> Outcome {
        let configuration = loaded.configuration
        var outcome = Outcome(code: .success, source: .protonFile)
        if let reason = Daemon.unsupported(configuration.source.strategy) {
            return fail(&outcome, .unsupported, reason)
        }
        let path = configuration.proton.portFile
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 4096)
        } catch let error as SystemCallError where error.errno == ENOENT {
            return fail(&outcome, .unsupported, "no source available: \(path) does not exist (is the ProtonVPN app connected, with port forwarding on?)")
        } catch {
            return fail(&outcome, .transientFailure, "cannot read \(path): \(error)")
        }
        let port: Port
        do {
            guard case .ports(let ports) = try PortFile.parse(bytes) else {
                return fail(&outcome, .transientFailure, "no forwarded port right now: \(path) is empty")
            }
            port = ports[0]
        } catch {
            return fail(&outcome, .transientFailure, "\(path): \(error)")
        }
        outcome.port = port
        return apply(port, &outcome)
    }

    private func apply(_ port: Port, _ outcome: inout Outcome) -> Outcome {
        let loop: EventLoop
        do {
            loop = try EventLoop(logger: logger)
        } catch {
            return fail(&outcome, .transientFailure, "\(error)")
        }
        let sink = QBittorrentSink(loop: loop, settings: QBittorrentSettings(loaded.configuration, loaded.credentials))
        sink.apply(port)
        let deadline = loop.clock.now() + timeout
        var ended = false
        while !ended && loop.clock.now() < deadline {
            do {
                try loop.runOnce(timeout: .milliseconds(250))
            } catch {
                return fail(&outcome, .transientFailure, "\(error)")
            }
            switch sink.status.health {
            case .idle, .applying: continue
            default: ended = true
            }
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
