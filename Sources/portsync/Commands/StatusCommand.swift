import Glibc
import HTTP
import Reactor

/// `portsync status`: the state file in words (or as JSON), and whether the daemon that wrote
/// it still runs. Exit codes as LSB's `status`: 0 running and healthy, 1 running and unhealthy,
/// 3 not running (whatever the health it last wrote), 4 no state (none, or unreadable).
struct StatusCommand {
    let loaded: LoadedConfiguration
    let json: Bool

    /// Where the system unit keeps its state (`StateDirectory=portsync`).
    static let systemServiceStateFile = "/var/lib/portsync/state.json"

    /// The state file to read: the configured one, or, for root with none of its own and no
    /// state_file set, the system service's, when that exists (`sudo portsync status` next to
    /// the hardened unit). The second value says the service's was taken.
    static func stateFile(_ configuration: Configuration, userID: UInt32,
                          systemService: String = systemServiceStateFile) -> (path: String, isSystemService: Bool) {
        let configured = configuration.daemon.stateFile
        guard userID == 0, configuration.origins["daemon.state_file"] == nil, !FileContents.exists(configured),
              FileContents.exists(systemService) else { return (configured, false) }
        return (systemService, true)
    }

    func run() -> ExitCode {
        let (path, isSystemService) = Self.stateFile(loaded.configuration, userID: ProcessEnvironment.userID)
        let store = StateStore(path: path)
        let state: DaemonState?
        do {
            state = try store.load()
        } catch {
            return report("state file \(store.path): \(error)", ["error": .string("\(error)")], .noState)
        }
        guard let state else {
            return report("no state yet: portsync has not applied a port here (no \(store.path))",
                          ["error": .string("no state file")], .noState)
        }
        // The last change, when the history beside the state file has one (an unreadable history
        // is `portsync history`'s to report).
        let lastChange = (try? ChangeHistory.load(path: ChangeHistory.path(besideStateFile: path)))??.history.records.last
        let running = Self.isPortsync(state.pid)
        let code: ExitCode = !running ? .daemonNotRunning : state.health.isOK ? .success : .daemonUnhealthy
        if json {
            guard case .object(var members) = state.jsonValue else { return .noState }
            members["daemon_running"] = .bool(running)
            members["state_file"] = .string(path)
            if let lastChange { members["last_change"] = lastChange.jsonValue }
            ProcessEnvironment.printToStandardOutput(JSONValue.object(members).serialized + "\n")
            return code
        }
        var lines: [String] = isSystemService ? ["the system service's state (\(path))"] : []
        if let port = state.port {
            let when = state.appliedAt.map { "\(WallClock.text($0)) (\(WallClock.age($0)))" } ?? "at an unknown time"
            lines.append("port \(port) from \(state.source?.oneLine() ?? "an unknown source"), applied \(when)")
        } else {
            lines.append("no port applied yet")
        }
        if let lastChange { lines.append("last change: \(lastChange.text)\n  why: \(lastChange.reason.explanation)") }
        // A daemon that is gone is not healthy, whatever it last wrote.
        lines.append("\(running ? "health" : "last health"): \(state.health.description.oneLine())")
        if let connectable = state.connectable {
            lines.append("\(running ? "connectable" : "last verdict"): \(connectable.summary.oneLine()), since \(WallClock.text(connectable.checked)) (\(WallClock.age(connectable.checked)))")
            lines += connectable.evidence.map { "  \($0.ok.map { $0 ? "✓" : "✗" } ?? "·") \($0.text.oneLine())" }
            if let action = connectable.action { lines.append("  → \(action.oneLine())") }
        }
        for label in Set(state.clientVersions.keys).union(state.clientHealth.keys).sorted() {
            let version = state.clientVersions[label].map { " \($0.oneLine(limit: 40))" } ?? ""
            let health = state.clientHealth[label].map { ": \($0.oneLine())" } ?? ""
            lines.append("\(label.oneLine(limit: 40))\(version)\(health)")
        }
        if let hook = state.hook { lines.append(hook.text) }
        for (name, record) in state.sources.sorted(by: { $0.key < $1.key }) {
            let title = (record.title ?? name).oneLine(limit: 40)
            if let detail = record.detail { lines.append("\(title) \(detail.oneLine())") }
            guard let problem = record.problem else { continue }
            lines.append("  ✗ \(title) \(record.state ?? "failing"): \(problem.message.oneLine())")
            if !problem.fix.isEmpty { lines.append("  → \(problem.fix.oneLine())") }
        }
        lines.append(running ? "daemon: running (pid \(state.pid))" : "daemon: not running (last pid \(state.pid))")
        ProcessEnvironment.printToStandardOutput(lines.joined(separator: "\n") + "\n")
        return code
    }

    private func report(_ text: String, _ members: [String: JSONValue], _ code: ExitCode) -> ExitCode {
        if json {
            ProcessEnvironment.printToStandardOutput(JSONValue.object(members).serialized + "\n")
        } else {
            ProcessEnvironment.printToStandardError("portsync: \(text)\n")
        }
        return code
    }

    /// Whether `pid` is alive (not a zombie) and is a portsync: the same executable as this one,
    /// or, when that cannot be told (another user's process, a binary replaced by an upgrade),
    /// a process named exactly portsync (not the test runner, `portsyncPackageTests`).
    static func isPortsync(_ pid: Int32) -> Bool {
        guard pid > 0, isAlive(pid), !isZombie(pid) else { return false }
        if let theirs = executable("/proc/\(pid)/exe"), theirs == executable("/proc/self/exe") { return true }
        guard let comm = try? FileContents.read(atPath: "/proc/\(pid)/comm", maxBytes: 64) else { return false }
        return String(decoding: comm, as: UTF8.self) == "portsync\n"
    }

    /// A killed process not yet reaped by its parent still answers `kill(pid, 0)`: its state
    /// in `/proc/PID/stat` (after the parenthesized name) is `Z`.
    private static func isZombie(_ pid: Int32) -> Bool {
        guard let bytes = try? FileContents.read(atPath: "/proc/\(pid)/stat", maxBytes: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), close + 2 < bytes.count else { return false }
        return bytes[close + 2] == UInt8(ascii: "Z")
    }

    /// The target of a `/proc/PID/exe` link, nil when it cannot be read.
    private static func executable(_ link: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(link, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }  // EACCES for another user's process: the name decides
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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
