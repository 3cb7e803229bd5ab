import Reactor

/// Where a gateway protocol speaks: the interface (its name and index, which keeps the packets
/// on it), the socket's own address, the gateway's, and which rule found that gateway. A
/// tunnel's IPv4 way, or its IPv6 one (`TunnelTracker.ipv6`).
public struct GatewayPath: Equatable, Sendable {
    public var interface: String
    public var index: Int32
    public var local: IPAddress
    public var gateway: IPAddress
    public var gatewayRule: GatewayRule

    public init(interface: String, index: Int32, local: IPAddress, gateway: IPAddress, gatewayRule: GatewayRule) {
        self.interface = interface
        self.index = index
        self.local = local
        self.gateway = gateway
        self.gatewayRule = gatewayRule
    }

    /// The tunnel's IPv4 way.
    public init(_ tunnel: Tunnel) {
        self.init(interface: tunnel.interface, index: tunnel.index, local: .v4(tunnel.address), gateway: .v4(tunnel.gateway),
                  gatewayRule: tunnel.gatewayRule)
    }

    /// The gateway as the logs name it: `192.168.1.1`, `fe80::1%wg0`.
    public var gatewayText: String {
        if case .v6(let address) = gateway, address.isLinkLocal { return "\(address)%\(interface)" }
        return "\(gateway)"
    }
}
