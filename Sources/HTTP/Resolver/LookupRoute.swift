import Reactor

/// The one way out a name lookup may take: an interface (a VPN tunnel) and its IPv4 address.
/// Its queries are sent from that address and kept on that interface (`IP_UNICAST_IF` over
/// UDP, `SO_BINDTODEVICE` over TCP), so that no query about the name leaves any other way,
/// whatever the routes say; only IPv4 name servers off this machine are asked.
public struct LookupRoute: Equatable, Sendable {
    public var interface: String
    public var index: Int32
    public var address: IPv4Address

    public init(interface: String, index: Int32, address: IPv4Address) {
        self.interface = interface
        self.index = index
        self.address = address
    }
}
