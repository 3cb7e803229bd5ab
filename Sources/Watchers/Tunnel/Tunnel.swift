import Reactor

/// The VPN tunnel as the NAT-PMP client needs it: the interface, its own IPv4 address, the
/// gateway to ask, and which rule found that gateway.
public struct Tunnel: Equatable, Sendable {
    public var interface: String
    public var index: Int32
    public var address: IPv4Address
    public var gateway: IPv4Address
    public var gatewayRule: GatewayRule

    public init(interface: String, index: Int32, address: IPv4Address, gateway: IPv4Address, gatewayRule: GatewayRule) {
        self.interface = interface
        self.index = index
        self.address = address
        self.gateway = gateway
        self.gatewayRule = gatewayRule
    }
}

/// How the NAT-PMP gateway was chosen, in order of preference: set in the configuration; the
/// gateway a route through the tunnel names (OpenVPN's `route-gateway`); the peer address of a
/// point-to-point interface; the tunnel's address with its last byte 1 (ProtonVPN WireGuard:
/// 10.2.0.2/32 → 10.2.0.1).
public enum GatewayRule: Equatable, Sendable, CustomStringConvertible {
    case configured
    case route(table: UInt32)
    case peer
    case lastByteOne
    /// The gateway of the default route (the way the kernel sends a packet to the internet):
    /// a router on a network with no tunnel.
    case defaultRoute

    public var description: String {
        switch self {
        case .configured: "set in [natpmp] gateway"
        case .route(let table): "the gateway of a route through the tunnel, table \(Self.tableName(table))"
        case .peer: "the peer address of the point-to-point tunnel"
        case .lastByteOne: "the tunnel address with its last byte 1"
        case .defaultRoute: "the gateway of the default route"
        }
    }

    /// A short name for `status --json` and the state file.
    public var key: String {
        switch self {
        case .configured: "configured"
        case .route: "route"
        case .peer: "peer"
        case .lastByteOne: "last-byte-1"
        case .defaultRoute: "default-route"
        }
    }

    static func tableName(_ table: UInt32) -> String {
        switch table {
        case 254: "main"
        case 255: "local"
        case 253: "default"
        default: "\(table)"
        }
    }
}
