import CLinux
import Reactor

/// One unicast route as rtnetlink reports it (`rtmsg`, 12 bytes, then attributes): where it
/// leads, through which interface, by which gateway (for IPv6 often the router's link-local
/// address), in which table. `NetlinkRoute` is IPv4's, `NetlinkRoute6` IPv6's.
public struct IPRoute<Address: RouteAddress>: Hashable, Sendable {
    public var table: UInt32
    public var destination: Address
    public var prefixLength: UInt8
    public var gateway: Address?
    public var outputInterface: Int32?
    public var metric: UInt32

    public init(table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue), destination: Address = .any, prefixLength: UInt8 = 0,
                gateway: Address? = nil, outputInterface: Int32? = nil, metric: UInt32 = 0) {
        self.table = table
        self.destination = destination
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.metric = metric
    }

    /// nil for anything but a unicast route of this family (local, broadcast, blackhole, … are
    /// not ways out).
    init?(_ body: [UInt8]) {
        guard body.count >= 12, Int32(body[0]) == Address.family, body[7] == UInt8(RTN_UNICAST), body[1] <= Address.bits else { return nil }
        self.init(table: UInt32(body[4]), prefixLength: body[1])
        NetlinkMessage.forEachAttribute(body, from: 12) { type, value in
            switch Int32(type) {
            case Int32(RTA_DST.rawValue): if let address = Address(octets: value) { destination = address }
            case Int32(RTA_GATEWAY.rawValue): gateway = Address(octets: value)
            case Int32(RTA_OIF.rawValue) where value.count == 4: outputInterface = Int32(bitPattern: NetlinkMessage.u32(value, 0))
            case Int32(RTA_PRIORITY.rawValue) where value.count == 4: metric = NetlinkMessage.u32(value, 0)
            case Int32(RTA_TABLE.rawValue) where value.count == 4: table = NetlinkMessage.u32(value, 0)
            default: break
            }
        }
    }

    /// What identifies a route in its table (the gateway may change under the same key).
    var key: IPRoute {
        IPRoute(table: table, destination: destination, prefixLength: prefixLength, outputInterface: outputInterface, metric: metric)
    }
}

public typealias NetlinkRoute = IPRoute<IPv4Address>
public typealias NetlinkRoute6 = IPRoute<IPv6Address>

/// An address a route can lead to: its family, its length in bits, the address of a default
/// route, and its bytes as rtnetlink writes them.
public protocol RouteAddress: Hashable, Sendable, CustomStringConvertible {
    static var family: Int32 { get }
    static var bits: UInt8 { get }
    static var any: Self { get }
    init?(octets: [UInt8])
}

extension IPv4Address: RouteAddress {
    public static var family: Int32 { AF_INET }
    public static var bits: UInt8 { 32 }
    public static var any: IPv4Address { IPv4Address(0, 0, 0, 0) }

    public init?(octets: [UInt8]) {
        guard octets.count == 4 else { return nil }
        self.init(octets[0], octets[1], octets[2], octets[3])
    }
}

extension IPv6Address: RouteAddress {
    public static var family: Int32 { AF_INET6 }
    public static var bits: UInt8 { 128 }
    public static var any: IPv6Address { IPv6Address(octets: [UInt8](repeating: 0, count: 16))! }
}

extension IPRoute: CustomStringConvertible {
    /// `ip route`'s words: `default via 10.2.0.1 dev #2 table 51820 metric 0`.
    public var description: String {
        let destination = prefixLength == 0 ? "default" : "\(self.destination)/\(prefixLength)"
        let via = gateway.map { " via \($0)" } ?? ""
        let device = outputInterface.map { " dev #\($0)" } ?? ""
        return "\(destination)\(via)\(device) table \(table) metric \(metric)"
    }
}
