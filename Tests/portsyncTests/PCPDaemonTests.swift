import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// The daemon with the `pcp` strategy in network namespaces the test makes: the daemon and a real
/// qbittorrent-nox in the client namespace (wg0 = 10.2.0.2), in the gateway namespace (10.2.0.1)
/// Debian's real miniupnpd, or the test NAT-PMP gateway answering PCP with Unsupported Version,
/// or nothing at all.
@Suite(.serialized, .enabled(if: MiniUPnPd.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3, miniupnpd, nftables and qbittorrent-nox (./scripts/test installs them)"))
final class PCPDaemonTests {
    var lab: NetworkLab!
    var client: LabClient!

    func setUp(torrentPort: UInt16) throws {
        lab = try NetworkLab(style: .pointToPoint)
        client = try LabClient(in: lab, torrentPort: torrentPort, interface: "lo")
    }

    func environment(lease: Int, _ more: [String: String] = [:]) -> [String: String] {
        client.environment([
            "PORTSYNC_SOURCE_STRATEGY": "pcp", "PORTSYNC_PCP_INTERFACE": "wg0", "PORTSYNC_PCP_LEASE_SECONDS": "\(lease)",
            "PORTSYNC_DAEMON_LOG_LEVEL": "debug",
        ].merging(more) { $1 })
    }

    func startDaemon(lease: Int, _ more: [String: String] = [:]) throws -> Child {
        let environment = environment(lease: lease, more)
        return try client.start(["run", "--trace"], environment: environment)
    }

    /// miniupnpd answers PCP MAP with SUCCESS, the suggested port (the mapping's internal port:
    /// with no port known yet, one chosen at random) and its external address, and makes the
    /// DNAT rules to 10.2.0.2 for both protocols; qBittorrent is set to that port, where the
    /// router forwards.
    @Test func miniupnpdMapsWithPCPAndQBittorrentListensWhereItForwards() throws {
        try setUp(torrentPort: 41000)
        let router = try MiniUPnPd(lab: lab)
        let daemon = try startDaemon(lease: 7200)
        var port = 41000
        #expect(waitFor { port = self.client.listenPort ?? 41000; return port != 41000 }, "\(daemon.output)\n\(router.log)")
        let (_, status) = try Child.run(["status"], environment: environment(lease: 7200))
        #expect(status.contains("external address \(MiniUPnPd.externalAddress)"), "the address the gateway named: \(status)")
        // doctor beside the running daemon: its check maps the same internal port again, and
        // miniupnpd grants it. (This qBittorrent listens on loopback alone, which doctor names.)
        let (doctorStatus, doctor) = try lab.inClient { try Child.run(["doctor"], environment: self.environment(lease: 7200)) }
        #expect(doctor.contains("✓ PCP: port \(port) from gateway 10.2.0.1 (the peer address of the point-to-point tunnel), external address \(MiniUPnPd.externalAddress)"), "\(doctor)")
        let failed = doctor.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("✗") }
        #expect(doctorStatus == 1 && failed.count == 1 && failed.first?.contains("✗ connectable: not connectable (qbittorrent listens on port \(port) only on 127.0.0.1") == true, "\(doctor)")
        #expect(client.listenPort == port, "the doctor's check left the daemon's port alone")
        let rules = try router.natRules()
        #expect(rules.contains("0x6 th dport \(port) dnat ip to \(lab.clientAddress):\(port)"), "\(rules)")
        #expect(rules.contains("0x11 th dport \(port) dnat ip to \(lab.clientAddress):\(port)"), "\(rules)")
        #expect(router.log.contains("PCP request received from \(lab.clientAddress)"))
        #expect(!router.log.contains("NAT-PMP request received"), "PCP alone")
        #expect(daemon.output.contains("pcp.udp: → MAP UDP: internal port \(port), suggested \(port), lifetime 7200 s, client \(lab.clientAddress)"))
        client.stop(daemon)
        #expect(try router.natRules().contains("dnat ip to \(lab.clientAddress):\(port)"), "without delete_on_exit the mappings stay until their lease ends")
        let changes = try listedChanges(environment(lease: 7200))
        #expect(changes.map(\.port) == [port])
        #expect(changes.map(\.reason) == ["start"])
    }

    /// `[pcp] delete_on_exit`: a clean stop asks miniupnpd to delete both mappings (lifetime 0,
    /// each with its nonce), and it removes their DNAT rules.
    @Test func deleteOnExitLeavesMiniupnpdWithoutTheMappings() throws {
        try setUp(torrentPort: 41008)
        let router = try MiniUPnPd(lab: lab)
        let daemon = try startDaemon(lease: 7200, ["PORTSYNC_PCP_DELETE_ON_EXIT": "true"])
        var port = 41008
        #expect(waitFor { port = self.client.listenPort ?? 41008; return port != 41008 }, "\(daemon.output)\n\(router.log)")
        #expect(waitFor { (try? router.natRules().components(separatedBy: "dnat ip to \(self.lab.clientAddress):\(port)").count) == 3 })
        client.stop(daemon)
        #expect(daemon.output.contains("pcp.udp: → MAP UDP: internal port \(port), suggested 0, lifetime 0 s"))
        #expect(waitFor(seconds: 3) { (try? router.natRules().contains("\(port)")) == false }, "\((try? router.natRules()) ?? "")\n\(router.log)")
        #expect(router.log.contains("PCP: UDP port \(port) mapping removed") && router.log.contains("PCP: TCP port \(port) mapping removed"), "\(router.log)")
    }

    /// Where the tunnel has IPv6 (fd00:2::2/64, its default route via the gateway's fe80::1),
    /// miniupnpd is asked over IPv6 too: the request names fd00:2::2 itself as the client, from
    /// a socket bound to it and kept on wg0, and miniupnpd opens the clients' port (the one
    /// qBittorrent was verified on) for it; a clean stop with delete_on_exit closes it again.
    @Test func miniupnpdOpensTheClientsPortOnTheIPv6AddressOverPCP() throws {
        try setUp(torrentPort: 41010)
        try lab.addIPv6()
        let router = try MiniUPnPd(lab: lab, ipv6: true)
        let daemon = try startDaemon(lease: 7200, ["PORTSYNC_PCP_DELETE_ON_EXIT": "true"])
        var port = 41010
        #expect(waitFor { port = self.client.listenPort ?? 41010; return port != 41010 }, "\(daemon.output)\n\(router.log)")
        let pinhole = "th dport \(port) @nh,192,128 0xfd000002000000000000000000000002"
        #expect(waitFor { (try? router.filterRules().components(separatedBy: pinhole).count) == 3 }, "\((try? router.filterRules()) ?? "")\n\(daemon.output)\n\(router.log)")
        #expect(daemon.output.contains("pcp6.udp: → MAP UDP: internal port \(port), suggested \(port), lifetime 7200 s, client \(NetworkLab.clientIPv6)"))
        #expect(daemon.output.contains("pcp6.udp: ← MAP TCP: SUCCESS, internal \(port), external [\(NetworkLab.clientIPv6)]:\(port)"))
        #expect(router.log.contains("PCP request received from [\(NetworkLab.clientIPv6)]"), "\(router.log)")
        #expect(daemon.output.contains("pcp.udp: → MAP UDP: internal port \(port), suggested \(port), lifetime 7200 s, client \(lab.clientAddress)"), "IPv4 as before")
        let (_, status) = try Child.run(["status"], environment: environment(lease: 7200))
        #expect(status.contains("IPv6: port \(port) open on \(NetworkLab.clientIPv6) by fe80::1%wg0"), "\(status)")
        client.stop(daemon)
        #expect(waitFor(seconds: 3) { (try? router.filterRules().contains(pinhole)) == false }, "closed on exit")
    }

    /// A restarted router forgets its mappings and restarts its epoch: the next renewal's answer
    /// shows it (§8.5), and both mappings are made again at once, asking for the same port.
    @Test func aRestartedMiniupnpdIsMappedAgainOnTheSamePort() throws {
        try setUp(torrentPort: 41002)
        let router = try MiniUPnPd(lab: lab, minimumLifetime: 4)
        let daemon = try startDaemon(lease: 4)
        var port = 41002
        #expect(waitFor { port = self.client.listenPort ?? 41002; return port != 41002 }, "\(daemon.output)\n\(router.log)")
        // Whole epoch seconds must pass for a restart to show.
        usleep(3_000_000)
        try router.stop()
        #expect(try router.natRules().contains("\(port)") == false)
        try router.start()
        #expect(waitFor(seconds: 6) { daemon.output.contains("the gateway lost its mappings") }, "\(daemon.output)\n\(router.log)")
        #expect(waitFor(seconds: 4) { (try? router.natRules().contains("dnat ip to \(self.lab.clientAddress):\(port)")) == true })
        #expect(client.listenPort == port)
        client.stop(daemon)
    }

    /// A gateway that speaks only NAT-PMP answers PCP with Unsupported Version (version 0): the
    /// same source asks it with NAT-PMP, and its port reaches qBittorrent.
    @Test func aNATPMPOnlyGatewayIsAskedWithNATPMP() throws {
        try setUp(torrentPort: 41004)
        let gateway = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript)
        try gateway.set(answerVersions: true)
        let daemon = try startDaemon(lease: 60)
        #expect(waitFor { self.client.listenPort == 40000 }, "\(daemon.output)")
        let requests = gateway.requests
        #expect(requests.first?["op"] as? String == "version")
        #expect(requests.first?["version"] as? Int == 2)
        #expect(requests.filter { $0["op"] as? String == "version" }.count == 2, "one PCP request per protocol, then NAT-PMP")
        #expect(requests.dropFirst(2).prefix(2).map { $0["op"] as? String } == ["udp", "tcp"])
        client.stop(daemon)
        let changes = try listedChanges(environment(lease: 60))
        #expect(changes.map(\.port) == [40000])
    }

    /// Nothing answers on 5351 (port unreachable): PCP hands over to NAT-PMP, which is refused
    /// too; the source says so, and qBittorrent keeps its port.
    @Test func aGatewayThatAnswersNeitherIsReported() throws {
        try setUp(torrentPort: 41006)
        let daemon = try startDaemon(lease: 60)
        var record: JSONValue?
        #expect(waitFor {
            record = sourceRecord(self.environment(lease: 60), "pcp", writtenBy: daemon.process.pid)
            return record?["state"]?.string == "failing"
        }, "\(record?.serialized ?? "no record"): \(daemon.output)")
        #expect(record?["problem"]?.string?.contains("refused NAT-PMP (port unreachable)") == true, "PCP, then NAT-PMP: \(record?.serialized ?? "")")
        #expect(record?["port"] == nil)
        #expect(client.listenPort == 41006)
        #expect(daemon.output.contains("refused PCP (port unreachable): nothing answers on port 5351; asking with NAT-PMP instead"))
        client.stop(daemon)
    }
}
