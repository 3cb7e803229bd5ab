import CLinux
import Reactor

/// The rtnetlink messages the link watcher cares about, decoded from the bytes of one
/// datagram (several messages, 4-byte aligned, each with its attributes).
public enum NetlinkMessage: Equatable, Sendable {
    case link(index: Int32, name: String, flags: UInt32, removed: Bool)
    /// An IPv4 address (IFA_LOCAL, else IFA_ADDRESS: on a point-to-point link IFA_ADDRESS is
    /// the peer's).
    case address(index: Int32, address: IPv4Address, removed: Bool)
    case done(sequence: UInt32, interrupted: Bool)
    /// NLMSG_ERROR: 0 is an acknowledgement.
    case error(Int32)
    case overrun

    public static func parse(_ bytes: [UInt8]) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            guard length >= 16, offset + length <= bytes.count else { break }
            let type = u16(bytes, offset + 4)
            let flags = u16(bytes, offset + 6)
            let sequence = u32(bytes, offset + 8)
            let body = Array(bytes[(offset + 16)..<(offset + length)])
            let interrupted = flags & UInt16(NLM_F_DUMP_INTR) != 0
            switch Int32(type) {
            case Int32(NLMSG_DONE):
                messages.append(.done(sequence: sequence, interrupted: interrupted))
            case Int32(NLMSG_ERROR):
                if body.count >= 4 { messages.append(.error(Int32(bitPattern: u32(body, 0)))) }
            case Int32(NLMSG_OVERRUN):
                messages.append(.overrun)
            case Int32(RTM_NEWLINK), Int32(RTM_DELLINK):
                if let link = parseLink(body, removed: Int32(type) == Int32(RTM_DELLINK)) { messages.append(link) }
            case Int32(RTM_NEWADDR), Int32(RTM_DELADDR):
                if let address = parseAddress(body, removed: Int32(type) == Int32(RTM_DELADDR)) { messages.append(address) }
            default:
                break
            }
            if interrupted && Int32(type) != Int32(NLMSG_DONE) { messages.append(.done(sequence: sequence, interrupted: true)) }
            offset += (length + 3) & ~3
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
        return .address(index: index, address: own, removed: removed)
    }

    static func forEachAttribute(_ body: [UInt8], from start: Int, _ visit: (UInt16, [UInt8]) -> Void) {
        var offset = start
        while offset + 4 <= body.count {
            let length = Int(u16(body, offset))
            guard length >= 4, offset + length <= body.count else { return }
            visit(u16(body, offset + 2) & 0x3fff, Array(body[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }

    static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    /// A dump request (RTM_GETLINK or RTM_GETADDR) with its family header.
    public static func dumpRequest(type: UInt16, sequence: UInt32) -> [UInt8] {
        let header = type == UInt16(RTM_GETLINK) ? 16 : 8
        let length = UInt32(16 + header)
        var bytes: [UInt8] = []
        bytes += withUnsafeBytes(of: length.littleEndian) { Array($0) }
        bytes += withUnsafeBytes(of: type.littleEndian) { Array($0) }
        bytes += withUnsafeBytes(of: UInt16(NLM_F_REQUEST | NLM_F_DUMP).littleEndian) { Array($0) }
        bytes += withUnsafeBytes(of: sequence.littleEndian) { Array($0) }
        bytes += [0, 0, 0, 0]
        var family = [UInt8](repeating: 0, count: header)
        family[0] = UInt8(type == UInt16(RTM_GETLINK) ? AF_UNSPEC : AF_INET)
        return bytes + family
    }
}

/// Follows one interface, by name, through link and address messages, and says when it
/// becomes usable or stops being so. Usable: IFF_UP, and IFF_RUNNING or IFF_LOWER_UP (a
/// WireGuard link reports operstate UNKNOWN, so operstate is not used), and an IPv4 address.
/// The index is re-learned when the interface is recreated.
public struct LinkTracker: Equatable, Sendable {
    public enum State: Equatable, Sendable {
        case usable(IPv4Address)
        case unusable(String)
    }

    public let interface: String
    private var index: Int32?
    private var flags: UInt32 = 0
    private var addresses: [Int32: [IPv4Address]] = [:]

    public init(interface: String) {
        self.interface = interface
    }

    public var state: State {
        guard let index else { return .unusable("\(interface) does not exist") }
        guard flags & UInt32(IFF_UP) != 0 else { return .unusable("\(interface) is down") }
        guard flags & (UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP) != 0 else {
            return .unusable("\(interface) has no carrier (not running)")
        }
        guard let address = addresses[index]?.first else { return .unusable("\(interface) has no IPv4 address") }
        return .usable(address)
    }

    /// Forgets everything (before a fresh dump).
    public mutating func reset() {
        index = nil
        flags = 0
        addresses = [:]
    }

    public mutating func apply(_ message: NetlinkMessage) {
        switch message {
        case .link(let linkIndex, let name, let linkFlags, let removed):
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
        case .address(let addressIndex, let address, let removed):
            var list = addresses[addressIndex] ?? []
            list.removeAll { $0 == address }
            if !removed { list.append(address) }
            addresses[addressIndex] = list.isEmpty ? nil : list
        case .done, .error, .overrun:
            break
        }
    }
}
