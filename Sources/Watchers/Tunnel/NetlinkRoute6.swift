import CLinux
import Reactor

/// One IPv6 unicast route as rtnetlink reports it (`rtmsg`, then attributes): where it leads,
/// through which interface, by which gateway (often the router's link-local address), in
/// which table.
public struct NetlinkRoute6: Hashable, Sendable {
    public var table: UInt32
    public var destination: IPv6Address
    public var prefixLength: UInt8
    public var gateway: IPv6Address?
    public var outputInterface: Int32?
    public var metric: UInt32

    public static let any = IPv6Address(octets: [UInt8](repeating: 0, count: 16))!

    public init(table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue), destination: IPv6Address = Self.any, prefixLength: UInt8 = 0,
                gateway: IPv6Address? = nil, outputInterface: Int32? = nil, metric: UInt32 = 0) {
        self.table = table
        self.destination = destination
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.metric = metric
    }

    /// nil for anything but an IPv6 unicast route.
    init?(_ body: [UInt8]) {
        guard body.count >= 12, Int32(body[0]) == AF_INET6, body[7] == UInt8(RTN_UNICAST), body[1] <= 128 else { return nil }
        self.init(table: UInt32(body[4]), prefixLength: body[1])
        NetlinkMessage.forEachAttribute(body, from: 12) { type, value in
            switch Int32(type) {
            case Int32(RTA_DST.rawValue): if let address = IPv6Address(octets: value) { destination = address }
            case Int32(RTA_GATEWAY.rawValue): gateway = IPv6Address(octets: value)
            case Int32(RTA_OIF.rawValue) where value.count == 4: outputInterface = Int32(bitPattern: NetlinkMessage.u32(value, 0))
            case Int32(RTA_PRIORITY.rawValue) where value.count == 4: metric = NetlinkMessage.u32(value, 0)
            case Int32(RTA_TABLE.rawValue) where value.count == 4: table = NetlinkMessage.u32(value, 0)
            default: break
            }
        }
    }

    /// What identifies a route in its table (the gateway may change under the same key).
    var key: NetlinkRoute6 {
        NetlinkRoute6(table: table, destination: destination, prefixLength: prefixLength, outputInterface: outputInterface, metric: metric)
    }
}

extension NetlinkRoute6: CustomStringConvertible {
    /// `ip -6 route`'s words: `default via fe80::1 dev #2 table main metric 1024`.
    public var description: String {
        let destination = prefixLength == 0 ? "default" : "\(self.destination)/\(prefixLength)"
        let via = gateway.map { " via \($0)" } ?? ""
        let device = outputInterface.map { " dev #\($0)" } ?? ""
        return "\(destination)\(via)\(device) table \(table) metric \(metric)"
    }
}
