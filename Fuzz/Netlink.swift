import CLinux
import Glibc
import Reactor
@testable import Watchers

/// NetlinkMessage.parse (one or more rtnetlink datagrams: dumps and events) and TunnelTracker,
/// fed what was parsed, once for each interface named in it, its route lookups answered by the
/// input (through the interface, through another, or none).
///
/// Properties: the messages, written out again, parse back equal; names hold no NUL; a
/// tracker says "usable" only with the interface present, up, running (or lower-up), an IPv4
/// address seen on its current index and not removed since, and the kernel's last answer for
/// exactly that address and gateway naming the interface's current index; the gateway rule
/// says where the gateway came from (the peer address, or the address with its last byte 1
/// only when there is no peer, or a route through the interface that names it); an interface
/// removed or forgotten (`reset`) is not usable.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetlink(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let messages = NetlinkMessage.parse(bytes)
    let written = messages.flatMap(datagram)
    require(NetlinkMessage.parse(written) == messages, "the messages, written out again, parse differently")

    var names: [String] = []
    for case .link(_, let name, _, _) in messages where !names.contains(name) && names.count < 4 {
        require(!name.contains("\0"), "interface name with a NUL")
        names.append(name)
    }
    for name in names {
        var tracker = TunnelTracker(interface: name)
        var index: Int32?
        var flags: UInt32 = 0
        var seen: [Int32: [IPv4Address: IPv4Address?]] = [:]
        var answered: (TunnelTracker.RouteQuery, TunnelTracker.RouteAnswer)?
        for (step, message) in messages.enumerated() {
            tracker.apply(message)
            switch message {
            case .link(let linkIndex, let linkName, let linkFlags, let removed) where linkName == name:
                index = removed ? nil : linkIndex
                flags = linkFlags
                if removed { require(!isUsable(tracker), "usable after RTM_DELLINK") }
            case .link(let linkIndex, _, _, _) where linkIndex == index:
                index = nil
            case .address(let addressIndex, let address, let peer, let removed):
                seen[addressIndex, default: [:]][address] = nil
                if !removed { seen[addressIndex, default: [:]][address] = .some(peer) }
            default:
                break
            }
            if let query = tracker.pendingLookup {
                let choice = bytes.isEmpty ? 0 : Int(bytes[step % bytes.count]) % 3
                let answer: TunnelTracker.RouteAnswer = choice == 0 ? .through(index ?? 1) : choice == 1 ? .through(999) : .none("no route")
                tracker.routeLookedUp(query, answer)
                answered = (query, answer)
            }
            if case .usable(let tunnel) = tracker.state {
                require(tunnel.index == index, "usable on index \(tunnel.index), the interface is \(String(describing: index))")
                require(flags & UInt32(IFF_UP) != 0 && flags & (UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP) != 0,
                        "usable with flags \(flags)")
                guard let peer = seen[tunnel.index]?[tunnel.address] else {
                    require(false, "usable with \(tunnel.address), not an address of index \(tunnel.index)")
                    return 0
                }
                require(answered?.0 == TunnelTracker.RouteQuery(source: tunnel.address, destination: tunnel.gateway)
                         && answered?.1 == .through(tunnel.index), "usable without the kernel's word that the way is the tunnel")
                switch tunnel.gatewayRule {
                case .peer: require(peer == tunnel.gateway, "peer rule with gateway \(tunnel.gateway), peer \(String(describing: peer))")
                case .lastByteOne:
                    let a = tunnel.address.bytes
                    require(peer == nil && tunnel.gateway == IPv4Address(a.0, a.1, a.2, 1), "last-byte-1 rule with \(tunnel.gateway)")
                case .route(let table):
                    require(messages[...step].contains {
                        if case .route(let route, false) = $0 { route.gateway == tunnel.gateway && route.table == table && route.outputInterface == tunnel.index } else { false }
                    }, "route rule with no such route")
                case .configured:
                    require(false, "configured rule with no configured gateway")
                case .defaultRoute:
                    require(false, "the default route's rule on a tracker of \(name)")
                }
            }
        }
        tracker.reset()
        require(!isUsable(tracker), "usable after reset")
    }
    return 0
}

func isUsable(_ tracker: TunnelTracker) -> Bool {
    if case .usable = tracker.state { return true }
    return false
}

/// One netlink message for `message`, as the kernel would send it.
func datagram(_ message: NetlinkMessage) -> [UInt8] {
    func header(_ type: Int32, flags: Int32 = 0, sequence: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var bytes = littleEndian(UInt32(16 + body.count)) + littleEndian16(UInt16(type)) + littleEndian16(UInt16(flags))
        bytes += littleEndian(sequence) + littleEndian(0) + body
        return bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
    func attribute(_ type: Int32, _ value: [UInt8]) -> [UInt8] {
        let bytes = littleEndian16(UInt16(4 + value.count)) + littleEndian16(UInt16(type)) + value
        return bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
    switch message {
    case .link(let index, let name, let flags, let removed):
        let info = [UInt8(AF_UNSPEC), 0] + littleEndian16(0) + littleEndian(UInt32(bitPattern: index)) + littleEndian(flags) + littleEndian(0)
        return header(Int32(removed ? RTM_DELLINK : RTM_NEWLINK), body: info + attribute(Int32(IFLA_IFNAME), Array(name.utf8) + [0]))
    case .address(let index, let address, let peer, let removed):
        let info = [UInt8(AF_INET), 32, 0, 0] + littleEndian(UInt32(bitPattern: index))
        let peerAttribute = peer.map { attribute(Int32(IFA_ADDRESS), $0.octets) } ?? []
        return header(Int32(removed ? RTM_DELADDR : RTM_NEWADDR), body: info + attribute(Int32(IFA_LOCAL), address.octets) + peerAttribute)
    case .route(let route, let removed):
        var body: [UInt8] = [UInt8(AF_INET), route.prefixLength, 0, 0, UInt8(truncatingIfNeeded: min(route.table, 252)), 3, 0, UInt8(RTN_UNICAST)]
        body += littleEndian(0)
        body += attribute(Int32(RTA_TABLE.rawValue), littleEndian(route.table))
        body += attribute(Int32(RTA_DST.rawValue), route.destination.octets)
        if let gateway = route.gateway { body += attribute(Int32(RTA_GATEWAY.rawValue), gateway.octets) }
        if let output = route.outputInterface { body += attribute(Int32(RTA_OIF.rawValue), littleEndian(UInt32(bitPattern: output))) }
        body += attribute(Int32(RTA_PRIORITY.rawValue), littleEndian(route.metric))
        return header(Int32(removed ? RTM_DELROUTE : RTM_NEWROUTE), body: body)
    case .address6(let index, let address, let peer, let scope, let flags, let removed):
        let info = [UInt8(AF_INET6), 64, UInt8(truncatingIfNeeded: flags), scope] + littleEndian(UInt32(bitPattern: index))
        let peerAttribute = peer.map { attribute(Int32(IFA_ADDRESS), $0.octets) } ?? []
        return header(Int32(removed ? RTM_DELADDR : RTM_NEWADDR),
                      body: info + attribute(Int32(IFA_LOCAL), address.octets) + peerAttribute + attribute(Int32(IFA_FLAGS), littleEndian(flags)))
    case .route6(let route, let removed):
        var body: [UInt8] = [UInt8(AF_INET6), route.prefixLength, 0, 0, UInt8(truncatingIfNeeded: min(route.table, 252)), 3, 0, UInt8(RTN_UNICAST)]
        body += littleEndian(0)
        body += attribute(Int32(RTA_TABLE.rawValue), littleEndian(route.table))
        body += attribute(Int32(RTA_DST.rawValue), route.destination.octets)
        if let gateway = route.gateway { body += attribute(Int32(RTA_GATEWAY.rawValue), gateway.octets) }
        if let output = route.outputInterface { body += attribute(Int32(RTA_OIF.rawValue), littleEndian(UInt32(bitPattern: output))) }
        body += attribute(Int32(RTA_PRIORITY.rawValue), littleEndian(route.metric))
        return header(Int32(removed ? RTM_DELROUTE : RTM_NEWROUTE), body: body)
    case .ruleChanged:
        return header(Int32(RTM_NEWRULE), body: [UInt8(AF_INET)] + [UInt8](repeating: 0, count: 11))
    case .done(let sequence, let interrupted):
        return header(Int32(NLMSG_DONE), flags: interrupted ? Int32(NLM_F_DUMP_INTR) : 0, sequence: sequence, body: littleEndian(0))
    case .error(let code):
        return header(Int32(NLMSG_ERROR), body: littleEndian(UInt32(bitPattern: code)) + [UInt8](repeating: 0, count: 16))
    case .overrun:
        return header(Int32(NLMSG_OVERRUN), body: [])
    }
}

func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

func littleEndian16(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(value >> 8)] }
