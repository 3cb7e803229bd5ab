import Glibc
import HTTP
import Reactor

/// `portsync status`: the state file in words (or as JSON), and whether the daemon that wrote
/// it still runs. Exit 0 when the last known health is ok, 1 otherwise.
struct StatusCommand {
    let loaded: LoadedConfiguration
    let json: Bool

    func run() -> ExitCode {
        let store = StateStore(path: loaded.configuration.daemon.stateFile)
        let state: DaemonState?
        do {
            state = try store.load()
        } catch {
            return report("state file \(store.path): \(error)", ["error": .string("\(error)")], .transientFailure)
        }
        guard let state else {
            return report("no state yet: portsync has not applied a port here (no \(store.path))",
                          ["error": .string("no state file")], .transientFailure)
        }
        let running = Self.isPortsync(state.pid)
        if json {
            guard case .object(var members) = state.jsonValue else { return .transientFailure }
            members["daemon_running"] = .bool(running)
            ProcessEnvironment.printToStandardOutput(JSONValue.object(members).serialized + "\n")
            return state.health.isOK ? .success : .transientFailure
        }
        var lines: [String] = []
        if let port = state.port {
            let when = state.appliedAt.map { "\(WallClock.text($0)) (\(WallClock.age($0)))" } ?? "at an unknown time"
            lines.append("port \(port) from \(state.source?.oneLine() ?? "an unknown source"), applied \(when)")
        } else {
            lines.append("no port applied yet")
        }
        lines.append("health: \(state.health.description.oneLine())")
        for label in Set(state.clientVersions.keys).union(state.clientHealth.keys).sorted() {
            let version = state.clientVersions[label].map { " \($0.oneLine(limit: 40))" } ?? ""
            let health = state.clientHealth[label].map { ": \($0.oneLine())" } ?? ""
            lines.append("\(label.oneLine(limit: 40))\(version)\(health)")
        }
        if let hook = state.hook { lines.append(hook.text) }
        if let gateway = state.natpmpGateway {
            lines.append("NAT-PMP gateway \(gateway.oneLine(limit: 40)) (\((state.natpmpGatewayRule ?? "rule unknown").oneLine()))")
        }
        lines.append(running ? "daemon: running (pid \(state.pid))" : "daemon: not running (last pid \(state.pid))")
        ProcessEnvironment.printToStandardOutput(lines.joined(separator: "\n") + "\n")
        return state.health.isOK ? .success : .transientFailure
    }

    private func report(_ text: String, _ members: [String: JSONValue], _ code: ExitCode) -> ExitCode {
        if json {
            ProcessEnvironment.printToStandardOutput(JSONValue.object(members).serialized + "\n")
        } else {
            ProcessEnvironment.printToStandardError("portsync: \(text)\n")
        }
        return code
    }

    /// Whether `pid` is alive and is a portsync.
    static func isPortsync(_ pid: Int32) -> Bool {
        guard pid > 0, isAlive(pid), let comm = try? FileContents.read(atPath: "/proc/\(pid)/comm", maxBytes: 64) else { return false }
        return String(decoding: comm, as: UTF8.self).hasPrefix("portsync")
    }

    /// `kill(pid, 0)`: EPERM means alive, owned by someone else.
    private static func isAlive(_ pid: Int32) -> Bool {
        do {
            _ = try systemCall("kill") { kill(pid, 0) }
            return true
        } catch {
            return error.errno == .notPermitted
        }
    }
}
