import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// `strategy = "static"`: a port forwarded by hand (AirVPN, a router rule), kept on a real
/// qbittorrent-nox with everything the other sources get: `once`, `doctor`, drift repair and
/// the history. It is the source added through the seam alone: a folder and its settings.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class StaticSourceTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance
    let port = Int(freePort())

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var variables = ["PORTSYNC_SOURCE_STRATEGY": "static", "PORTSYNC_STATIC_PORT": "\(port)", "XDG_RUNTIME_DIR": "\(directory.path)/run"]
        variables.merge(extra) { $1 }
        return daemonEnvironment(qbittorrent, in: directory, variables)
    }

    @Test func onceAndDoctorUseTheStaticPort() throws {
        var (status, output) = try Child.run(["once", "--json"], environment: environment())
        #expect(status == 0, "\(output)")
        let answer = try JSONValue.parse(Array(output.utf8))
        #expect(answer["source"]?.string == "static" && answer["port"]?.integer == port, "\(output)")
        #expect(try qbittorrent.listenPort() == port)
        #expect(try listedChanges(environment()).map(\.description) == ["start none→\(port) [\"qbittorrent\": \"set\"]"])

        (status, output) = try Child.run(["doctor"], environment: environment())
        #expect(status == 0 && output.contains("✓ static port: port \(port) from [static] port"), "\(output)")
    }

    @Test func theDaemonKeepsTheStaticPortAndRepairsDrift() throws {
        let daemon = try Child(["run"], environment: environment(["PORTSYNC_QBITTORRENT_CHECK_SECONDS": "10"]))
        defer { daemon.signal(SIGTERM); _ = daemon.wait(seconds: 5) }
        #expect(waitFor(seconds: 10) { (try? self.qbittorrent.listenPort()) == self.port }, "\(daemon.output)")
        try qbittorrent.setPreferences(#"{"listen_port":\#(Int(freePort()))}"#)
        #expect(waitFor(seconds: 25) { (try? self.changes().last?.reason) == "client-drifted" }, "\(daemon.output)")
        #expect(try qbittorrent.listenPort() == port)
        #expect(try changes().map(\.reason) == ["start", "client-drifted"])
    }

    @Test func staticNeedsItsPort() throws {
        let (status, output) = try Child.run(["once"], environment: environment(["PORTSYNC_STATIC_PORT": ""]).filter { $0.key != "PORTSYNC_STATIC_PORT" })
        #expect(status == 2, "\(output)")
        #expect(output.contains("strategy \"static\" needs the port forwarded to you: set [static] port"), "\(output)")
    }

    private func changes() throws -> [ListedChange] {
        try listedChanges(environment())
    }
}
