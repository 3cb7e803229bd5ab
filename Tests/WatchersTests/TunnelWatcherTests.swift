import Foundation
import Reactor
import Testing
import TestSupport
@testable import Watchers

/// Real rtnetlink, in network namespaces the test makes, with the tunnel laid out as the real
/// tools lay it out.
@Suite(.serialized, .enabled(if: NetworkLab.available, "needs root and iproute2 (CI runs as root)"))
final class TunnelWatcherTests {
    static func address(_ state: TunnelTracker.State?) -> IPv4Address? {
        if case .usable(let tunnel)? = state { tunnel.address } else { nil }
    }

    @Test func followsTheTunnelDownUpAndAway() throws {
        let lab = try NetworkLab()
        try lab.inClient {
            let loop = try EventLoop(logger: LogCapture().logger)
            var states: [TunnelTracker.State] = []
            let watcher = TunnelWatcher(loop: loop, interface: "wg0") { states.append($0) }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { Self.address(states.last) == IPv4Address(10, 2, 0, 2) })
            guard case .usable(let tunnel)? = states.last else { return }
            #expect(tunnel.gateway == IPv4Address(10, 2, 0, 1) && tunnel.gatewayRule == .peer)
            try lab.setTunnel(up: false)
            #expect(try runUntil(loop, seconds: 5) { states.last == .unusable("wg0 is down") })
            try lab.setTunnel(up: true)
            #expect(try runUntil(loop, seconds: 5) { Self.address(states.last) == IPv4Address(10, 2, 0, 2) })
            try lab.ip("-n", lab.client, "link", "del", "wg0")
            #expect(try runUntil(loop, seconds: 5) { states.last == .unusable("wg0 does not exist") })
        }
    }

    /// wg-quick up, command by command, with 300 ms between link-up and the routes: the
    /// watcher says "waiting for a route" until the rule that leads to table 51820 exists,
    /// then usable, and only then; with a LAN default route in the main table too.
    @Test(arguments: [false, true])
    func wgQuickIsUsableOnlyOnceItsRouteAndRuleExist(withLAN: Bool) throws {
        let lab = try NetworkLab(style: .wgQuick(routeDelay: 0))
        if withLAN { try lab.addLAN() }
        try lab.inClient {
            let log = LogCapture()
            let loop = try EventLoop(logger: log.logger)
            var states: [(TunnelTracker.State, Double)] = []
            let watcher = TunnelWatcher(loop: loop, interface: "wg0") { states.append(($0, Date().timeIntervalSince1970)) }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { Self.address(states.last?.0) != nil })
            states.removeAll()
            // The recreate runs in a child process while this loop watches.
            let script = "\(lab.directory)/recreate"
            let routed = "\(lab.directory)/routed"
            try """
            set -e
            ip -4 rule delete table 51820
            ip -4 rule delete table main suppress_prefixlength 0
            ip link del wg0
            ip link add wg0 type veth peer name gw0 netns \(lab.gateway)
            ip -n \(lab.gateway) link set gw0 up
            ip -n \(lab.gateway) addr add 10.2.0.1 peer 10.2.0.2/32 dev gw0
            ip -4 address add 10.2.0.2/32 dev wg0
            ip link set mtu 1420 up dev wg0
            sleep 0.3
            ip -4 route add 0.0.0.0/0 dev wg0 table 51820
            date +%s.%N > \(routed)
            ip -4 rule add not fwmark 51820 table 51820
            ip -4 rule add table main suppress_prefixlength 0
            """.write(toFile: script, atomically: true, encoding: .utf8)
            let child = try ChildProcess(executable: "/bin/sh", arguments: [script], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"],
                                         outputPath: "\(lab.directory)/recreate.out")
            #expect(try runUntil(loop, seconds: 10) { Self.address(states.last?.0) != nil && child.wait(seconds: 0) != nil }, "\(child.output)")
            // wg-quick down deletes the rules before the link: the first report is a wait too.
            let gone = states.lastIndex { $0.0 == .unusable("wg0 does not exist") } ?? 0
            let waiting = states[gone...].filter { if case .awaitingRoute = $0.0 { true } else { false } }
            #expect(waiting.count == 1, "one report while waiting: \(states.map { "\($0.0) \($0.1)" })")
            #expect(log.count("waiting for a route to 10.2.0.1 via wg0") == 1, "\(log.text)")
            guard let usable = states.last, case .usable(let tunnel) = usable.0,
                  let text = try? String(contentsOfFile: routed, encoding: .utf8), let rule = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                Issue.record("not usable: \(states)")
                return
            }
            #expect(usable.1 >= rule, "usable only after the rule that makes the route is added")
            #expect(tunnel.gateway == IPv4Address(10, 2, 0, 1) && tunnel.gatewayRule == .lastByteOne)
        }
    }

    @Test func aGatewayNotAtDotOneIsFoundFromTheRoutes() throws {
        let lab = try NetworkLab(style: .openVPN)
        try lab.inClient {
            let loop = try EventLoop(logger: LogCapture().logger)
            var state: TunnelTracker.State?
            let watcher = TunnelWatcher(loop: loop, interface: "wg0") { state = $0 }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { Self.address(state) != nil })
            #expect(state == .usable(Tunnel(interface: "wg0", index: tunnelIndex(), address: IPv4Address(10, 96, 3, 37),
                                            gateway: IPv4Address(10, 96, 0, 1), gatewayRule: .route(table: 254))))
        }
    }

    /// The ProtonVPN app's kill switch interfaces exist, with a default route of their own,
    /// before proton0 comes: they are never taken for the tunnel.
    @Test func killSwitchDummiesAreNotTheTunnel() throws {
        let lab = try NetworkLab()
        // A veth pair stands in for the dummy type, which this kernel lacks: only the name, the
        // address and the routes matter here.
        try lab.ip("-n", lab.client, "link", "add", "pvpnksintrf0", "type", "veth", "peer", "name", "pvpnksintrf9")
        try lab.ip("-n", lab.client, "link", "set", "pvpnksintrf9", "up")
        try lab.ip("-n", lab.client, "addr", "add", "100.85.0.1/24", "dev", "pvpnksintrf0")
        try lab.ip("-n", lab.client, "link", "set", "pvpnksintrf0", "up")
        try lab.ip("-n", lab.client, "route", "add", "default", "via", "100.85.0.2", "dev", "pvpnksintrf0", "metric", "98")
        try lab.ip("-n", lab.client, "link", "set", "wg0", "name", "proton0")
        try lab.inClient {
            let loop = try EventLoop(logger: LogCapture().logger)
            var state: TunnelTracker.State?
            let watcher = TunnelWatcher(loop: loop, interface: "proton0") { state = $0 }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { Self.address(state) != nil }, "\(String(describing: state))")
            guard case .usable(let tunnel)? = state else { return }
            #expect(tunnel.address == IPv4Address(10, 2, 0, 2) && tunnel.gateway == IPv4Address(10, 2, 0, 1))
            #expect(tunnel.index == tunnelIndex(name: "proton0"))
        }
    }

    static let gatewayScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/natpmp_gateway.py").standardized.path

    /// wg-quick's tunnel before its routes, on a desktop whose main table sends everything to
    /// the LAN: the NAT-PMP socket kept on wg0 (IP_UNICAST_IF) reaches the real gateway; the
    /// same socket without it hands the request to the LAN's router.
    @Test func theNATPMPSocketNeverLeavesThroughTheLAN() throws {
        let lab = try NetworkLab(style: .wgQuick(routeDelay: 0))
        try lab.addLAN()
        try lab.ip("-n", lab.client, "-4", "rule", "delete", "table", "51820")
        let gateway = try NATPMPGateway(lab: lab, script: Self.gatewayScript)
        let router = try NATPMPGateway(lab: lab, script: Self.gatewayScript, namespace: lab.lan!, name: "lan-router")
        try lab.inClient {
            let index = Int32(if_nametoindex("wg0"))
            for interface in [index, 0] {
                let fd = try GatewaySocket.make(local: .v4(IPv4Address(10, 2, 0, 2)), gateway: .v4(IPv4Address(10, 2, 0, 1)), interface: interface)
                defer { fd.close() }
                _ = try fd.write(NATPMP.externalAddressRequest())
            }
        }
        #expect(waitFor(seconds: 5) { gateway.addressRequests.count == 1 && router.addressRequests.count == 1 },
                "pinned: the gateway; unpinned: the LAN (\(gateway.addressRequests.count), \(router.addressRequests.count))")
        #expect(gateway.addressRequests.first?["from"] as? String == "10.2.0.2")
    }

    @Test func lostEventsAreRecoveredByDumpingAgain() throws {
        let lab = try NetworkLab()
        try lab.inClient {
            let log = LogCapture()
            let loop = try EventLoop(logger: log.logger)
            var states: [TunnelTracker.State] = []
            let watcher = TunnelWatcher(loop: loop, interface: "wg0", receiveBufferSize: 2048) { states.append($0) }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { Self.address(states.last) == IPv4Address(10, 2, 0, 2) })
            // Far more address events than 2 KiB hold, while the loop does not read: ENOBUFS.
            let batch = (1...150).map { "addr add 10.3.\($0 / 200).\($0 % 200 + 1)/32 dev wg0" }.joined(separator: "\n") + "\n"
            let file = "\(lab.directory)/batch"
            try batch.write(toFile: file, atomically: true, encoding: .utf8)
            try lab.ip("-n", lab.client, "-batch", file)
            try lab.setTunnel(up: false)
            #expect(try runUntil(loop, seconds: 5) { watcher.resyncs >= 1 && states.last == .unusable("wg0 is down") }, "\(watcher.resyncs) \(states) \(log.text.suffix(1500))")
            #expect(log.count("netlink events were lost (ENOBUFS); reading the state of wg0 again") >= 1)
        }
    }

    func tunnelIndex(name: String = "wg0") -> Int32 {
        Int32(if_nametoindex(name))
    }
}
