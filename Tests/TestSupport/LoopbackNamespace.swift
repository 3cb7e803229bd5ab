import CTestSupport
import Foundation
import Glibc

/// A network namespace made by the test with nothing in it but `lo` (up): whatever runs inside
/// can reach only itself. Deleted, with every process started in it stopped by its PID, when
/// the value goes away, also after a failed test. Needs root.
public final class LoopbackNamespace {
    /// Root and iproute2 (`ip`, `ss`).
    public static var available: Bool { getuid() == 0 && NetworkLab.ipCommand != nil && SocketTable.ssCommand != nil }

    public let name: String
    private var children: [ChildProcess] = []

    public init() throws {
        name = "psync-lo\(getpid() % 100_000)-\(UInt16.random(in: 0...UInt16.max))"
        _ = try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "add", name])
        do {
            _ = try NetworkLab.run(NetworkLab.ipCommand!, ["-n", name, "link", "set", "lo", "up"])
            let links = try NetworkLab.run(NetworkLab.ipCommand!, ["-n", name, "-o", "link", "show"])
            let names = links.split(separator: "\n").compactMap { $0.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces) }
            guard names == ["lo"] else { throw InstanceError(message: "namespace \(name) holds \(names), not only lo") }
        } catch {
            cleanUp()
            throw error
        }
    }

    deinit { cleanUp() }

    private func cleanUp() {
        for child in children { child.stop(grace: 5) }
        children.removeAll()
        _ = try? NetworkLab.run(NetworkLab.ipCommand!, ["netns", "del", name])
    }

    /// Runs `body` on this thread inside the namespace: sockets it opens live there. The
    /// thread's namespace is restored afterwards, whatever happens.
    public func inside<T>(_ body: () throws -> T) throws -> T {
        try inNetworkNamespace(name, body)
    }

    /// Starts `executable` inside the namespace (`ip netns exec` execs it, so the PID is the
    /// program's own); stopped with the namespace unless stopped before.
    public func start(_ executable: String, _ arguments: [String], environment: [String: String], output: String) throws -> ChildProcess {
        let child = try ChildProcess(executable: NetworkLab.ipCommand!, arguments: ["netns", "exec", name, executable] + arguments,
                                     environment: environment, outputPath: output)
        children.append(child)
        return child
    }
}

/// Runs `body` on this thread inside the named network namespace (`/run/netns/NAME`): processes
/// it starts and sockets it opens live there. The thread's namespace is restored afterwards,
/// whatever happens.
func inNetworkNamespace<T>(_ name: String, _ body: () throws -> T) throws -> T {
    let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
    let target = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
    defer {
        close(original)
        close(target)
    }
    guard original >= 0, target >= 0, ctestsupport_setns(target, CTESTSUPPORT_CLONE_NEWNET) == 0 else {
        throw ChildProcessError(message: "setns into \(name): errno \(errno)")
    }
    defer { precondition(ctestsupport_setns(original, CTESTSUPPORT_CLONE_NEWNET) == 0, "cannot return to the test's network namespace") }
    return try body()
}
