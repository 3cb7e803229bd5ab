import Foundation
import Glibc
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The daemon with the `gluetun` strategy: a real qbittorrent-nox and the stand-in Gluetun
/// control server (python3), both on 127.0.0.1.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available && NetworkLab.python != nil,
                             "needs qbittorrent-nox and python3 (./scripts/test installs them as root)"))
final class GluetunDaemonTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/gluetun_server.py").standardized.path
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance
    let gluetun: FakeGluetun
    /// Where each test's daemon serves its metrics: what it did, as values.
    let probe = MetricsProbe()

    init() throws {
        qbittorrent = try QBittorrentInstance()
        gluetun = try FakeGluetun(script: Self.script)
        directory.write("password", QBittorrentInstance.password)
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var variables = ["PORTSYNC_SOURCE_STRATEGY": "gluetun", "PORTSYNC_GLUETUN_URL": gluetun.url, "PORTSYNC_GLUETUN_POLL_SECONDS": "1"]
            .merging(probe.environment) { $1 }
        variables.merge(extra) { $1 }
        return daemonEnvironment(qbittorrent, in: directory, variables)
    }

    /// The source has answered and names no port: served, unhealthy, forwarding nothing.
    func noPortYet() -> Bool {
        waitFor { self.probe.total("portsync_source_forwarding") == 0 && self.probe.health()?.status == 503 }
            && probe.health()?.body["reason"]?.string?.hasPrefix("\(Health.waitingForPort.description): ") == true
    }

    func reasons() -> [String] { historyReasons(environment()) }

    func qBittorrentReaches(_ port: Int, seconds: Double = 10) -> Bool {
        waitFor(seconds: seconds) { (try? qbittorrent.listenPort()) == port }
    }

    /// A refused key, in the test's own loop on a clock that moves only when told: Gluetun is
    /// asked on both routes once, then nothing until the 5-minute pause ends, then both again.
    func expectOneRefusalPerPause(_ extra: [String: String], line: String) throws {
        let clock = ManualClock()
        let log = LogCapture(level: .info)
        let loop = try EventLoop(clock: clock, logger: log.logger)
        let configuration = loader(environment: environment(extra))
        let daemon = Daemon(loop: loop, loader: configuration, loaded: try configuration.load(), environment: [:])
        let before = gluetun.requests.count
        try daemon.start()
        defer { daemon.stop() }
        try runUntil(loop) { log.count(line) == 1 }
        #expect(log.count(line) == 1, "\(log.text)")
        #expect(gluetun.requests.count - before == 2, "both routes once")
        clock.advance(by: .seconds(299))
        try loop.runOnce(timeout: .zero)
        #expect(gluetun.requests.count - before == 2, "nothing more during the pause: no loop")
        #expect(log.count("refused GET") == 1)
        clock.advance(by: .seconds(1))
        try runUntil(loop) { log.count("refused GET") == 2 }
        #expect(gluetun.requests.count - before == 4, "both routes again after 5 minutes")
        #expect(!log.text.contains("wrong-key") && !log.text.contains("other-key"))
    }

    @Test func aPortThatAppearsIsAppliedAndAChangeFollowedWithinOnePoll() throws {
        try gluetun.set(["version": "3.41", "ports": [Int]()])
        let daemon = try Child(["run"], environment: environment())
        #expect(noPortYet(), "\(daemon.output)")
        try gluetun.set(["ports": [40000]])
        #expect(qBittorrentReaches(40000), "\(daemon.output)")
        try gluetun.set(["ports": [40001]])
        #expect(qBittorrentReaches(40001, seconds: 2.5), "within one poll (1 s, ±10 %)")
        #expect(gluetun.requests.allSatisfy { $0["path"] as? String == "/v1/portforward" })
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    /// Gluetun v3.40 checks roles before routing and has no `/v1/portforward`, so that route is
    /// 401 for everyone (what v3.40 does, with the files read: `GluetunSessionTests` in
    /// WatchersTests). Here with no roles: its built-in "public" role lists only the old route.
    @Test func gluetun340IsAskedOnItsOldRoute() throws {
        try gluetun.set(["version": "3.40", "ports": [40010]])
        let daemon = try Child(["run"], environment: environment())
        #expect(qBittorrentReaches(40010), "\(daemon.output)")
        let paths = gluetun.requests.compactMap { $0["path"] as? String }
        #expect(paths.first == "/v1/portforward" && paths.dropFirst().allSatisfy { $0 == "/v1/openvpn/portforwarded" })
        #expect(!daemon.output.contains("refused"), "\(daemon.output)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    /// Issue 11: a v3.40 user whose API key role lists `GET /v1/openvpn/portforwarded` (all
    /// v3.40 accepts) gets the port, not "refused"; a wrong key is refused on both routes, said
    /// once, with two requests and then a 5-minute pause.
    @Test func gluetun340WithAKeyForTheOldRouteOnly() throws {
        let role: [String: Any] = ["name": "portsync", "auth": "apikey", "apikey": "v340-right-key", "routes": ["GET /v1/openvpn/portforwarded"]]
        try gluetun.set(["version": "3.40", "ports": [40015], "roles": [role]])
        directory.write("gluetun-key", "v340-right-key\n")
        let keyed = try Child(["run"], environment: environment(["PORTSYNC_GLUETUN_API_KEY_FILE": "\(directory.path)/gluetun-key"]))
        #expect(qBittorrentReaches(40015), "\(keyed.output)")
        let asked = gluetun.requests.map { "\($0["path"] as? String ?? "") \($0["allowed"] as? Bool ?? false)" }
        #expect(asked.first == "/v1/portforward false" && asked.dropFirst().allSatisfy { $0 == "/v1/openvpn/portforwarded true" }, "\(asked)")
        #expect(keyed.output.components(separatedBy: "Gluetun answers on /v1/openvpn/portforwarded (v3.40 or older)").count - 1 == 1)
        keyed.signal(SIGTERM)
        #expect(keyed.wait(seconds: 1) == 0)
        #expect(!keyed.output.contains("refused") && !keyed.output.contains("v340-right-key"), "\(keyed.output)")

        directory.write("gluetun-key", "v340-wrong-key\n")
        try expectOneRefusalPerPause(["PORTSYNC_GLUETUN_API_KEY_FILE": "\(directory.path)/gluetun-key"],
                                     line: "refused GET /v1/portforward (401) and GET /v1/openvpn/portforwarded (401) with the API key ([gluetun].api_key_file)")
    }

    @Test func severalPortsAndThePortIndex() throws {
        try gluetun.set(["version": "main", "ports": [40020, 40021]])
        let daemon = try Child(["run"], environment: environment(["PORTSYNC_GLUETUN_PORT_INDEX": "1"]))
        #expect(qBittorrentReaches(40021), "\(daemon.output)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func authenticationWithAKeyOrBasicAndARefusalThatIsNotHammered() throws {
        try gluetun.set(["version": "3.41", "ports": [40030], "auth": "apikey", "apikey": "right-key"])
        directory.write("gluetun-key", "right-key\n")
        let keyed = try Child(["run"], environment: environment(["PORTSYNC_GLUETUN_API_KEY_FILE": "\(directory.path)/gluetun-key"]))
        #expect(qBittorrentReaches(40030), "\(keyed.output)")
        keyed.signal(SIGTERM)
        #expect(keyed.wait(seconds: 1) == 0)
        #expect(!keyed.output.contains("right-key"))

        try gluetun.set(["auth": "basic", "username": "portsync", "password": "pw", "ports": [40031]])
        let basic = try Child(["run"], environment: environment(["PORTSYNC_GLUETUN_USERNAME": "portsync", "PORTSYNC_GLUETUN_PASSWORD": "pw"]))
        #expect(qBittorrentReaches(40031), "\(basic.output)")
        basic.signal(SIGTERM)
        #expect(basic.wait(seconds: 1) == 0)

        try gluetun.set(["auth": "apikey", "apikey": "other-key", "ports": [40032]])
        try expectOneRefusalPerPause(["PORTSYNC_GLUETUN_API_KEY_FILE": "\(directory.path)/gluetun-key"],
                                     line: "[gluetun].api_key_file")
    }

    @Test func garbageKeepsTheLastGoodPort() throws {
        try gluetun.set(["version": "3.41", "ports": [40040]])
        let daemon = try Child(["run"], environment: environment())
        #expect(qBittorrentReaches(40040))
        try gluetun.set(["mode": "garbage"])
        let forwarding = #"portsync_source_forwarding{source="gluetun"}"#
        #expect(waitFor { self.probe.value(forwarding) == 0 }, "the source says it fails: \(daemon.output)")
        #expect(daemon.output.contains("not a JSON object") && daemon.output.contains("<html>not json</html>"), "\(daemon.output)")
        #expect(try qbittorrent.listenPort() == 40040)
        #expect(probe.value("portsync_port") == 40040 && reasons() == ["start"], "garbage moves nothing")
        try gluetun.set(["mode": "normal"])
        #expect(waitFor { self.probe.value(forwarding) == 1 }, "and forwards again at its next good answer")
        #expect(reasons() == ["start"])
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func theForwardedPortFileInsteadOfTheServer() throws {
        let file = "\(directory.path)/gluetun/forwarded_port"
        let daemon = try Child(["run"], environment: environment(["PORTSYNC_GLUETUN_PORT_FILE": file, "PORTSYNC_GLUETUN_PORT_INDEX": "1"]))
        #expect(noPortYet(), "\(daemon.output)")
        directory.write("gluetun/forwarded_port", "40050\n40051", mode: 0o644)
        #expect(qBittorrentReaches(40051), "\(daemon.output)")
        directory.write("gluetun/forwarded_port", "", mode: 0o644)  // Gluetun empties it on stop
        #expect(waitFor { self.reasons() == ["start", "source-emptied"] }, "\(reasons())")
        directory.write("gluetun/forwarded_port", "40060\n40061", mode: 0o644)
        #expect(qBittorrentReaches(40061))
        #expect(gluetun.requests.isEmpty, "the control server is not asked in file mode")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func onceAndDoctorAskGluetun() throws {
        try gluetun.set(["version": "3.41", "ports": [40070]])
        var (status, output) = try Child.run(["once", "--json"], environment: environment())
        #expect(status == 0, "\(output)")
        #expect(try JSONValue.parse(Array(output.utf8))["source"]?.string == "gluetun")
        #expect(try qbittorrent.listenPort() == 40070)
        (status, output) = try Child.run(["doctor"], environment: environment())
        #expect(status == 0 && output.contains("✓ Gluetun: port 40070 from \(gluetun.url)/v1/portforward"), "\(output)")
        try gluetun.set(["auth": "apikey", "apikey": "x"])
        (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 2 && output.contains("(401)"), "a refusal is a configuration problem: \(output)")
        try gluetun.set(["auth": "none", "ports": [Int]()])
        (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 1 && output.contains("Gluetun has no forwarded port yet"), "\(output)")
    }
}
