import Foundation
import Testing
@testable import portsync

/// The real binary, as a user runs it.
@Suite struct ExecutableTests {
    @Test func badUsageAndBadValuesExitTwoWithOneLine() throws {
        for arguments in [["run", "--bogus"], ["run", "--gateway", "300.1.1.1"], ["frobnicate"], ["run", "--set", "natpmp.renew_seconds=90"]] {
            let (status, output, error) = try Child.run(arguments)
            #expect(status == 2, "\(arguments)")
            #expect(output.isEmpty)
            #expect(error.hasPrefix("portsync: ") && error.filter { $0 == "\n" }.count == 1, "\(error)")
        }
    }

    @Test func aBadConfigFileExitsTwoNamingTheLine() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "[natpmp]\n\nprot = 5351\n")
        let (status, _, error) = try Child.run(["run", "--config", file])
        #expect(status == 2)
        #expect(error == "portsync: \(file):3: unknown key \"prot\" in [natpmp]\n")
    }

    @Test func commandsOfLaterIssuesSaySoAndExitThree() throws {
        let (status, _, error) = try Child.run(["doctor"])
        #expect(status == 3)
        #expect(error.contains("not available"))
    }

    @Test func versionHelpAndConfig() throws {
        #expect(try Child.run(["--version"]).1 == "portsync 0.1.0\n")
        #expect(try Child.run(["--help"]).1.contains("Usage: portsync <command>"))
        let (status, output, _) = try Child.run(["config", "--interface", "wg0"],
                                                environment: ["PORTSYNC_QBITTORRENT_PASSWORD": "hunter2"])
        #expect(status == 0)
        #expect(output.contains("interface = \"wg0\""))
        #expect(output.contains("# qBittorrent password: set (PORTSYNC_QBITTORRENT_PASSWORD)"))
        #expect(!output.contains("hunter2"))
    }

    @Test func runStopsCleanlyOnSigtermAndSigint() throws {
        for signal in [SIGTERM, SIGINT] {
            let child = try Child(["run", "--log-level", "info"])
            _ = child.waitForError(containing: "running")
            child.signal(signal)
            #expect(child.wait(seconds: 5) == 0)
        }
    }

    @Test func sighupReloadsAGoodConfigurationAndKeepsTheOldOneOnABadOne() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "[daemon]\nlog_level = \"info\"\n")
        let child = try Child(["run", "--config", file])
        defer { child.signal(SIGKILL); child.wait() }
        #expect(child.waitForError(containing: "running").contains("running"))

        directory.write("config.toml", "[daemon]\nlog_level = \"info\"\n[natpmp]\ninterface = \"wg7\"\n")
        child.signal(SIGHUP)
        #expect(child.waitForError(containing: "configuration reloaded").contains("SIGHUP: configuration reloaded from \(file)"))

        directory.write("config.toml", "[daemon]\nlog_level = \"info\"\n[natpmp]\ninterface = wg8\n")
        child.signal(SIGHUP)
        let complaint = child.waitForError(containing: "keeping the previous configuration")
        #expect(complaint.contains("\(file):4: \"interface\" has an unquoted value \"wg8\"; strings need quotes; keeping the previous configuration"))

        child.signal(SIGTERM)
        #expect(child.wait(seconds: 5) == 0)
    }

    @Test func traceShowsDispatchedEvents() throws {
        let child = try Child(["run", "--trace"])
        _ = child.waitForError(containing: "running")
        child.signal(SIGHUP)
        let trace = child.waitForError(containing: "trace   signal: SIGHUP")
        #expect(trace.contains("trace   signal: fd="))
        child.signal(SIGTERM)
        #expect(child.wait(seconds: 5) == 0)
    }
}
