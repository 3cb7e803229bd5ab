import CLinux
import Glibc
import Reactor

/// The rtnetlink messages the link watcher cares about, decoded from the bytes of one
/// datagram (several messages, 4-byte aligned, each with its attributes).
public enum NetlinkMessage: Equatable, Sendable {
    case link(index: Int32, name: String, flags: UInt32, removed: Bool)
    /// An IPv4 address (IFA_LOCAL, else IFA_ADDRESS) and, on a point-to-point link, the peer's
    /// (IFA_ADDRESS when it differs from IFA_LOCAL).
    case address(index: Int32, address: IPv4Address, peer: IPv4Address?, removed: Bool)
    /// An IPv4 unicast route, from any table.
    case route(NetlinkRoute, removed: Bool)
    /// An IPv6 address (IFA_LOCAL, else IFA_ADDRESS; the peer's on a point-to-point link), its
    /// scope (RT_SCOPE_UNIVERSE for a global or unique local one, RT_SCOPE_LINK for fe80::) and
    /// its flags (IFA_FLAGS, else the header's: tentative, deprecated, temporary, …). Only a
    /// watcher that follows IPv6 asks for these.
    case address6(index: Int32, address: IPv6Address, peer: IPv6Address?, scope: UInt8, flags: UInt32, removed: Bool)
    /// An IPv6 unicast route, from any table.
    case route6(NetlinkRoute6, removed: Bool)
    /// A policy routing rule was added or removed: which way a packet goes may have changed.
    case ruleChanged
    case done(sequence: UInt32, interrupted: Bool)
    /// NLMSG_ERROR: 0 is an acknowledgement.
    case error(Int32)
    case overrun

    public static func parse(_ bytes: [UInt8]) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        for message in Netlink.messages(in: bytes) {
            let type = Int32(message.type)
            let body = message.body
            let interrupted = message.flags & UInt16(NLM_F_DUMP_INTR) != 0
            switch type {
            case Int32(NLMSG_DONE):
                messages.append(.done(sequence: message.sequence, interrupted: interrupted))
            case Int32(NLMSG_ERROR):
                if body.count >= 4 { messages.append(.error(Int32(bitPattern: u32(body, 0)))) }
            case Int32(NLMSG_OVERRUN):
                messages.append(.overrun)
            case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
                if let link = parseLink(body, removed: type == Int32(RTM_DELLINK)) { messages.append(link) }
            case Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
                let removed = type == Int32(RTM_DELADDR)
                if let address = parseAddress(body, removed: removed) ?? parseAddress6(body, removed: removed) { messages.append(address) }
            case Int32(RTM_NEWROUTE), Int32(RTM_DELROUTE):
                let removed = type == Int32(RTM_DELROUTE)
                if let route = NetlinkRoute(body) { messages.append(.route(route, removed: removed)) }
                if let route = NetlinkRoute6(body) { messages.append(.route6(route, removed: removed)) }
            case Int32(RTM_NEWRULE), Int32(RTM_DELRULE):
                messages.append(.ruleChanged)
            default:
                break
            }
            if interrupted && type != Int32(NLMSG_DONE) { messages.append(.done(sequence: message.sequence, interrupted: true)) }
        }
        return messages
    }

    /// `ifinfomsg` (16 bytes: family, pad, type, index, flags, change), then attributes.
    static func parseLink(_ body: [UInt8], removed: Bool) -> NetlinkMessage? {
        guard body.count >= 16 else { return nil }
        let index = Int32(bitPattern: u32(body, 4))
        let flags = u32(body, 8)
        var name: String?
        forEachAttribute(body, from: 16) { type, value in
            if type == UInt16(IFLA_IFNAME) { name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard let name else { return nil }
        return .link(index: index, name: name, flags: flags, removed: removed)
    }

    /// `ifaddrmsg` (8 bytes: family, prefix length, flags, scope, index), then attributes.
    static func parseAddress(_ body: [UInt8], removed: Bool) -> NetlinkMessage? {
        guard body.count >= 8, Int32(body[0]) == AF_INET else { return nil }
        let index = Int32(bitPattern: u32(body, 4))
        var local: IPv4Address?
        var address: IPv4Address?
        forEachAttribute(body, from: 8) { type, value in
            guard value.count == 4 else { return }
            let decoded = IPv4Address(value[0], value[1], value[2], value[3])
            if type == UInt16(IFA_LOCAL) { local = decoded }
            if type == UInt16(IFA_ADDRESS) { address = decoded }
        }
        guard let own = local ?? address else { return nil }
        let peer = local != nil && address != nil && address != local ? address : nil
        return .address(index: index, address: own, peer: peer, removed: removed)
    }

    /// The IPv6 `ifaddrmsg` (family AF_INET6, prefix length, flags, scope, index), then
    /// attributes.
    static func parseAddress6(_ body: [UInt8], removed: Bool) -> NetlinkMessage? {
        guard body.count >= 8, Int32(body[0]) == AF_INET6 else { return nil }
        let index = Int32(bitPattern: u32(body, 4))
        var local: IPv6Address?
        var address: IPv6Address?
        var flags = UInt32(body[2])
        forEachAttribute(body, from: 8) { type, value in
            switch Int32(type) {
            case Int32(IFA_LOCAL): local = IPv6Address(octets: value)
            case Int32(IFA_ADDRESS): address = IPv6Address(octets: value)
            case Int32(IFA_FLAGS) where value.count == 4: flags = u32(value, 0)
            default: break
            }
        }
        guard let own = local ?? address else { return nil }
        let peer = local != nil && address != nil && address != local ? address : nil
        return .address6(index: index, address: own, peer: peer, scope: body[3], flags: flags, removed: removed)
    }

    static func forEachAttribute(_ body: [UInt8], from start: Int, _ visit: (UInt16, [UInt8]) -> Void) {
        Netlink.forEachAttribute(body, from: start, visit)
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { Netlink.u32(bytes, offset) }

    /// A dump request (RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE: every table) with its family
    /// header: IPv4 addresses and routes, or with `ipv6` those of every family.
    public static func dumpRequest(type: UInt16, sequence: UInt32, ipv6: Bool = false) -> [UInt8] {
        let header = switch Int32(type) {
        case Int32(RTM_GETLINK): 16
        case Int32(RTM_GETROUTE): 12
        default: 8
        }
        var family = [UInt8](repeating: 0, count: header)
        family[0] = UInt8(type == UInt16(RTM_GETLINK) || ipv6 ? AF_UNSPEC : AF_INET)
        return Netlink.message(type: type, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), sequence: sequence, body: family)
    }

    /// RTM_GETROUTE for one destination from one source address, as `ip route get DST from SRC`
    /// asks (no source: `ip route get DST`): the kernel answers with the route a packet would
    /// take (policy rules and all tables included), or with an error (ENETUNREACH).
    public static func routeLookup(to destination: IPv4Address, from source: IPv4Address?, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = [UInt8(AF_INET), 32, source == nil ? 0 : 32, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        body += Netlink.attribute(UInt16(RTA_DST.rawValue), destination.octets)
        if let source { body += Netlink.attribute(UInt16(RTA_SRC.rawValue), source.octets) }
        return Netlink.message(type: UInt16(RTM_GETROUTE), flags: UInt16(NLM_F_REQUEST), sequence: sequence, body: body)
    }

    /// The kernel's answer to `routeLookup` (`sequence`): the output interface of the route (with
    /// its gateway and preferred source when it names them), or the error (ENETUNREACH, …). nil
    /// when the bytes answer something else.
    public static func routeAnswer(_ bytes: [UInt8], sequence: UInt32) -> TunnelTracker.RouteAnswer? {
        for message in Netlink.messages(in: bytes) where message.sequence == sequence {
            let body = message.body
            switch Int32(message.type) {
            case Int32(NLMSG_ERROR) where body.count >= 4:
                let code = -Int32(bitPattern: u32(body, 0))
                return .none(code == 0 ? "no route" : String(cString: strerror(code)))
            case Int32(RTM_NEWROUTE) where body.count >= 12:
                var output: Int32?
                var gateway: IPv4Address?
                var source: IPv4Address?
                forEachAttribute(body, from: 12) { type, value in
                    guard value.count == 4 else { return }
                    switch Int32(type) {
                    case Int32(RTA_OIF.rawValue): output = Int32(bitPattern: u32(value, 0))
                    case Int32(RTA_GATEWAY.rawValue): gateway = IPv4Address(value[0], value[1], value[2], value[3])
                    case Int32(RTA_PREFSRC.rawValue): source = IPv4Address(value[0], value[1], value[2], value[3])
                    default: break
                    }
                }
                return output.map { .through($0, gateway: gateway, source: source) } ?? .none("a route with no output interface")
            default:
                break
            }
        }
        return nil
    }
}

extension NetlinkMessage: CustomStringConvertible {
    /// As the trace shows it, in the words of `ip monitor`.
    public var description: String {
        switch self {
        case .link(let index, let name, let flags, let removed):
            let state = flags & UInt32(IFF_UP) != 0 ? "up" : "down"
            return "\(removed ? "deleted " : "")link \(index): \(name) \(state) (flags 0x\(String(flags, radix: 16)))"
        case .address(let index, let address, let peer, let removed):
            return "\(removed ? "deleted " : "")address \(address)\(peer.map { " peer \($0)" } ?? "") on link \(index)"
        case .route(let route, let removed):
            return "\(removed ? "deleted " : "")route \(route)"
        case .address6(let index, let address, let peer, let scope, let flags, let removed):
            return "\(removed ? "deleted " : "")address \(address)\(peer.map { " peer \($0)" } ?? "") scope \(scope) flags 0x\(String(flags, radix: 16)) on link \(index)"
        case .route6(let route, let removed):
            return "\(removed ? "deleted " : "")route \(route)"
        case .ruleChanged:
            return "a routing rule changed"
        case .done(let sequence, let interrupted):
            return "end of dump \(sequence)\(interrupted ? " (interrupted: the state changed meanwhile)" : "")"
        case .error(let code):
            return code == 0 ? "acknowledged" : "error: \(Errno(rawValue: -code))"
        case .overrun:
            return "overrun"
        }
    }
}
