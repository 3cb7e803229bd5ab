import Foundation
import Glibc
import Testing
@testable import Reactor
import TestSupport

@Suite struct SubprocessTests {
    @Test func theExitArrivesThroughThePidfdInOneWakeupWithNothingPolling() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var ended: [Subprocess.Termination] = []
        let child = try Subprocess(loop: loop, name: "test.child", executable: "/bin/sh", arguments: ["-c", "sleep 0.3; exit 3"],
                                   environment: [], timeout: .seconds(60)) { ended.append($0) }
        #expect(child.isRunning)
        try loop.runOnce(timeout: .seconds(20))
        #expect(ended == [.exited(3)], "one wakeup, woken by the child's end")
        #expect(loop.dispatches == 1, "nothing else ran while the child did: no timer, no poll")
        #expect(!child.isRunning && loop.registrationCount == 0)
    }

    @Test func oneThatOutlivesItsTimeoutIsKilledWithItsProcessGroup() throws {
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("subprocess-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let grandchildFile = directory.appendingPathComponent("grandchild").path
        var ended: Subprocess.Termination?
        let child = try Subprocess(loop: loop, name: "test.hung", executable: "/bin/sh",
                                   arguments: ["-c", "sleep 30 & echo $! > \(grandchildFile); wait"],
                                   environment: [], timeout: .milliseconds(300)) { ended = $0 }
        try runUntil(loop, seconds: 10) { ended != nil }
        #expect(ended == .killed(signal: SIGKILL))
        #expect(log.count("test.hung: pid \(child.pid) is still running after 300 ms: killing it and its process group") == 1, "\(log.lines)")
        let grandchild = try #require(Int32(String(contentsOfFile: grandchildFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(waitFor(seconds: 5) {
            // Killed with the group: gone, or a zombie until init reaps it.
            guard let stat = try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8) else { return true }
            return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        }, "the background sleep went with the group")
    }

    /// Its owner let go while it ran (a reload dropped the hook, the daemon stops): the child is
    /// killed and reaped, not left running or as a zombie.
    @Test func aChildStillRunningGoesWithItsOwner() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var child: Subprocess? = try Subprocess(loop: loop, name: "test.dropped", executable: "/bin/sleep", arguments: ["30"],
                                                environment: [], timeout: .seconds(60)) { _ in Issue.record("no report after it is dropped") }
        let pid = child!.pid
        #expect(kill(pid, 0) == 0, "running")
        child = nil
        var status: Int32 = 0
        #expect(waitpid(pid, &status, WNOHANG) == -1 && errno == ECHILD, "reaped already: no zombie left")
        #expect(loop.registrationCount == 0)
        try loop.runOnce(timeout: .milliseconds(10))
    }

    @Test func theChildGetsOnlyTheEnvironmentItIsGiven() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var ended: Subprocess.Termination?
        let child = try Subprocess(loop: loop, name: "test.env", executable: "/bin/sh",
                           arguments: ["-c", "test \"$GIVEN\" = yes && test -z \"$HOME\" && test -z \"$PATH_FROM_TEST\""],
                           environment: ["GIVEN=yes"], timeout: .seconds(60)) { ended = $0 }
        try runUntil(loop, seconds: 10) { ended != nil }
        #expect(ended == .exited(0) && child.termination == .exited(0))
    }

    @Test func aMissingExecutableIsAnErrorAtOnce() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        #expect(throws: SystemCallError(call: "posix_spawn /nonexistent/command", errno: .noSuchFileOrDirectory)) {
            _ = try Subprocess(loop: loop, name: "test.missing", executable: "/nonexistent/command", arguments: [],
                               environment: [], timeout: .seconds(1)) { _ in }
        }
        #expect(loop.registrationCount == 0)
    }

    @Test func theFirstLineOfStderrIsKeptAndTheRestDrained() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var ended: Subprocess.Termination?
        // 200 KiB after the first line: more than a pipe holds, so a reader that stopped
        // draining would leave the child blocked until its timeout.
        let script = "echo out; printf '  first\\tline  \\nsecond\\n' >&2; head -c 204800 /dev/zero | tr '\\0' x >&2; exit 4"
        let child = try Subprocess(loop: loop, name: "test.stderr", executable: "/bin/sh", arguments: ["-c", script],
                                   environment: ["PATH=/usr/bin:/bin"], timeout: .seconds(20), capturesErrorLine: true) { ended = $0 }
        try runUntil(loop, seconds: 20) { ended != nil }
        #expect(ended == .exited(4) && !child.outlivedTimeout)
        #expect(child.errorLine == "first\\tline")
        #expect(loop.registrationCount == 0)
    }

    @Test func aChildThatWritesNothingHasNoErrorLine() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var ended: Subprocess.Termination?
        let child = try Subprocess(loop: loop, name: "test.quiet", executable: "/bin/true", arguments: [],
                                   environment: [], timeout: .seconds(20), capturesErrorLine: true) { ended = $0 }
        try runUntil(loop, seconds: 20) { ended != nil }
        #expect(ended == .exited(0) && child.errorLine == nil)
    }
}

@Suite struct FirstLineReaderTests {
    /// A writer that never stops (`yes >&2`) cannot keep one wakeup reading: each takes at most
    /// `readsPerWakeup` reads and leaves the rest in the pipe for the next.
    @Test func oneWakeupReadsABoundedAmount() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let reader = try FirstLineReader(loop: loop, name: "test.stderr")
        let writeEnd = try #require(reader.writeEnd)
        let size = 1 << 20
        #expect(fcntl(writeEnd.rawValue, 1031 /* F_SETPIPE_SZ */, Int32(size)) >= Int32(size))
        let written = [UInt8](repeating: UInt8(ascii: "y"), count: 256 * 1024)
        try writeEnd.writeAll(Array("why it failed\n".utf8) + written)
        try loop.runOnce(timeout: .seconds(5))
        var left: Int32 = 0
        #expect(ioctl(writeEnd.rawValue, UInt(FIONREAD), &left) == 0)
        #expect(Int(left) == 14 + written.count - LineReader.readsPerWakeup * 4096, "one wakeup's reads, the rest still in the pipe")
        #expect(reader.line == "why it failed")
    }
}

@Suite struct LineReaderTests {
    /// Lines are handed over as they end, also across reads; one longer than the limit is cut
    /// there; a last line with no newline comes at the end.
    @Test func eachLineIsHandedOverWhenItEnds() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var lines: [String] = []
        let reader = try LineReader(loop: loop, name: "test.stdout", limit: 8) { lines.append($0) }
        let writeEnd = try #require(reader.writeEnd)
        try writeEnd.writeAll(Array("51413\n404".utf8))
        try loop.runOnce(timeout: .seconds(5))
        #expect(lines == ["51413"], "the second line is not done yet")
        try writeEnd.writeAll(Array("01\nthis one is too long\n\nlast".utf8))
        try loop.runOnce(timeout: .seconds(5))
        #expect(lines == ["51413", "40401", "this one", ""])
        reader.closeWriteEnd()
        reader.finish()
        #expect(lines == ["51413", "40401", "this one", "", "last"])
    }
}
