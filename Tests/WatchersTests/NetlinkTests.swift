import CLinux
import Glibc
import Reactor
import Testing
@testable import Watchers

@Suite struct NetlinkTests {
    /// A message with `nlmsghdr`, a body and attributes, as the kernel lays it out.
    static func message(type: Int32, flags: UInt16 = 0, sequence: UInt32 = 0, body: [UInt8], attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var payload = body
        for (kind, value) in attributes {
            let length = UInt16(4 + value.count)
            payload += NATPMP.bigEndian(length).reversed() + NATPMP.bigEndian(kind).reversed() + value
            while payload.count % 4 != 0 { payload.append(0) }
        }
        let total = UInt32(16 + payload.count)
        return NATPMP.bigEndian(total).reversed() + NATPMP.bigEndian(UInt16(type)).reversed() + NATPMP.bigEndian(flags).reversed()
            + NATPMP.bigEndian(sequence).reversed() + [0, 0, 0, 0] + payload
    }

    static func link(_ index: Int32, _ name: String, flags: UInt32, removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [0, 0, 0, 0] + NATPMP.bigEndian(UInt32(bitPattern: index)).reversed() + NATPMP.bigEndian(flags).reversed() + [0, 0, 0, 0]
        return message(type: removed ? Int32(RTM_DELLINK) : Int32(RTM_NEWLINK), body: body,
                       attributes: [(UInt16(IFLA_MTU), [0x1c, 0x05, 0, 0]), (UInt16(IFLA_IFNAME), Array(name.utf8) + [0])])
    }

    static func address(_ index: Int32, local: [UInt8]?, peer: [UInt8], removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [UInt8(AF_INET), 32, 0, 0] + NATPMP.bigEndian(UInt32(bitPattern: index)).reversed()
        var attributes: [(UInt16, [UInt8])] = [(UInt16(IFA_ADDRESS), peer)]
        if let local { attributes.append((UInt16(IFA_LOCAL), local)) }
        return message(type: removed ? Int32(RTM_DELADDR) : Int32(RTM_NEWADDR), body: body, attributes: attributes)
    }

    /// An IPv4 unicast route (`rtmsg` + RTA_TABLE, RTA_DST, RTA_GATEWAY, RTA_OIF), as the
    /// kernel reports `ip route add DST/LEN [via GW] dev IF table T`.
    static func route(_ destination: [UInt8], _ length: UInt8, via gateway: [UInt8]? = nil, interface: Int32, table: UInt32 = 254,
                      type: UInt8 = UInt8(RTN_UNICAST), removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [UInt8(AF_INET), length, 0, 0, UInt8(min(table, 252)), 3, 0, type, 0, 0, 0, 0]
        var attributes: [(UInt16, [UInt8])] = [(UInt16(RTA_TABLE.rawValue), NATPMP.bigEndian(table).reversed())]
        if length > 0 { attributes.append((UInt16(RTA_DST.rawValue), destination)) }
        if let gateway { attributes.append((UInt16(RTA_GATEWAY.rawValue), gateway)) }
        attributes.append((UInt16(RTA_OIF.rawValue), NATPMP.bigEndian(UInt32(bitPattern: interface)).reversed()))
        return message(type: removed ? Int32(RTM_DELROUTE) : Int32(RTM_NEWROUTE), body: body, attributes: attributes)
    }

    static let upRunning = UInt32(IFF_UP) | UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP
    static let wireguard = UInt32(IFF_UP) | UInt32(IFF_POINTOPOINT) | UInt32(IFF_NOARP) | CLINUX_IFF_LOWER_UP

    @Test func linksAndAddressesDecodeAndLocalBeatsThePeer() {
        let bytes = Self.link(7, "wg0", flags: Self.wireguard) + Self.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1])
            + Self.message(type: Int32(NLMSG_DONE), sequence: 2, body: [0, 0, 0, 0], attributes: [])
        #expect(NetlinkMessage.parse(bytes) == [
            .link(index: 7, name: "wg0", flags: Self.wireguard, removed: false),
            .address(index: 7, address: IPv4Address(10, 2, 0, 2), peer: IPv4Address(10, 2, 0, 1), removed: false),
            .done(sequence: 2, interrupted: false),
        ])
        #expect(NetlinkMessage.parse(Self.address(7, local: nil, peer: [192, 168, 1, 5]))
            == [.address(index: 7, address: IPv4Address(192, 168, 1, 5), peer: nil, removed: false)])
    }

    @Test func truncatedAndForeignBytesAreDroppedNotGuessed() {
        let whole = Self.link(7, "wg0", flags: Self.upRunning)
        #expect(NetlinkMessage.parse(Array(whole.dropLast(3))).isEmpty)
        #expect(NetlinkMessage.parse([1, 2, 3]).isEmpty)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            _ = NetlinkMessage.parse((0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
    }

    @Test func routesFromEveryTableDecodeAndRulesAreNoticed() {
        let bytes = Self.route([0, 0, 0, 0], 0, interface: 7, table: 51820)
            + Self.route([0, 0, 0, 0], 1, via: [10, 96, 0, 1], interface: 8)
            + Self.route([10, 2, 0, 2], 32, interface: 7, table: 255, type: UInt8(RTN_LOCAL))
            + Self.message(type: Int32(RTM_NEWRULE), body: [UInt8(AF_INET)] + [UInt8](repeating: 0, count: 11), attributes: [])
        #expect(NetlinkMessage.parse(bytes) == [
            .route(NetlinkRoute(table: 51820, outputInterface: 7), removed: false),
            .route(NetlinkRoute(prefixLength: 1, gateway: IPv4Address(10, 96, 0, 1), outputInterface: 8), removed: false),
            .ruleChanged,
        ], "a local route is no way out; a table above 255 comes from RTA_TABLE")
    }

    @Test func aRouteLookupIsAskedAndAnsweredAsTheKernelDoes() {
        let request = NetlinkMessage.routeLookup(to: IPv4Address(10, 2, 0, 1), from: IPv4Address(10, 2, 0, 2), sequence: 9)
        #expect(request.count == 16 + 12 + 8 + 8)
        #expect(request[4] == UInt8(RTM_GETROUTE) && UInt16(request[6]) | UInt16(request[7]) << 8 == UInt16(NLM_F_REQUEST))
        #expect(Array(request[16...17]) == [UInt8(AF_INET), 32])
        #expect(Array(request[28...35]) == [8, 0, UInt8(RTA_DST.rawValue), 0, 10, 2, 0, 1])
        #expect(Array(request[36...43]) == [8, 0, UInt8(RTA_SRC.rawValue), 0, 10, 2, 0, 2])

        var answer = Self.route([10, 2, 0, 1], 32, interface: 7)
        answer[8] = 9
        #expect(NetlinkMessage.routeAnswer(answer, sequence: 9) == .through(7))
        #expect(NetlinkMessage.routeAnswer(answer, sequence: 10) == nil, "an answer to another question")
        let unreachable = Self.message(type: Int32(NLMSG_ERROR), sequence: 9,
                                       body: NATPMP.bigEndian(UInt32(bitPattern: -ENETUNREACH)).reversed() + [UInt8](repeating: 0, count: 16),
                                       attributes: [])
        #expect(NetlinkMessage.routeAnswer(unreachable, sequence: 9) == .none("Network is unreachable"))
    }

    @Test func dumpRequestsAreWellFormed() {
        let request = NetlinkMessage.dumpRequest(type: UInt16(RTM_GETADDR), sequence: 2)
        #expect(request.count == 24)
        #expect(request[4] == UInt8(RTM_GETADDR) && request[16] == UInt8(AF_INET))
        #expect(UInt16(request[6]) | UInt16(request[7]) << 8 == UInt16(NLM_F_REQUEST | NLM_F_DUMP))
    }
}

/// The tunnel tracker fed with the messages that real tools produce, in their order.
@Suite struct TunnelTrackerTests {
    typealias N = NetlinkTests
    let local = IPv4Address(10, 2, 0, 2)
    let gateway = IPv4Address(10, 2, 0, 1)

    func feed(_ tracker: inout TunnelTracker, _ bytes: [UInt8]) {
        NetlinkMessage.parse(bytes).forEach { tracker.apply($0) }
    }

    /// Answers the tracker's pending lookup as the kernel would, given where the route leads.
    func lookUp(_ tracker: inout TunnelTracker, through index: Int32?) {
        guard let query = tracker.pendingLookup else { return }
        tracker.routeLookedUp(query, index.map { .through($0) } ?? .none("Network is unreachable"))
    }

    func tunnel(_ index: Int32 = 7, gateway: IPv4Address? = nil, rule: GatewayRule = .lastByteOne) -> Tunnel {
        Tunnel(interface: "wg0", index: index, address: local, gateway: gateway ?? self.gateway, gatewayRule: rule)
    }

    @Test func aWireGuardLinkIsUsableWithLowerUpAnAddressAndARouteThroughIt() {
        var tracker = TunnelTracker(interface: "wg0")
        #expect(tracker.state == .unusable("wg0 does not exist"))
        feed(&tracker, N.link(3, "eth0", flags: N.upRunning) + N.link(7, "wg0", flags: N.wireguard))
        #expect(tracker.state == .unusable("wg0 has no IPv4 address"))
        #expect(tracker.pendingLookup == nil)
        feed(&tracker, N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
        #expect(tracker.pendingLookup == TunnelTracker.RouteQuery(source: local, destination: gateway))
        #expect(tracker.state == .awaitingRoute(tunnel()))
        lookUp(&tracker, through: 7)
        #expect(tracker.state == .usable(tunnel()))
        #expect(tracker.pendingLookup == nil, "asked once until something changes")
    }

    /// wg-quick's `cmd_up` with `Address = 10.2.0.2/32` and `AllowedIPs = 0.0.0.0/0`: the link
    /// and its /32 address come first, the default route in table 51820 and the policy rules
    /// after; meanwhile the kernel's answer is "unreachable", or the LAN (eth0, index 3).
    @Test func wgQuickOrderWaitsForTheRouteAndTheRules() {
        var tracker = TunnelTracker(interface: "wg0")
        feed(&tracker, N.link(3, "eth0", flags: N.upRunning) + N.route([0, 0, 0, 0], 0, via: [192, 168, 1, 1], interface: 3))
        feed(&tracker, N.link(7, "wg0", flags: UInt32(IFF_POINTOPOINT) | UInt32(IFF_NOARP)))  // ip link add
        feed(&tracker, N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))              // ip -4 address add 10.2.0.2/32
        #expect(tracker.state == .unusable("wg0 is down"))
        feed(&tracker, N.link(7, "wg0", flags: N.wireguard))                                  // ip link set mtu 1420 up
        lookUp(&tracker, through: 3)
        #expect(tracker.state == .awaitingRoute(tunnel()), "the LAN's default route is no way to the gateway")
        feed(&tracker, N.route([0, 0, 0, 0], 0, interface: 7, table: 51820))                 // ip -4 route add 0.0.0.0/0 dev wg0 table 51820
        lookUp(&tracker, through: 3)
        #expect(tracker.state == .awaitingRoute(tunnel()), "no rule sends traffic to table 51820 yet")
        feed(&tracker, N.message(type: Int32(RTM_NEWRULE), body: [UInt8(AF_INET)] + [UInt8](repeating: 0, count: 11), attributes: []))
        #expect(tracker.pendingLookup != nil, "a new rule means asking again")
        lookUp(&tracker, through: 7)
        #expect(tracker.state == .usable(tunnel()), "the route to the gateway has no gateway of its own: last byte 1")
    }

    @Test func theGatewayIsFoundRatherThanGuessed() {
        // OpenVPN (ProtonVPN seen with 10.96.0.1): routes through tun0 name the gateway.
        var openVPN = TunnelTracker(interface: "wg0")
        feed(&openVPN, N.link(7, "wg0", flags: N.wireguard) + N.address(7, local: [10, 96, 0, 37], peer: [10, 96, 0, 37])
            + N.route([10, 96, 0, 0], 16, interface: 7) + N.route([128, 0, 0, 0], 1, via: [10, 96, 0, 1], interface: 7)
            + N.route([0, 0, 0, 0], 1, via: [10, 96, 0, 1], interface: 7) + N.route([0, 0, 0, 0], 0, via: [192, 168, 1, 1], interface: 3))
        lookUp(&openVPN, through: 7)
        guard case .usable(let routed) = openVPN.state else {
            Issue.record("\(openVPN.state)")
            return
        }
        #expect(routed.gateway == IPv4Address(10, 96, 0, 1))
        #expect(routed.gatewayRule == .route(table: 254))
        #expect("\(routed.gatewayRule)" == "the gateway of a route through the tunnel, table main")

        // A point-to-point link: the peer address.
        var pointToPoint = TunnelTracker(interface: "wg0")
        feed(&pointToPoint, N.link(7, "wg0", flags: N.wireguard) + N.address(7, local: [10, 8, 0, 6], peer: [10, 8, 0, 5]))
        lookUp(&pointToPoint, through: 7)
        #expect(pointToPoint.state == .usable(Tunnel(interface: "wg0", index: 7, address: IPv4Address(10, 8, 0, 6),
                                                     gateway: IPv4Address(10, 8, 0, 5), gatewayRule: .peer)))

        // Configured wins over everything.
        var configured = TunnelTracker(interface: "wg0", gateway: IPv4Address(10, 2, 0, 9))
        feed(&configured, N.link(7, "wg0", flags: N.wireguard) + N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1])
            + N.route([0, 0, 0, 0], 0, via: [10, 2, 0, 5], interface: 7))
        #expect(configured.pendingLookup?.destination == IPv4Address(10, 2, 0, 9))
        lookUp(&configured, through: 7)
        #expect(configured.state == .usable(tunnel(gateway: IPv4Address(10, 2, 0, 9), rule: .configured)))
    }

    /// The ProtonVPN app's kill switch: dummy interfaces with addresses and default routes
    /// (with gateways) of their own, before and while proton0 exists.
    @Test func killSwitchDummiesAreNeverTheTunnel() {
        var tracker = TunnelTracker(interface: "proton0")
        feed(&tracker, N.link(4, "pvpnksintrf0", flags: N.upRunning) + N.address(4, local: [100, 85, 0, 1], peer: [100, 85, 0, 1])
            + N.route([0, 0, 0, 0], 0, via: [100, 85, 0, 2], interface: 4)
            + N.link(5, "pvpnroutintrf0", flags: N.upRunning) + N.address(5, local: [100, 85, 1, 1], peer: [100, 85, 1, 1])
            + N.route([0, 0, 0, 0], 1, via: [100, 85, 1, 2], interface: 5))
        #expect(tracker.state == .unusable("proton0 does not exist"))
        #expect(tracker.pendingLookup == nil, "nothing is asked about a dummy")
        feed(&tracker, N.link(9, "proton0", flags: N.wireguard) + N.address(9, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
        lookUp(&tracker, through: 4)
        #expect(tracker.state == .awaitingRoute(Tunnel(interface: "proton0", index: 9, address: local, gateway: gateway, gatewayRule: .lastByteOne)),
                "the kill switch's route is no way to the gateway, and its gateway is not ours")
        feed(&tracker, N.route([0, 0, 0, 0], 0, interface: 9, table: 51820))
        lookUp(&tracker, through: 9)
        #expect(tracker.state == .usable(Tunnel(interface: "proton0", index: 9, address: local, gateway: gateway, gatewayRule: .lastByteOne)))
    }

    @Test func downAndNoCarrierAreUnusableButKeepTheAddress() {
        var tracker = TunnelTracker(interface: "wg0")
        feed(&tracker, N.link(7, "wg0", flags: N.upRunning) + N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1]))
        feed(&tracker, N.link(7, "wg0", flags: 0))
        #expect(tracker.state == .unusable("wg0 is down"))
        feed(&tracker, N.link(7, "wg0", flags: UInt32(IFF_UP)))
        #expect(tracker.state == .unusable("wg0 has no carrier (not running)"))
        feed(&tracker, N.link(7, "wg0", flags: N.upRunning))
        lookUp(&tracker, through: 7)
        #expect(tracker.state == .usable(tunnel(rule: .peer)), "link down does not remove the address")
    }

    /// IPv4 drops the routes of an interface that goes down or away without an RTM_DELROUTE.
    @Test func routesOfAVanishedInterfaceAreForgotten() {
        var tracker = TunnelTracker(interface: "wg0")
        feed(&tracker, N.link(7, "wg0", flags: N.wireguard) + N.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 2])
            + N.route([0, 0, 0, 0], 1, via: [10, 2, 0, 7], interface: 7))
        lookUp(&tracker, through: 7)
        #expect(tracker.state == .usable(tunnel(gateway: IPv4Address(10, 2, 0, 7), rule: .route(table: 254))))
        feed(&tracker, N.link(7, "wg0", flags: N.wireguard, removed: true))
        feed(&tracker, N.link(8, "wg0", flags: N.wireguard) + N.address(8, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
        lookUp(&tracker, through: 8)
        #expect(tracker.state == .usable(tunnel(8)), "the old route's gateway is gone with it")
    }

    @Test func aRecreatedInterfaceIsFollowedByName() {
        var tracker = TunnelTracker(interface: "proton0")
        feed(&tracker, N.link(9, "proton0", flags: N.wireguard) + N.address(9, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
        feed(&tracker, N.link(9, "proton0", flags: N.wireguard, removed: true))
        #expect(tracker.state == .unusable("proton0 does not exist"))
        feed(&tracker, N.link(12, "proton0", flags: N.wireguard) + N.address(12, local: [10, 2, 0, 3], peer: [10, 2, 0, 3]))
        lookUp(&tracker, through: 12)
        #expect(tracker.state == .usable(Tunnel(interface: "proton0", index: 12, address: IPv4Address(10, 2, 0, 3),
                                                gateway: gateway, gatewayRule: .lastByteOne)))
    }
}
