import Domain
import Foundation
import Glibc
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The command hook with real processes (`Tests/Fixtures/hook.sh` records each run's argv and
/// environment), in the test's own loop.
@Suite final class HookSinkTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/hook.sh").standardized.path

    let directory: String
    let log = LogCapture()
    let loop: EventLoop

    init() throws {
        directory = makeTemporaryDirectory("hook")
        loop = try EventLoop(logger: log.logger)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    var record: String { "\(directory)/record" }

    /// Each run's block of the record: its argv line and environment.
    var runs: [[String]] {
        let text = (try? String(contentsOfFile: record, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "---\n").filter { !$0.isEmpty }.map { $0.split(separator: "\n").map(String.init) }
    }

    func sink(_ arguments: [String] = [], program: String = "sh", timeout: Duration = .seconds(10),
              environment: [String: String] = ["PATH": "/usr/bin:/bin"]) -> HookSink {
        HookSink(loop: loop, settings: HookSettings(command: [program, Self.script, record] + arguments, timeout: timeout,
                                                    environment: ChildEnvironment.passedOn(environment)))
    }

    func change(_ port: UInt16, previous: UInt16? = nil) -> PortChange {
        PortChange(port: Port(port)!, previous: previous.flatMap(Port.init), source: "proton-file", reason: .sourceChanged)
    }

    @Test func itRunsWithTheChangeInAScrubbedEnvironment() throws {
        let hook = sink(["extra argument"], environment: [
            "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PORTSYNC_QBITTORRENT_PASSWORD": "hunter2-secret", "SECRET_TOKEN": "s3cr3t",
        ])
        hook.apply(change(51413, previous: 40000))
        #expect(try runUntil(loop, seconds: 10) { hook.status.health == .verified })
        #expect(runs.count == 1)
        let run = runs.first ?? []
        #expect(run.first == "argv: extra argument")
        let environment = run.dropFirst().filter { !$0.hasPrefix("PWD=") && !$0.hasPrefix("SHLVL=") && !$0.hasPrefix("_=") }
        #expect(environment == ["LANG=C.UTF-8", "PATH=/usr/bin:/bin", "PORTSYNC_PORT=51413", "PORTSYNC_PREVIOUS_PORT=40000",
                                "PORTSYNC_REASON=source-changed", "PORTSYNC_SOURCE=proton-file"], "only what is named, no secret: \(run)")
        #expect(hook.status.verifiedPort == Port(51413) && hook.counters.applies == 1 && hook.counters.failedApplies == 0)
        #expect(hook.lastRun == HookRun(port: Port(51413)!, outcome: .exited(0)))
    }

    @Test func aHangingHookIsKilledAtItsTimeoutAndIsFailing() throws {
        let hook = sink(["sleep", "30"], timeout: .milliseconds(300))
        hook.apply(change(51413))
        #expect(try runUntil(loop, seconds: 10) { hook.lastRun != nil })
        #expect(hook.status.health == .failing("the hook for port 51413 was still running after 300 ms and was killed"))
        #expect(hook.runningPID == nil)
        #expect(log.count("the hook for port 51413 was still running after") == 1)
    }

    @Test func threeChangesWhileASlowHookRunsMakeOneMoreRunWithTheLatest() throws {
        let hook = sink(["sleep", "0.5"])
        hook.apply(change(1001))
        #expect(try runUntil(loop, seconds: 10) { hook.runningPID != nil })
        hook.apply(change(1002, previous: 1001))
        hook.apply(change(1003, previous: 1002))
        hook.apply(change(1004, previous: 1003))
        #expect(try runUntil(loop, seconds: 10) { hook.status.health == .verified })
        #expect(runs.map { $0.first { $0.hasPrefix("PORTSYNC_PORT=") } } == ["PORTSYNC_PORT=1001", "PORTSYNC_PORT=1004"])
        #expect(runs.last?.contains("PORTSYNC_PREVIOUS_PORT=1003") == true)
        #expect(hook.counters.applies == 2 && hook.status.verifiedPort == Port(1004))
        #expect(log.count("port 1002 waits for the hook still running for port 1001") == 1)
    }

    @Test func aFailureShowsTheExitStatusAndTheFirstLineOfStderr() throws {
        let hook = sink(["fail", "3", "iptables: Permission denied"])
        hook.apply(change(51413))
        #expect(try runUntil(loop, seconds: 10) { hook.lastRun != nil })
        let message = "the hook for port 51413 exited with 3: iptables: Permission denied"
        #expect(hook.status.health == .failing(message))
        #expect(log.lines.contains { $0.contains("hook.command: \(message)") && !$0.contains("a second line") })
        #expect(hook.counters.failedApplies == 1)
    }

    @Test func aMissingProgramIsOneLine() throws {
        let hook = sink(program: "portsync-no-such-program")
        hook.apply(change(51413))
        #expect(try runUntil(loop, seconds: 10) { hook.lastRun != nil })
        #expect(hook.status.health == .failing(#"the hook for port 51413 could not start: "portsync-no-such-program" is not an executable file on PATH (/usr/bin:/bin)"#))
        let absolute = HookSink(loop: loop, settings: HookSettings(command: ["/nonexistent/hook"], environment: []))
        absolute.apply(change(51413))
        #expect(try runUntil(loop, seconds: 10) { absolute.lastRun != nil })
        #expect(absolute.lastRun?.outcome == .notStarted(#""/nonexistent/hook" is not an executable file"#))
    }

    /// A relative entry of the hook's PATH (`.` or `bin`) is resolved against the daemon's
    /// working directory: a program planted there must not be found.
    @Test func relativeSearchPathEntriesAreSkipped() throws {
        let program = "portsync-planted-hook"
        let planted = "\(directory)/\(program)"
        #expect(FileManager.default.createFile(atPath: planted, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        // The directory as seen from the working directory, without a leading slash.
        let depth = FileManager.default.currentDirectoryPath.split(separator: "/").count
        let relative = String(repeating: "../", count: depth) + directory.dropFirst()
        #expect(access("\(relative)/\(program)", X_OK) == 0, "the relative entry does reach the planted program")
        #expect(ChildEnvironment.executable(program, searching: "\(relative):/nonexistent") == nil)
        #expect(ChildEnvironment.executable(program, searching: "/nonexistent:\(directory)") == planted)
    }

    /// A hook that leaves a process behind (`sleep &`): it lives on after the hook has ended,
    /// and goes, with its process group, when the sink does (the daemon stopping).
    @Test func whatAHookLeftRunningIsKilledWhenTheSinkGoes() throws {
        let pidFile = "\(directory)/background"
        var hook: HookSink? = HookSink(loop: loop, settings: HookSettings(
            command: ["/bin/sh", "-c", "sleep 300 & echo $! > \(pidFile)"], environment: ChildEnvironment.passedOn(["PATH": "/usr/bin:/bin"])))
        hook?.apply(change(51413))
        #expect(try runUntil(loop, seconds: 10) { hook?.lastRun != nil })
        #expect(hook?.lastRun?.outcome == .exited(0))
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let background = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(background, SIGKILL) }
        #expect(Self.isRunning(background), "the background sleep outlives the hook")
        hook = nil
        #expect(waitFor(seconds: 5) { !Self.isRunning(background) }, "it went with the sink")
    }

    /// Whether `pid` is a process that has not ended (a zombie has).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }
}
