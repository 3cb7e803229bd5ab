import CLinux
import Reactor

/// Follows one interface, by name, through rtnetlink's link, address, route and rule messages,
/// and says when NAT-PMP can use it. Usable: IFF_UP, and IFF_RUNNING or IFF_LOWER_UP (a
/// WireGuard link reports operstate UNKNOWN, so operstate is not used), an IPv4 address, a
/// gateway, and the kernel's own answer that a packet from that address to the gateway leaves
/// through this interface (`routeLookedUp`). wg-quick and NetworkManager add their routes
/// after the link is up, so for a while there is none, or one through the LAN: nothing may be
/// sent then. The index is re-learned when the interface is recreated; other interfaces (a
/// kill switch's dummies) never count, whatever their routes.
///
/// With the `.defaultRoute` target it follows the way to the internet instead, for a router
/// on a network with no tunnel: the kernel is asked which way a packet to `internetProbe` would
/// take (policy rules and every table included, so wg-quick's default route in its own table
/// counts), and that route's interface, gateway and source address are the router's; a route
/// with no gateway or through a point-to-point link (a tunnel under another name, a kill
/// switch's dummy) is no router. The way to that gateway is then checked as for a tunnel.
public struct TunnelTracker: Equatable, Sendable {
    /// What is followed: an interface by name, or whatever the default route leads to.
    public enum Target: Equatable, Sendable {
        case interface(String)
        case defaultRoute
    }

    /// An address on the internet that no route names on its own (TEST-NET-1, RFC 5737): the
    /// way the kernel would send a packet to it is the default route's. It is only looked up;
    /// nothing is ever sent to it.
    public static let internetProbe = IPv4Address(192, 0, 2, 1)

    public enum State: Equatable, Sendable, CustomStringConvertible {
        case usable(Tunnel)
        /// Up and addressed, but a packet to the gateway would not leave through the tunnel
        /// (no route yet, or one through another interface).
        case awaitingRoute(Tunnel)
        case unusable(String)

        public var description: String {
            switch self {
            case .usable(let tunnel): "\(tunnel.interface) is up with \(tunnel.address); gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
            case .awaitingRoute(let tunnel): "waiting for a route to \(tunnel.gateway) via \(tunnel.interface)"
            case .unusable(let reason): reason
            }
        }
    }

    /// A question for the kernel: which way does a packet from `source` (nil: whichever address
    /// the kernel would pick) to `destination` go?
    public struct RouteQuery: Equatable, Sendable {
        public var source: IPv4Address?
        public var destination: IPv4Address

        public init(source: IPv4Address?, destination: IPv4Address) {
            self.source = source
            self.destination = destination
        }
    }

    /// The kernel's answer: the output interface, with the route's gateway (none for a route
    /// straight onto the link) and the source address it would pick, or why there is no route.
    public enum RouteAnswer: Equatable, Sendable, CustomStringConvertible {
        case through(Int32, gateway: IPv4Address? = nil, source: IPv4Address? = nil)
        case none(String)

        public var outputInterface: Int32? {
            if case .through(let index, _, _) = self { index } else { nil }
        }

        public var description: String {
            switch self {
            case .through(let index, let gateway, let source):
                "through link \(index)\(gateway.map { " via \($0)" } ?? "")\(source.map { " from \($0)" } ?? "")"
            case .none(let why): "no route: \(why)"
            }
        }
    }

    struct Link: Hashable, Sendable {
        var name: String
        var flags: UInt32
    }

    struct InterfaceAddress: Hashable, Sendable {
        var local: IPv4Address
        var peer: IPv4Address?
    }

    struct InterfaceAddress6: Hashable, Sendable {
        var local: IPv6Address
        var peer: IPv6Address?
        var scope: UInt8
        var flags: UInt32

        /// Global or unique local, its duplicate address detection done and passed, not on its
        /// way out: an address a peer can reach and a socket can be bound to.
        var isUsable: Bool {
            scope == UInt8(RT_SCOPE_UNIVERSE.rawValue)
                && flags & UInt32(IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED) == 0
        }

        /// A privacy address that moves on its own; a stable one is preferred.
        var isTemporary: Bool { flags & UInt32(IFA_F_TEMPORARY) != 0 }
    }

    public let target: Target
    public let configuredGateway: IPv4Address?
    private var index: Int32?
    private var flags: UInt32 = 0
    /// Every link by index (the default route may lead through any of them).
    private var links: [Int32: Link] = [:]
    private var addresses: [Int32: [InterfaceAddress]] = [:]
    /// Routes that name a gateway, by key, from every table.
    private var routes: [NetlinkRoute: NetlinkRoute] = [:]
    /// The same for IPv6 (only a watcher that follows IPv6 asks for these).
    private var addresses6: [Int32: [InterfaceAddress6]] = [:]
    private var routes6: [NetlinkRoute6: NetlinkRoute6] = [:]
    private var lookup: (query: RouteQuery, answer: RouteAnswer)?
    /// The kernel's answer for `internetProbe` (the default route's way), for `.defaultRoute`.
    private var wayOut: (query: RouteQuery, answer: RouteAnswer)?

    public init(interface: String, gateway: IPv4Address? = nil) {
        target = .interface(interface)
        configuredGateway = gateway
    }

    /// Follows the way to the internet; `gateway`: a configured router instead of the route's.
    public init(defaultRouteWith gateway: IPv4Address? = nil) {
        target = .defaultRoute
        configuredGateway = gateway
    }

    /// The interface followed, or "the default route".
    public var interface: String {
        switch target {
        case .interface(let name): name
        case .defaultRoute: "the default route"
        }
    }

    /// Whether the interface followed exists at all (up or not).
    public var exists: Bool { index != nil }

    public static func == (lhs: TunnelTracker, rhs: TunnelTracker) -> Bool {
        lhs.target == rhs.target && lhs.configuredGateway == rhs.configuredGateway && lhs.index == rhs.index
            && lhs.flags == rhs.flags && lhs.links == rhs.links && lhs.addresses == rhs.addresses && lhs.routes == rhs.routes
            && lhs.addresses6 == rhs.addresses6 && lhs.routes6 == rhs.routes6
            && lhs.lookup?.query == rhs.lookup?.query && lhs.lookup?.answer == rhs.lookup?.answer
            && lhs.wayOut?.query == rhs.wayOut?.query && lhs.wayOut?.answer == rhs.wayOut?.answer
    }

    private var probe: RouteQuery { RouteQuery(source: nil, destination: Self.internetProbe) }

    /// The tunnel as it would be once the route to its gateway goes through it, or why not yet.
    private var candidate: Result<Tunnel, Unusable> {
        if target == .defaultRoute { return router }
        guard let index else { return .failure(Unusable("\(interface) does not exist")) }
        guard flags & UInt32(IFF_UP) != 0 else { return .failure(Unusable("\(interface) is down")) }
        guard flags & (UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP) != 0 else {
            return .failure(Unusable("\(interface) has no carrier (not running)"))
        }
        guard let address = addresses[index]?.first else { return .failure(Unusable("\(interface) has no IPv4 address")) }
        let (gateway, rule) = chooseGateway(index: index, address: address)
        return .success(Tunnel(interface: interface, index: index, address: address.local, gateway: gateway, gatewayRule: rule))
    }

    private struct Unusable: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// The router the default route leads to, or why there is none (yet).
    private var router: Result<Tunnel, Unusable> {
        guard let wayOut, wayOut.query == probe else { return .failure(Unusable("the way to the internet is not known yet")) }
        guard case .through(let index, let routeGateway, let source) = wayOut.answer else {
            return .failure(Unusable("no route to the internet (\(wayOut.answer))"))
        }
        guard let link = links[index] else { return .failure(Unusable("the default route leads through link \(index), which is unknown")) }
        let name = link.name
        guard link.flags & UInt32(IFF_UP) != 0 else { return .failure(Unusable("\(name) (the default route's) is down")) }
        guard link.flags & (UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP) != 0 else {
            return .failure(Unusable("\(name) (the default route's) has no carrier (not running)"))
        }
        guard link.flags & UInt32(IFF_POINTOPOINT) == 0 else {
            return .failure(Unusable("the default route leads into \(name), a point-to-point link (a tunnel), not to a router"))
        }
        guard let gateway = configuredGateway ?? routeGateway else {
            return .failure(Unusable("the default route through \(name) names no gateway (a tunnel's or a kill switch's way), so there is no router to ask"))
        }
        guard let address = source ?? addresses[index]?.first?.local else { return .failure(Unusable("\(name) has no IPv4 address")) }
        return .success(Tunnel(interface: name, index: index, address: address, gateway: gateway,
                               gatewayRule: configuredGateway == nil ? .defaultRoute : .configured))
    }

    private func chooseGateway(index: Int32, address: InterfaceAddress) -> (IPv4Address, GatewayRule) {
        if let configuredGateway { return (configuredGateway, .configured) }
        // The widest route through the tunnel that names a gateway: a default or OpenVPN's
        // 0.0.0.0/1 and 128.0.0.0/1 before narrower ones; then the lower metric.
        let named = routes.values.filter { $0.outputInterface == index && $0.gateway != nil }.min { a, b in
            if a.prefixLength != b.prefixLength { return a.prefixLength < b.prefixLength }
            if a.metric != b.metric { return a.metric < b.metric }
            if a.table != b.table { return a.table < b.table }
            return a.destination.octets.lexicographicallyPrecedes(b.destination.octets)
        }
        if let named, let gateway = named.gateway { return (gateway, .route(table: named.table)) }
        if let peer = address.peer { return (peer, .peer) }
        let local = address.local
        return (IPv4Address(local.bytes.0, local.bytes.1, local.bytes.2, 1), .lastByteOne)
    }

    public var state: State {
        switch candidate {
        case .failure(let unusable):
            return .unusable(unusable.reason)
        case .success(let tunnel):
            guard let lookup, lookup.query == RouteQuery(source: tunnel.address, destination: tunnel.gateway),
                  lookup.answer.outputInterface == tunnel.index else {
                return .awaitingRoute(tunnel)
            }
            return .usable(tunnel)
        }
    }

    /// The IPv6 way to the gateway of a usable tunnel, when it has one: a usable global (or
    /// unique local) address of the interface, a stable one first, and a gateway: the widest
    /// IPv6 route through the interface that names one (a router's link-local address, as its
    /// advertisements make it), else the peer of a point-to-point address. No gateway is
    /// guessed: without one there is no IPv6 way.
    public var ipv6: GatewayPath? {
        guard case .usable(let tunnel) = state else { return nil }
        let candidates = (addresses6[tunnel.index] ?? []).filter(\.isUsable)
        guard let address = candidates.first(where: { !$0.isTemporary }) ?? candidates.first else { return nil }
        let named = routes6.values.filter { $0.outputInterface == tunnel.index && $0.gateway != nil }.min { a, b in
            if a.prefixLength != b.prefixLength { return a.prefixLength < b.prefixLength }
            if a.metric != b.metric { return a.metric < b.metric }
            if a.table != b.table { return a.table < b.table }
            return a.destination.octets.lexicographicallyPrecedes(b.destination.octets)
        }
        let gateway: (IPv6Address, GatewayRule)
        if let named, let via = named.gateway {
            gateway = (via, .route(table: named.table))
        } else if let peer = address.peer {
            gateway = (peer, .peer)
        } else {
            return nil
        }
        return GatewayPath(interface: tunnel.interface, index: tunnel.index, local: .v6(address.local), gateway: .v6(gateway.0),
                           gatewayRule: gateway.1)
    }

    /// The route lookup to make before the state can be known, if any (for the default route,
    /// the way out first, then the way to its gateway).
    public var pendingLookup: RouteQuery? {
        if target == .defaultRoute, wayOut?.query != probe { return probe }
        guard case .success(let tunnel) = candidate else { return nil }
        let query = RouteQuery(source: tunnel.address, destination: tunnel.gateway)
        return lookup?.query == query ? nil : query
    }

    public mutating func routeLookedUp(_ query: RouteQuery, _ answer: RouteAnswer) {
        if query == probe { wayOut = (query, answer) } else { lookup = (query, answer) }
    }

    /// Forgets everything (before a fresh dump).
    public mutating func reset() {
        index = nil
        flags = 0
        links = [:]
        addresses = [:]
        routes = [:]
        addresses6 = [:]
        routes6 = [:]
        lookup = nil
        wayOut = nil
    }

    public mutating func apply(_ message: NetlinkMessage) {
        switch message {
        case .link(let linkIndex, let name, let linkFlags, let removed):
            if removed || linkFlags & UInt32(IFF_UP) == 0 {
                // IPv4 drops the routes of an interface that goes down or away without telling.
                routes = routes.filter { $0.value.outputInterface != linkIndex }
                routes6 = routes6.filter { $0.value.outputInterface != linkIndex }
            }
            if removed { addresses6[linkIndex] = nil }
            links[linkIndex] = removed ? nil : Link(name: name, flags: linkFlags)
            if case .defaultRoute = target {
                if removed { addresses[linkIndex] = nil }
            } else if name == interface {
                if removed {
                    addresses[linkIndex] = nil
                    index = nil
                    flags = 0
                } else {
                    if let index, index != linkIndex { addresses[index] = nil }
                    index = linkIndex
                    flags = linkFlags
                }
            } else if linkIndex == index {
                // Renamed away.
                index = nil
                flags = 0
            }
        case .address(let addressIndex, let address, let peer, let removed):
            var list = addresses[addressIndex] ?? []
            list.removeAll { $0.local == address }
            if !removed { list.append(InterfaceAddress(local: address, peer: peer)) }
            addresses[addressIndex] = list.isEmpty ? nil : list
        case .route(let route, let removed):
            if removed || route.gateway == nil { routes[route.key] = nil } else { routes[route.key] = route }
        case .address6(let addressIndex, let address, let peer, let scope, let flags, let removed):
            var list = addresses6[addressIndex] ?? []
            list.removeAll { $0.local == address }
            if !removed { list.append(InterfaceAddress6(local: address, peer: peer, scope: scope, flags: flags)) }
            addresses6[addressIndex] = list.isEmpty ? nil : list
        case .route6(let route, let removed):
            if removed || route.gateway == nil { routes6[route.key] = nil } else { routes6[route.key] = route }
        case .ruleChanged, .done, .error, .overrun:
            break
        }
        // Any change may change the way out or to the gateway: ask the kernel again.
        if case .done = message { return }
        lookup = nil
        wayOut = nil
    }
}
