import CTestSupport
import Foundation
import Glibc
import Reactor

/// A child process started with `Subprocess.spawn`, so with a clean signal state (empty mask,
/// default dispositions): Foundation's Process spawns from a thread that blocks every signal,
/// and its children then ignore SIGTERM. Output goes to a file; the child is stopped by its PID.
public final class ChildProcess {
    public let pid: pid_t
    public let outputPath: String
    private var exitStatus: Int32?

    public init(executable: String, arguments: [String], environment: [String: String], outputPath: String) throws {
        self.outputPath = outputPath
        pid = try Subprocess.spawn(executable, arguments: arguments, environment: environment.map { "\($0.key)=\($0.value)" },
                                   outputPath: outputPath, ownProcessGroup: false)
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = wait(seconds: 5)
        }
    }

    /// Sets the child's soft limit of open files (its hard limit kept); returns the one it had.
    @discardableResult
    public func setOpenFileLimit(_ soft: Int) -> Int? {
        let old = ctestsupport_set_open_file_limit(pid, UInt64(soft))
        return old < 0 ? nil : Int(old)
    }

    /// Lowers the child's limit until no fd is free below it, also after an fd the child had
    /// open for a moment (a connection, the state file being written) was closed; returns the
    /// limit before. Settled once the lowest free fd stayed at the limit for 300 ms.
    public func exhaustFileDescriptors() -> Int? {
        var saved: Int?
        var settled = 0
        for _ in 0..<50 where settled < 3 {
            let lowest = lowestFreeFD
            guard let old = setOpenFileLimit(lowest) else { return nil }
            if saved == nil { saved = old }
            usleep(100_000)
            settled = lowestFreeFD >= lowest ? settled + 1 : 0
        }
        return settled == 3 ? saved : nil
    }

    /// The lowest fd number the child has free: with it as the limit, every open fails.
    public var lowestFreeFD: Int {
        let open = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
        return (0...).first { !open.contains($0) }!
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
