import CLinux
import Domain
import Reactor
import Testing
@testable import Watchers

/// The tunnel's IPv6 way to its gateway (`TunnelTracker.ipv6`), from the IPv6 addresses and
/// routes rtnetlink reports as the kernel lays them out.
@Suite struct IPv6PathTests {
    typealias N = NetlinkTests
    static let global = IPv6Address("fd00:2::2")!
    static let router = IPv6Address("fe80::1")!

    /// `ip -6 addr add ADDRESS/64 dev #index` (RTM_NEWADDR, AF_INET6, with IFA_FLAGS).
    static func address6(_ index: Int32, _ address: IPv6Address, scope: UInt8 = UInt8(RT_SCOPE_UNIVERSE.rawValue), flags: UInt32 = 0,
                         removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [UInt8(AF_INET6), 64, UInt8(truncatingIfNeeded: flags), scope] + NATPMP.bigEndian(UInt32(bitPattern: index)).reversed()
        return N.message(type: removed ? Int32(RTM_DELADDR) : Int32(RTM_NEWADDR), body: body,
                         attributes: [(UInt16(IFA_ADDRESS), address.octets), (UInt16(IFA_FLAGS), NATPMP.bigEndian(flags).reversed())])
    }

    /// `ip -6 route add default via GATEWAY dev #index` (RTM_NEWROUTE, AF_INET6).
    static func route6(via gateway: IPv6Address?, interface: Int32, length: UInt8 = 0, table: UInt32 = 254) -> [UInt8] {
        let body: [UInt8] = [UInt8(AF_INET6), length, 0, 0, UInt8(min(table, 252)), 3, 0, UInt8(RTN_UNICAST), 0, 0, 0, 0]
        var attributes: [(UInt16, [UInt8])] = [(UInt16(RTA_TABLE.rawValue), NATPMP.bigEndian(table).reversed())]
        if let gateway { attributes.append((UInt16(RTA_GATEWAY.rawValue), gateway.octets)) }
        attributes.append((UInt16(RTA_OIF.rawValue), NATPMP.bigEndian(UInt32(bitPattern: interface)).reversed()))
        attributes.append((UInt16(RTA_PRIORITY.rawValue), NATPMP.bigEndian(UInt32(1024)).reversed()))
        return N.message(type: Int32(RTM_NEWROUTE), body: body, attributes: attributes)
    }

    func feed(_ tracker: inout TunnelTracker, _ bytes: [UInt8]) {
        NetlinkMessage.parse(bytes).forEach { tracker.apply($0) }
    }

    /// wg0 (7) usable over IPv4, as the lab's point-to-point tunnel.
    func usableTunnel() -> TunnelTracker {
        var tracker = TunnelTracker(interface: "wg0")
        feed(&tracker, N.link(7, "wg0", flags: N.upRunning) + N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1]))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(7))
        return tracker
    }

    @Test func ipv6AddressesAndRoutesParse() {
        #expect(NetlinkMessage.parse(Self.address6(7, Self.global, flags: UInt32(IFA_F_TENTATIVE)))
            == [.address6(index: 7, address: Self.global, peer: nil, scope: 0, flags: UInt32(IFA_F_TENTATIVE), removed: false)])
        #expect(NetlinkMessage.parse(Self.route6(via: Self.router, interface: 7))
            == [.route6(NetlinkRoute6(gateway: Self.router, outputInterface: 7, metric: 1024), removed: false)])
        #expect(NetlinkMessage.parse(N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1])).count == 1, "IPv4 still parses alone")
        let dump = NetlinkMessage.dumpRequest(type: UInt16(RTM_GETADDR), sequence: 2, ipv6: true)
        #expect(dump[16] == UInt8(AF_UNSPEC), "every family")
    }

    @Test func theRoutersLinkLocalAddressIsTheGatewayOfAGlobalAddress() {
        var tracker = usableTunnel()
        #expect(tracker.ipv6 == nil, "no IPv6 address yet")
        feed(&tracker, Self.address6(7, IPv6Address("fe80::2")!, scope: UInt8(RT_SCOPE_LINK.rawValue)))
        feed(&tracker, Self.address6(7, Self.global, flags: UInt32(IFA_F_TENTATIVE)))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(7))
        #expect(tracker.ipv6 == nil, "a link-local address is no address for peers, a tentative one cannot be bound")
        feed(&tracker, Self.address6(7, Self.global))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(7))
        #expect(tracker.ipv6 == nil, "no gateway is guessed")
        feed(&tracker, Self.route6(via: nil, interface: 7, length: 64) + Self.route6(via: Self.router, interface: 7))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(7))
        #expect(tracker.ipv6 == GatewayPath(interface: "wg0", index: 7, local: .v6(Self.global), gateway: .v6(Self.router), gatewayRule: .route(table: 254)))
        #expect(tracker.ipv6?.gatewayText == "fe80::1%wg0")
    }

    @Test func aStableAddressIsPreferredAndTheWayGoesWithTheTunnel() {
        var tracker = usableTunnel()
        let temporary = IPv6Address("fd00:2::1234")!
        feed(&tracker, Self.address6(7, temporary, flags: UInt32(IFA_F_TEMPORARY)) + Self.address6(7, Self.global)
            + Self.route6(via: Self.router, interface: 7) + Self.route6(via: IPv6Address("fe80::99")!, interface: 3))
        tracker.routeLookedUp(tracker.pendingLookup!, .through(7))
        #expect(tracker.ipv6?.local == .v6(Self.global))
        #expect(tracker.ipv6?.gateway == .v6(Self.router), "another interface's router is not the tunnel's")
        feed(&tracker, N.link(7, "wg0", flags: 0))
        #expect(tracker.ipv6 == nil, "no IPv6 way while the tunnel is not usable")
    }
}
