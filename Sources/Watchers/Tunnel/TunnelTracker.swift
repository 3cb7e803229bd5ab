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
public struct TunnelTracker: Equatable, Sendable {
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

    /// A question for the kernel: which way does a packet from `source` to `destination` go?
    public struct RouteQuery: Equatable, Sendable {
        public var source: IPv4Address
        public var destination: IPv4Address
    }

    /// The kernel's answer: the output interface, or why there is no route.
    public enum RouteAnswer: Equatable, Sendable, CustomStringConvertible {
        case through(Int32)
        case none(String)

        public var description: String {
            switch self {
            case .through(let index): "through link \(index)"
            case .none(let why): "no route: \(why)"
            }
        }
    }

    struct InterfaceAddress: Hashable, Sendable {
        var local: IPv4Address
        var peer: IPv4Address?
    }

    public let interface: String
    public let configuredGateway: IPv4Address?
    private var index: Int32?
    private var flags: UInt32 = 0
    private var addresses: [Int32: [InterfaceAddress]] = [:]
    /// Routes that name a gateway, by key, from every table.
    private var routes: [NetlinkRoute: NetlinkRoute] = [:]
    private var lookup: (query: RouteQuery, answer: RouteAnswer)?

    public init(interface: String, gateway: IPv4Address? = nil) {
        self.interface = interface
        configuredGateway = gateway
    }

    public static func == (lhs: TunnelTracker, rhs: TunnelTracker) -> Bool {
        lhs.interface == rhs.interface && lhs.configuredGateway == rhs.configuredGateway && lhs.index == rhs.index
            && lhs.flags == rhs.flags && lhs.addresses == rhs.addresses && lhs.routes == rhs.routes
            && lhs.lookup?.query == rhs.lookup?.query && lhs.lookup?.answer == rhs.lookup?.answer
    }

    /// The tunnel as it would be once the route to its gateway goes through it, or why not yet.
    private var candidate: Result<Tunnel, Unusable> {
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
                  lookup.answer == .through(tunnel.index) else {
                return .awaitingRoute(tunnel)
            }
            return .usable(tunnel)
        }
    }

    /// The route lookup to make before the state can be known, if any.
    public var pendingLookup: RouteQuery? {
        guard case .success(let tunnel) = candidate else { return nil }
        let query = RouteQuery(source: tunnel.address, destination: tunnel.gateway)
        return lookup?.query == query ? nil : query
    }

    public mutating func routeLookedUp(_ query: RouteQuery, _ answer: RouteAnswer) {
        lookup = (query, answer)
    }

    /// Forgets everything (before a fresh dump).
    public mutating func reset() {
        index = nil
        flags = 0
        addresses = [:]
        routes = [:]
        lookup = nil
    }

    public mutating func apply(_ message: NetlinkMessage) {
        switch message {
        case .link(let linkIndex, let name, let linkFlags, let removed):
            if removed || linkFlags & UInt32(IFF_UP) == 0 {
                // IPv4 drops the routes of an interface that goes down or away without telling.
                routes = routes.filter { $0.value.outputInterface != linkIndex }
            }
            if name == interface {
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
        case .ruleChanged, .done, .error, .overrun:
            break
        }
        // Any change may change the way to the gateway: ask the kernel again.
        if case .done = message { return }
        lookup = nil
    }
}
