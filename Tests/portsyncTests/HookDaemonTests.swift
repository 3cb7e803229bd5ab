import Foundation
import Glibc
import HTTP
import Reactor
import Testing
import TestSupport
@testable import portsync

/// The hook as the real binary runs it: from `[hook]`, in a scrubbed environment, its outcome
/// in `status`, its runs in `/metrics`.
@Suite struct HookDaemonTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/hook.sh").standardized.path

    /// A configuration in `directory`: port 51413 in a port file, qBittorrent nowhere, the hook
    /// script recording into `directory/record` and doing what `arguments` ask.
    func configuration(in directory: TemporaryDirectory, _ arguments: [String] = [], daemon: String = "") -> String {
        directory.write("run/forwarded_port", "51413")
        let command = (["sh", Self.script, "\(directory.path)/record"] + arguments).map { JSONValue.quoted($0) }.joined(separator: ", ")
        return directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(directory.path)/run/forwarded_port"
            [qbittorrent]
            url = "http://127.0.0.1:\(freePort())"
            [hook]
            command = [\(command)]
            [daemon]
            state_file = "\(directory.path)/state.json"
            \(daemon)
            """)
    }

    @Test func theDaemonRunsTheHookWithoutItsSecretsAndStatusShowsTheOutcome() throws {
        let directory = TemporaryDirectory()
        let record = "\(directory.path)/record"
        let metrics = freePort()
        let file = configuration(in: directory, ["fail", "4", "no route to the firewall"], daemon: "metrics_listen = \"127.0.0.1:\(metrics)\"")
        let daemon = try Child(["run", "--config", file], environment: ["PORTSYNC_QBITTORRENT_PASSWORD": "hunter2-secret"])
        #expect(waitFor(seconds: 10) { statusJSON(["PORTSYNC_CONFIG": file])["hook"]?["runs"]?.integer == 1 }, "\(daemon.output)")
        let recorded = try String(contentsOfFile: record, encoding: .utf8)
        #expect(recorded.contains("PORTSYNC_PORT=51413\nPORTSYNC_PREVIOUS_PORT=\nPORTSYNC_REASON=start\nPORTSYNC_SOURCE=proton-file\n"), "\(recorded)")
        #expect(!recorded.contains("hunter2") && !recorded.contains("PORTSYNC_QBITTORRENT_PASSWORD"), "no secret reaches the hook")

        let hook = statusJSON(["PORTSYNC_CONFIG": file])["hook"]
        #expect(hook?["stderr"]?.string == "no route to the firewall" && hook?["outcome"]?.string == "exited with 4")
        #expect(hook?["runs"]?.integer == 1 && hook?["failures"]?.integer == 1 && hook?["succeeded"]?.bool == false)
        // `status` says it in words, from the same record.
        let (_, text) = try Child.run(["status", "--config", file])
        #expect(text.contains("hook: port 51413 exited with 4: no route to the firewall (1 run, 1 failed)"), "\(text)")
        let probe = MetricsProbe(port: metrics)
        #expect(probe.value(#"portsync_applies_total{client="hook"}"#) == 1)
        #expect(probe.value(#"portsync_apply_failures_total{client="hook"}"#) == 1)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
    }

    /// In a foreground run there is no cgroup to end what a hook left running: portsync ends it
    /// when it stops.
    @Test func whatTheHookLeftRunningEndsWithTheDaemon() throws {
        let directory = TemporaryDirectory()
        let pidFile = "\(directory.path)/background"
        let file = configuration(in: directory, ["background", pidFile])
        let daemon = try Child(["run", "--config", file])
        #expect(waitFor(seconds: 10) { FileManager.default.fileExists(atPath: pidFile) }, "\(daemon.output)")
        let text = try String(contentsOfFile: pidFile, encoding: .utf8)
        let background = try #require(pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        defer { kill(background, SIGKILL) }
        #expect(Self.isRunning(background), "the hook's sleep outlives the hook")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
        #expect(waitFor(seconds: 5) { !Self.isRunning(background) }, "it ended with the daemon")
    }

    /// With no fd free, the port file cannot be opened when it changes: the read is tried
    /// again, and the port arrives once an fd is free, with no further change of the file.
    @Test func aPortFileReadThatFailsForWantOfAnFDIsTriedAgain() throws {
        let directory = TemporaryDirectory()
        let record = "\(directory.path)/record"
        let file = configuration(in: directory)
        let daemon = try Child(["run", "--config", file])
        #expect(waitFor(seconds: 10) { ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").contains("PORTSYNC_PORT=51413") })
        let saved = try #require(daemon.process.exhaustFileDescriptors())
        directory.write("run/forwarded_port", "51414")
        // Wait for the port file's own line: the state file and the history, written after the
        // first port, may meet the exhausted table first with "Too many open files" of their own.
        #expect(daemon.waitForOutput(containing: "keeping port 51413, reading again in 1 s").contains("Too many open files"))
        #expect(daemon.process.setOpenFileLimit(saved) != nil)
        #expect(waitFor(seconds: 10) { ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").contains("PORTSYNC_PORT=51414") },
                "\(daemon.output)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
    }

    /// Whether `pid` is a process that has not ended (a zombie has).
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[close...].hasPrefix(") Z")
    }

    @Test func doctorLooksForTheProgramWithoutRunningIt() throws {
        let directory = TemporaryDirectory()
        let record = "\(directory.path)/record"
        for (program, expected) in [("sh", "/sh, run when the port changes (not run by doctor)"),
                                    ("portsync-no-such-program", #"✗ hook: "portsync-no-such-program" is not an executable file on PATH (/usr/bin:/bin)"#)] {
            let file = directory.write("config.toml", """
                [qbittorrent]
                url = "http://127.0.0.1:\(freePort())"
                [hook]
                command = ["\(program)", "\(Self.script)", "\(record)"]
                """)
            let (_, output) = try Child.run(["doctor", "--config", file])
            #expect(output.contains(expected), "\(output)")
        }
        #expect(!FileManager.default.fileExists(atPath: record), "doctor did not run the hook")
    }

    @Test func onceRunsTheHookWithTheSourceAndTheStateFilesPort() throws {
        let directory = TemporaryDirectory()
        directory.write("state.json", #"{"health":"ok","pid":1,"port":40000,"updated_at":0}"#)
        let record = "\(directory.path)/record"
        let file = configuration(in: directory)
        let (status, output) = try Child.run(["once", "--json", "--config", file])
        #expect(status == 1, "qBittorrent is not there: \(output)")
        let recorded = try String(contentsOfFile: record, encoding: .utf8)
        #expect(recorded.contains("PORTSYNC_PORT=51413\nPORTSYNC_PREVIOUS_PORT=40000\nPORTSYNC_REASON=start\nPORTSYNC_SOURCE=proton-file\n"), "\(recorded)")
        // Its answer is the line on stdout (the complaint about qBittorrent is on stderr).
        let answer = output.split(separator: "\n").last { $0.hasPrefix("{") }.map { Array($0.utf8) } ?? []
        #expect(try JSONValue.parse(answer)["changed"]?.bool == false, "a hook's run is no change of a client's port: \(output)")
    }
}
