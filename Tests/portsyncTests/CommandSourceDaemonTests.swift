import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// `strategy = "command"` on a real qbittorrent-nox: a program's output is the port, in `once`,
/// `doctor` and the daemon, which runs it again every `interval_seconds`.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class CommandSourceDaemonTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var variables = ["PORTSYNC_SOURCE_STRATEGY": "command", "XDG_RUNTIME_DIR": "\(directory.path)/run",
                         "PORTSYNC_COMMAND_ARGV": #"["cat", "\#(directory.path)/port"]"#, "PORTSYNC_COMMAND_INTERVAL_SECONDS": "5"]
        variables.merge(extra) { $1 }
        return daemonEnvironment(qbittorrent, in: directory, variables)
    }

    @Test func onceDoctorAndTheDaemonTakeTheCommandsPort() throws {
        let first = Int(freePort())
        directory.write("port", "\(first)\n")
        var (status, output) = try Child.run(["once", "--json"], environment: environment())
        #expect(status == 0 && (try? JSONValue.parse(Array(output.utf8)))?["port"]?.integer == first, "\(output)")
        #expect(try qbittorrent.listenPort() == first)
        (status, output) = try Child.run(["doctor"], environment: environment())
        #expect(status == 0 && output.contains("✓ command: port \(first) from cat \(directory.path)/port"), "\(output)")

        (status, output) = try Child.run(["once"], environment: environment(["PORTSYNC_COMMAND_ARGV": #"["no-such-program"]"#]))
        #expect(status == 2 && output.contains("\"no-such-program\" is not an executable file on PATH"), "a configuration problem: \(output)")

        let daemon = try Child(["run"], environment: environment())
        defer { daemon.signal(SIGTERM); _ = daemon.wait(seconds: 5) }
        #expect(daemon.waitForOutput(containing: "running (pid").contains("running (pid"))
        let second = Int(freePort())
        directory.write("port", "\(second)\n")
        #expect(waitFor(seconds: 12) { (try? self.qbittorrent.listenPort()) == second }, "the next run: \(daemon.output)")
        // The history's line is written once every client answered, just after qBittorrent has the port.
        #expect(waitFor(seconds: 5) { (try? listedChanges(self.environment()))?.last?.reason == "source-changed" },
                "\((try? listedChanges(environment())) ?? [])")

    }
}
