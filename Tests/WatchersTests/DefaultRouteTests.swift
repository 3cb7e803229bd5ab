import CLinux
import Domain
import Reactor
import Testing
@testable import Watchers

/// The tracker's `.defaultRoute` target: the router is the gateway of the way the kernel sends
/// a packet to the internet, checked as a tunnel's gateway is; a tunnel's own default route (no
/// gateway, or a point-to-point link) is no router.
@Suite struct DefaultRouteTrackerTests {
    typealias N = NetlinkTests
    let lan = IPv4Address(192, 168, 1, 20)
    let router = IPv4Address(192, 168, 1, 1)

    func feed(_ tracker: inout TunnelTracker, _ bytes: [UInt8]) {
        NetlinkMessage.parse(bytes).forEach { tracker.apply($0) }
    }

    /// The lab's LAN: eth0 (3) up with 192.168.1.20/24 and the main table's default route.
    func lanTracker() -> TunnelTracker {
        var tracker = TunnelTracker(defaultRouteWith: nil)
        feed(&tracker, N.link(3, "eth0", flags: N.upRunning) + N.address(3, local: [192, 168, 1, 20], peer: [192, 168, 1, 20])
            + N.route([0, 0, 0, 0], 0, via: [192, 168, 1, 1], interface: 3))
        return tracker
    }

    @Test func theWayOutIsAskedFirstThenTheWayToItsGateway() {
        var tracker = lanTracker()
        #expect(tracker.state == .unusable("the way to the internet is not known yet"))
        #expect(tracker.pendingLookup == TunnelTracker.RouteQuery(source: nil, destination: TunnelTracker.internetProbe))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3, gateway: router, source: lan))
        let expected = Tunnel(interface: "eth0", index: 3, address: lan, gateway: router, gatewayRule: .defaultRoute)
        #expect(tracker.state == .awaitingRoute(expected))
        #expect(tracker.pendingLookup == TunnelTracker.RouteQuery(source: lan, destination: router))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3, source: lan))
        #expect(tracker.state == .usable(expected))
        #expect(tracker.pendingLookup == nil)
        #expect(tracker.exists == false, "it follows no interface by name")
    }

    @Test func aNewDefaultRouteIsAnotherRouter() {
        var tracker = lanTracker()
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3, gateway: router, source: lan))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3))
        feed(&tracker, N.link(4, "wlan0", flags: N.upRunning) + N.address(4, local: [10, 0, 0, 7], peer: [10, 0, 0, 7])
            + N.route([0, 0, 0, 0], 0, via: [10, 0, 0, 1], interface: 4))
        #expect(tracker.pendingLookup?.source == nil, "any change: the way out is asked again")
        tracker.routeLookedUp(tracker.pendingLookup!, .through(4, gateway: IPv4Address(10, 0, 0, 1)))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(4))
        #expect(tracker.state == .usable(Tunnel(interface: "wlan0", index: 4, address: IPv4Address(10, 0, 0, 7), gateway: IPv4Address(10, 0, 0, 1),
                                                gatewayRule: .defaultRoute)), "no preferred source: the interface's address")
    }

    /// wg-quick's `default dev wg0 table 51820` and OpenVPN's 0.0.0.0/1 via a tun: the way out is a
    /// tunnel, and a kill switch's dummy has no gateway: none of them is a router to ask.
    @Test func aTunnelsWayOutIsNoRouter() {
        var wgQuick = lanTracker()
        feed(&wgQuick, N.link(7, "wg1", flags: N.wireguard) + N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
        wgQuick.routeLookedUp(wgQuick.pendingLookup!, .through(7, source: IPv4Address(10, 2, 0, 2)))
        #expect(wgQuick.state == .unusable("the default route leads into wg1, a point-to-point link (a tunnel), not to a router"))
        #expect(wgQuick.pendingLookup == nil, "nothing more to ask, nothing to send")
        var dummy = lanTracker()
        feed(&dummy, N.link(9, "pvpnksintrf0", flags: N.upRunning))
        dummy.routeLookedUp(dummy.pendingLookup!, .through(9))
        #expect(dummy.state == .unusable("the default route through pvpnksintrf0 names no gateway (a tunnel's or a kill switch's way), so there is no router to ask"))
        var none = lanTracker()
        none.routeLookedUp(none.pendingLookup!, .none("Network is unreachable"))
        #expect(none.state == .unusable("no route to the internet (no route: Network is unreachable)"))
    }

    @Test func aConfiguredGatewayIsAskedOnTheDefaultRoutesInterface() {
        var tracker = TunnelTracker(defaultRouteWith: IPv4Address(192, 168, 1, 254))
        feed(&tracker, N.link(3, "eth0", flags: N.upRunning) + N.address(3, local: [192, 168, 1, 20], peer: [192, 168, 1, 20]))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3, gateway: router, source: lan))
        #expect(tracker.pendingLookup == TunnelTracker.RouteQuery(source: lan, destination: IPv4Address(192, 168, 1, 254)))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(3))
        guard case .usable(let tunnel) = tracker.state else {
            Issue.record("\(tracker.state)")
            return
        }
        #expect(tunnel.gateway == IPv4Address(192, 168, 1, 254) && tunnel.gatewayRule == .configured)
    }

    @Test func theKernelsAnswerNamesTheGatewayAndTheSource() {
        let request = NetlinkMessage.routeLookup(to: TunnelTracker.internetProbe, from: nil, sequence: 4)
        #expect(request.count == 16 + 12 + 8, "no RTA_SRC")
        #expect(Array(request[16...18]) == [UInt8(AF_INET), 32, 0])
        let answer = N.message(type: Int32(RTM_NEWROUTE), sequence: 4,
                               body: [UInt8(AF_INET), 32, 0, 0, 254, 0, 0, UInt8(RTN_UNICAST), 0, 0, 0, 0],
                               attributes: [(UInt16(RTA_DST.rawValue), [192, 0, 2, 1]), (UInt16(RTA_OIF.rawValue), [3, 0, 0, 0]),
                                            (UInt16(RTA_GATEWAY.rawValue), [192, 168, 1, 1]), (UInt16(RTA_PREFSRC.rawValue), [192, 168, 1, 20])])
        #expect(NetlinkMessage.routeAnswer(answer, sequence: 4) == .through(3, gateway: router, source: lan))
    }
}

/// `auto`'s gate before the router: shut while the tunnel or the ProtonVPN file is there, and
/// for the grace after the tunnel went away.
@Suite struct RouterGateTests {
    static let start = Instant(nanoseconds: 5_000_000_000_000)
    let settings = RouterGate.Settings(tunnel: "wg0", portFile: "/run/user/1000/Proton/VPN/forwarded_port", grace: .seconds(60))

    @Test func shutUntilTheFirstLookThenOpenWithNoTunnel() {
        var gate = RouterGate(settings: settings)
        #expect(gate.verdict == .unknown && !gate.verdict.isOpen)
        #expect(gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: Self.start) == [.changed(.open)])
        #expect(gate.nextDeadline == nil)
        #expect(gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: Self.start).isEmpty, "said once")
    }

    @Test func theTunnelShutsItAndItsLeavingWaitsTheGrace() {
        var gate = RouterGate(settings: settings)
        _ = gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: Self.start)
        #expect(gate.handle(.looked(tunnelPresent: true, portFileExists: false), now: Self.start) == [.changed(.tunnelPresent("wg0"))])
        let left = Self.start + .seconds(10)
        #expect(gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: left)
            == [.changed(.tunnelLeft("wg0", until: left + .seconds(60)))])
        #expect(gate.nextDeadline == left + .seconds(60))
        #expect(gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: left + .seconds(30)).isEmpty, "still within the grace")
        #expect(gate.handle(.deadlineReached, now: left + .seconds(59)).isEmpty)
        #expect(gate.handle(.deadlineReached, now: left + .seconds(60)) == [.changed(.open)])
        #expect(gate.nextDeadline == nil)
    }

    @Test func aReconnectWithinTheGraceNeverOpensIt() {
        var gate = RouterGate(settings: settings)
        _ = gate.handle(.looked(tunnelPresent: true, portFileExists: false), now: Self.start)
        _ = gate.handle(.looked(tunnelPresent: false, portFileExists: false), now: Self.start + .seconds(1))
        #expect(gate.handle(.looked(tunnelPresent: true, portFileExists: false), now: Self.start + .seconds(3)) == [.changed(.tunnelPresent("wg0"))])
        #expect(gate.handle(.deadlineReached, now: Self.start + .seconds(61)).isEmpty)
        #expect(gate.verdict == .tunnelPresent("wg0"))
    }

    @Test func theProtonFileKeepsItShut() {
        var gate = RouterGate(settings: settings)
        #expect(gate.handle(.looked(tunnelPresent: false, portFileExists: true), now: Self.start)
            == [.changed(.portFilePresent("/run/user/1000/Proton/VPN/forwarded_port"))])
        var noFile = RouterGate(settings: RouterGate.Settings(tunnel: "wg0", portFile: nil))
        #expect(noFile.handle(.looked(tunnelPresent: false, portFileExists: true), now: Self.start) == [.changed(.open)])
    }
}
