import Foundation
import Glibc

/// A child process started with posix_spawn and a clean signal state (empty mask, default
/// dispositions): Foundation's Process spawns from a thread that blocks every signal, and its
/// children then ignore SIGTERM. Output goes to a file; the child is stopped by its PID.
public final class ChildProcess {
    public let pid: pid_t
    public let outputPath: String
    private var exitStatus: Int32?

    public init(executable: String, arguments: [String], environment: [String: String], outputPath: String) throws {
        self.outputPath = outputPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw ChildProcessError(message: "posix_spawn \(executable): \(String(cString: strerror(result)))") }
        pid = child
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = wait(seconds: 5)
        }
    }

    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            // WIFEXITED: the low 7 bits are 0; then the code is in bits 8-15. Killed: 128 + signal.
            exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return false
        }
        return result == 0
    }

    public func signal(_ number: Int32) {
        if isRunning { kill(pid, number) }
    }

    /// Waits at most `seconds`; the exit code (128 + signal when killed), or nil if still running.
    @discardableResult
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(5_000) }
        return exitStatus
    }

    /// SIGTERM, then SIGKILL after `grace` seconds.
    public func stop(grace: Double = 10) {
        signal(SIGTERM)
        if wait(seconds: grace) == nil {
            kill(pid, SIGKILL)
            wait(seconds: 5)
        }
    }

    public var output: String {
        String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self)
    }

    /// Polls the output until it contains `text` or `seconds` pass; returns the output.
    @discardableResult
    public func waitForOutput(containing text: String, seconds: Double = 10) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var current = output
        while !current.contains(text) && Date() < deadline {
            usleep(10_000)
            current = output
        }
        return current
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
