import Foundation
import Glibc
import TestSupport
import Testing
@testable import portsync

/// `strategy = "auto"` on a network with no tunnel, in namespaces the test makes: the client
/// (the daemon and a real qbittorrent-nox) has no wg0, only `lan0` (192.168.77.2) and its
/// default route via 192.168.77.1, a router namespace holding Debian's real miniupnpd, or the
/// test NAT-PMP gateway answering PCP with Unsupported Version, or nothing. Then the default
/// route moves to another router, and a tunnel appears.
@Suite(.serialized, .enabled(if: MiniUPnPd.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3, miniupnpd, nftables and qbittorrent-nox (./scripts/test installs them)"))
final class AutoRouterDaemonTests {
    static let lan = "192.168.77.2"
    static let router = "192.168.77.1"
    var lab: NetworkLab!
    var client: LabClient!

    /// The lab with its tunnel taken away and a LAN instead.
    func setUp(torrentPort: UInt16) throws {
        lab = try NetworkLab(style: .pointToPoint)
        try lab.removeTunnel()
        try lab.addLAN()
        client = try LabClient(in: lab, torrentPort: torrentPort, interface: "lo")
    }

    /// auto, with its router turned back on (the tests' default keeps it off: only the lab's
    /// router may be asked), the tunnel wg0 and a ProtonVPN file that does not exist.
    func environment(_ more: [String: String] = [:]) -> [String: String] {
        client.environment([
            "PORTSYNC_SOURCE_AUTO_ROUTER": "true", "PORTSYNC_NATPMP_INTERFACE": "wg0",
            "PORTSYNC_PROTON_PORT_FILE": "\(client.directory.path)/proton/forwarded_port", "PORTSYNC_DAEMON_LOG_LEVEL": "debug",
        ].merging(more) { $1 })
    }

    func startDaemon(_ more: [String: String] = [:]) throws -> Child {
        let environment = environment(more)
        return try client.start(["run", "--trace"], environment: environment)
    }

    func miniupnpd(in namespace: String) throws -> MiniUPnPd {
        try MiniUPnPd(lab: lab, namespace: namespace, listening: "\(Self.router)/24", client: Self.lan)
    }

    /// The router answers PCP MAP: its port reaches qBittorrent, `status`, `doctor` and `config`
    /// say which gateway and why, and the mappings are deleted on a clean stop.
    @Test func autoMapsWithPCPOnTheRouterOfTheDefaultRoute() throws {
        try setUp(torrentPort: 41100)
        let router = try miniupnpd(in: lab.lan!)
        let daemon = try startDaemon(["PORTSYNC_PCP_DELETE_ON_EXIT": "true"])
        var port = 41100
        #expect(waitFor { port = self.client.listenPort ?? 41100; return port != 41100 }, "\(daemon.output)\n\(router.log)")
        #expect(waitFor { (try? listedChanges(self.environment()))?.map(\.description) == ["start none→\(port) [\"qbittorrent\": \"set\"]"] },
                "\((try? listedChanges(environment())) ?? [])")
        #expect(daemon.output.contains("pcp.udp: → MAP UDP: internal port \(port), suggested \(port), lifetime 7200 s, client \(Self.lan)"))
        #expect(router.log.contains("PCP request received from \(Self.lan)"))
        #expect(try router.natRules().contains("dnat ip to \(Self.lan):\(port)"))
        let (_, status) = try Child.run(["status"], environment: environment())
        #expect(status.contains("port \(port) from pcp"), "\(status)")
        #expect(status.contains("PCP gateway \(Self.router) (the gateway of the default route through lan0 from \(Self.lan)), external address \(MiniUPnPd.externalAddress)"),
                "\(status)")
        let (_, config) = try Child.run(["config"], environment: environment())
        #expect(config.contains("# source 3: PCP on the router of the default route (NAT-PMP if the gateway does not speak PCP), while wg0 is absent"), "\(config)")
        client.stop(daemon)
        #expect(waitFor(seconds: 3) { (try? router.natRules().contains("\(port)")) == false }, "deleted on exit")

        let environment = environment()
        let (_, doctor) = try lab.inClient { try Child.run(["doctor"], environment: environment) }
        #expect(doctor.contains("✗ NAT-PMP: the VPN interface is not usable: wg0 does not exist"), "\(doctor)")
        #expect(doctor.contains("✓ network: lan0 is up with \(Self.lan), its default route's gateway \(Self.router)"), "\(doctor)")
        #expect(doctor.contains("✓ PCP: port \(port) from gateway \(Self.router) (the gateway of the default route through lan0 from \(Self.lan))"), "\(doctor)")
    }

    /// A router that speaks only NAT-PMP answers PCP with Unsupported Version (version 0): it is
    /// asked with NAT-PMP instead, on the same way.
    @Test func aNATPMPOnlyRouterIsAskedWithNATPMP() throws {
        try setUp(torrentPort: 41102)
        let gateway = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript, namespace: lab.lan!, address: Self.router, name: "router")
        try gateway.set(answerVersions: true)
        let daemon = try startDaemon()
        #expect(waitFor { self.client.listenPort == 40000 }, "\(daemon.output)")
        #expect(gateway.requests.map { $0["op"] as? String }.prefix(4) == ["version", "version", "udp", "tcp"])
        #expect(gateway.requests.first?["version"] as? Int == 2)
        #expect(statusJSON(environment())["source"]?.string == "pcp", "PCP's source, speaking NAT-PMP on this gateway")
        client.stop(daemon)
    }

    /// Nothing answers on 5351 (port unreachable): PCP hands over to NAT-PMP, which is refused
    /// too; the source says so, and qBittorrent keeps its port.
    @Test func aRouterThatAnswersNeitherIsReported() throws {
        try setUp(torrentPort: 41104)
        let daemon = try startDaemon()
        #expect(waitFor { daemon.output.contains("refused NAT-PMP (port unreachable)") }, "\(daemon.output)")
        #expect(daemon.output.contains("the gateway \(Self.router) refused PCP (port unreachable): nothing answers on port 5351; asking with NAT-PMP instead"))
        #expect(client.listenPort == 41104)
        client.stop(daemon)
    }

    /// Another default route is another network: the new router is asked (PCP first), its
    /// port reaches qBittorrent, and nothing more goes to the old one.
    @Test func aNewDefaultRouteIsAnotherRouterAskedAfresh() throws {
        try setUp(torrentPort: 41106)
        let first = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript, namespace: lab.lan!, address: Self.router, name: "first")
        try first.set(answerVersions: true)
        let daemon = try startDaemon()
        #expect(waitFor { self.client.listenPort == 40000 }, "\(daemon.output)")
        let second = try lab.addRouter(subnet: 78)
        let other = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript, namespace: second, address: "192.168.78.1", name: "second")
        try other.set(mode: "normal", portBase: 45000)
        try other.set(answerVersions: true)
        let asked = first.requests.count
        try lab.useRouter(subnet: 78)
        #expect(waitFor { self.client.listenPort == 45000 }, "\(daemon.output)")
        #expect(other.requests.first?["op"] as? String == "version", "PCP first on the new network\n\(daemon.output)")
        usleep(500_000)
        #expect(first.requests.count == asked, "nothing more to the old router: \(first.requests.dropFirst(asked))")
        client.stop(daemon)
    }

    /// A tunnel that appears has the network: the router is told to drop the mappings and hears
    /// nothing more, and the tunnel's NAT-PMP port reaches qBittorrent.
    @Test func aTunnelThatAppearsWinsAndTheRouterDropsItsMappings() throws {
        try setUp(torrentPort: 41108)
        let router = try miniupnpd(in: lab.lan!)
        let daemon = try startDaemon()
        var port = 41108
        #expect(waitFor { port = self.client.listenPort ?? 41108; return port != 41108 }, "\(daemon.output)\n\(router.log)")
        try lab.restoreTunnel()
        let vpn = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript)
        // NAT-PMP may have asked before the gateway listened: its next try is 10 s later.
        #expect(waitFor(seconds: 20) { self.client.listenPort == 40000 }, "\(daemon.output)")
        #expect(waitFor(seconds: 3) { (try? router.natRules().contains("\(port)")) == false }, "\((try? router.natRules()) ?? "")")
        let requests = router.log.components(separatedBy: "PCP request received").count
        usleep(500_000)
        #expect(router.log.components(separatedBy: "PCP request received").count == requests, "nothing more to the router")
        #expect(vpn.requests.contains { $0["op"] as? String == "tcp" })
        client.stop(daemon)
        let environment = environment()
        let (_, doctor) = try lab.inClient { try Child.run(["doctor"], environment: environment) }
        #expect(doctor.contains("✓ PCP: not asked: the tunnel wg0 is there: the router is asked only on a network without it"), "\(doctor)")
        #expect(!doctor.contains("✗ PCP"), "standing by is nothing to fix")
    }
}
