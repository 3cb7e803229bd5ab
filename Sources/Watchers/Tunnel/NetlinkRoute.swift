import CLinux
import Reactor

/// One IPv4 unicast route as rtnetlink reports it (`rtmsg`, 12 bytes, then attributes): where
/// it leads, through which interface, by which gateway, in which table.
public struct NetlinkRoute: Hashable, Sendable {
    public var table: UInt32
    public var destination: IPv4Address
    public var prefixLength: UInt8
    public var gateway: IPv4Address?
    public var outputInterface: Int32?
    public var metric: UInt32

    public init(table: UInt32 = UInt32(RT_TABLE_MAIN.rawValue), destination: IPv4Address = IPv4Address(0, 0, 0, 0), prefixLength: UInt8 = 0,
                gateway: IPv4Address? = nil, outputInterface: Int32? = nil, metric: UInt32 = 0) {
        self.table = table
        self.destination = destination
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.outputInterface = outputInterface
        self.metric = metric
    }

    /// nil for anything but an IPv4 unicast route (local, broadcast, blackhole, … are not ways
    /// out).
    init?(_ body: [UInt8]) {
        guard body.count >= 12, Int32(body[0]) == AF_INET, body[7] == UInt8(RTN_UNICAST), body[1] <= 32 else { return nil }
        self.init(table: UInt32(body[4]), prefixLength: body[1])
        NetlinkMessage.forEachAttribute(body, from: 12) { type, value in
            switch Int32(type) {
            case Int32(RTA_DST.rawValue) where value.count == 4:
                destination = IPv4Address(value[0], value[1], value[2], value[3])
            case Int32(RTA_GATEWAY.rawValue) where value.count == 4:
                gateway = IPv4Address(value[0], value[1], value[2], value[3])
            case Int32(RTA_OIF.rawValue) where value.count == 4:
                outputInterface = Int32(bitPattern: NetlinkMessage.u32(value, 0))
            case Int32(RTA_PRIORITY.rawValue) where value.count == 4:
                metric = NetlinkMessage.u32(value, 0)
            case Int32(RTA_TABLE.rawValue) where value.count == 4:
                table = NetlinkMessage.u32(value, 0)
            default:
                break
            }
        }
    }

    /// What identifies a route in its table (the gateway may change under the same key).
    var key: NetlinkRoute {
        NetlinkRoute(table: table, destination: destination, prefixLength: prefixLength, outputInterface: outputInterface, metric: metric)
    }
}

extension NetlinkRoute: CustomStringConvertible {
    /// `ip route`'s words: `default via 10.2.0.1 dev #2 table 51820 metric 0`.
    public var description: String {
        let destination = prefixLength == 0 ? "default" : "\(self.destination)/\(prefixLength)"
        let via = gateway.map { " via \($0)" } ?? ""
        let device = outputInterface.map { " dev #\($0)" } ?? ""
        return "\(destination)\(via)\(device) table \(table) metric \(metric)"
    }
}
