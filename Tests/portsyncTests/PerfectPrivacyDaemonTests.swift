import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// `strategy = "perfectprivacy"` in network namespaces the test makes: a real qbittorrent-nox
/// in the client namespace, whose tunnel's address names the ports; nothing is sent to any
/// gateway.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3 and qbittorrent-nox (CI runs as root; ./scripts/test installs them)"))
final class PerfectPrivacyDaemonTests {
    let lab: NetworkLab
    let client: LabClient

    init() throws {
        lab = try NetworkLab(style: .pointToPoint)
        client = try LabClient(in: lab)
    }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ["PORTSYNC_SOURCE_STRATEGY": "perfectprivacy", "PORTSYNC_PERFECTPRIVACY_INTERFACE": "wg0"]
        environment.merge(extra) { $1 }
        return client.environment(environment)
    }

    @Test func thePortsFollowTheTunnelsAddress() throws {
        let environment = environment(["PORTSYNC_PERFECTPRIVACY_PORT_INDEX": "1"])
        let daemon = try lab.inClient { try Child(["run"], environment: environment) }
        defer { daemon.signal(SIGTERM); _ = daemon.wait(seconds: 5) }
        #expect(waitFor { self.client.listenPort == 20002 }, "10.2.0.2's second port: \(daemon.output)")

        // Another server: another address, other ports.
        try lab.ip("-n", lab.client, "addr", "del", "10.2.0.2", "peer", "10.2.0.1/32", "dev", "wg0")
        try lab.ip("-n", lab.client, "addr", "add", "10.2.1.7", "peer", "10.2.0.1/32", "dev", "wg0")
        #expect(waitFor { self.client.listenPort == 20263 }, "\(daemon.output)")
        // qBittorrent has the port before portsync's read-back verifies it and the history has it.
        var changes: [ListedChange] = []
        #expect(waitFor(seconds: 5) {
            changes = (try? self.lab.inClient { try listedChanges(environment) }) ?? []
            return changes.count == 2
        })
        #expect(changes.map(\.description) == ["start none→20002 [\"qbittorrent\": \"set\"]",
                                               "tunnel-recreated 20002→20263 [\"qbittorrent\": \"set\"]"], "\(changes)")
    }

    /// A client's own `port_index` picks among the three ports; the others keep the source's.
    @Test func aClientsOwnPortIndexPicksAmongTheThreePorts() throws {
        let file = client.directory.write("config.toml", "[source]\nstrategy = \"perfectprivacy\"\n[qbittorrent]\nport_index = 2\n")
        let environment = environment(["PORTSYNC_CONFIG": file])
        let daemon = try lab.inClient { try Child(["run"], environment: environment) }
        defer { daemon.signal(SIGTERM); _ = daemon.wait(seconds: 5) }
        #expect(waitFor { self.client.listenPort == 30002 }, "10.2.0.2's third port: \(daemon.output)")
        #expect(waitFor(seconds: 5) { sourceRecord(environment, "perfectprivacy")?["port"]?.integer == 10002 },
                "the source's own port_index (0) names the first")
    }

    @Test func onceAndDoctorComputeThePorts() throws {
        let environment = environment()
        var (status, output) = try lab.inClient { try Child.run(["once", "--json"], environment: environment) }
        #expect(status == 0, "\(output)")
        #expect(try JSONValue.parse(Array(output.utf8))["port"]?.integer == 10002, "\(output)")
        #expect(client.listenPort == 10002)
        (status, output) = try lab.inClient { try Child.run(["doctor"], environment: environment) }
        #expect(status == 0 && output.contains("✓ Perfect Privacy: port 10002, 20002, 30002 from tunnel address 10.2.0.2"), "\(output)")

        (status, output) = try lab.inClient { try Child.run(["once"], environment: environment.merging(["PORTSYNC_PERFECTPRIVACY_INTERFACE": "tun9"]) { $1 }) }
        #expect(status == 3 && output.contains("the VPN interface is not usable: tun9 does not exist"), "\(output)")
    }
}
