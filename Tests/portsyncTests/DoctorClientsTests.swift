import Foundation
import HTTP
import Reactor
import TestSupport
import Testing

/// `portsync doctor` runs each client's own sink (`inspect`: the daemon's connect, changing
/// nothing). Here against a qBittorrent 5.2 stand-in served by the test's loop while the child
/// runs, which counts the logins and keeps what it is sent.
@Suite(.serialized) final class DoctorClientsTests {
    let directory = TemporaryDirectory()

    func doctor(_ fake: FakeQBittorrent52, on loop: EventLoop, password: String, _ extra: [String: String] = [:]) throws -> String {
        directory.write("password", password + "\n", mode: 0o600)
        let child = try Child(["doctor"], environment: [
            "PORTSYNC_SOURCE_STRATEGY": "static", "PORTSYNC_STATIC_PORT": "51413",
            "PORTSYNC_QBITTORRENT_URL": "\(fake.server.url)", "PORTSYNC_QBITTORRENT_PASSWORD_FILE": "\(directory.path)/password",
            "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json",
        ].merging(extra) { $1 })
        #expect(try runUntil(loop, seconds: 30) { !child.process.isRunning })
        return child.output
    }

    @Test func doctorLogsInToQBittorrentOnceAndWritesNothing() throws {
        let loop = try EventLoop(logger: LogCapture(level: .info).logger)
        let fake = try FakeQBittorrent52(loop: loop)
        fake.preferences["random_port"] = .bool(true)
        fake.preferences["announce_port"] = .number(6882)
        let output = try doctor(fake, on: loop, password: fake.password)
        #expect(fake.loginRequests == 1, "\(output)")
        #expect(fake.server.requests.map { "\($0.method) \($0.target)" }
                == ["GET /api/v2/app/webapiVersion", "POST /api/v2/auth/login", "GET /api/v2/app/version", "GET /api/v2/app/preferences"])
        for line in ["✓ qBittorrent: \(fake.server.url) answers",
                     "✓ login: logged in as \"admin\" (password from file \(directory.path)/password)",
                     "✓ version: qBittorrent v5.2.3",
                     "✗ settings: listen_port 6881; random_port is on, UPnP/NAT-PMP is on",
                     "✗ trackers: announce_port is 6882, so trackers hear of that port",
                     "2 check(s) failed"] {
            #expect(output.contains(line), "\(line) in \(output)")
        }
        #expect(fake.listenPort == 6881 && fake.preferences["upnp"] == .bool(true) && fake.preferences["random_port"] == .bool(true),
                "doctor changes nothing")
        #expect(!output.contains(fake.password))

        let refused = try doctor(fake, on: loop, password: "wrong-password")
        #expect(fake.loginRequests == 2, "one more login, not retried: \(refused)")
        #expect(refused.contains("✗ login: qBittorrent rejected \"admin\" and its password (401 Unauthorized)"), "\(refused)")
        #expect(refused.contains("→ fix the password (file \(directory.path)/password); qBittorrent bans an IP after 5 failures"), "\(refused)")
        #expect(!refused.contains("wrong-password"))

        // Bound to an interface: the list is read too; this stand-in has none (before 4.2).
        let bound = try doctor(fake, on: loop, password: fake.password,
                               ["PORTSYNC_QBITTORRENT_BIND_INTERFACE": "true", "PORTSYNC_NATPMP_INTERFACE": "wg-test"])
        #expect(fake.server.requests.suffix(4).map(\.target)
                == ["/api/v2/app/webapiVersion", "/api/v2/auth/login", "/api/v2/app/version", "/api/v2/app/networkInterfaceList"])
        #expect(bound.contains("✓ version: qBittorrent v5.2.3\n✗ binding: cannot read qBittorrent's interface list (unexpected answer 404 Not Found)\n    → qBittorrent 4.2 or newer is needed"), "\(bound)")
        #expect(!bound.contains("settings:"), "nothing after the step that failed")
    }
}
