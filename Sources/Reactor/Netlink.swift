import CLinux
import Glibc

/// What every netlink protocol shares (rtnetlink, sock_diag): the socket, the 16-byte
/// `nlmsghdr` framing of requests and answers, and little-endian fields.
public enum Netlink {
    /// One message of a datagram: its header fields and its body.
    public struct Message {
        public var type: UInt16
        public var flags: UInt16
        public var sequence: UInt32
        public var body: [UInt8]
    }

    /// The messages of one datagram (4-byte aligned); a truncated one ends the list.
    public static func messages(in bytes: [UInt8]) -> [Message] {
        var messages: [Message] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            guard length >= 16, offset + length <= bytes.count else { break }
            messages.append(Message(type: u16(bytes, offset + 4), flags: u16(bytes, offset + 6), sequence: u32(bytes, offset + 8),
                                    body: Array(bytes[(offset + 16)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return messages
    }

    /// A request: the header, then `body`.
    public static func message(type: UInt16, flags: UInt16, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        littleEndian(UInt32(16 + body.count)) + littleEndian(type) + littleEndian(flags) + littleEndian(sequence) + [0, 0, 0, 0] + body
    }

    /// A route attribute (`rtattr`): length, type, value, padded to 4 bytes.
    public static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        littleEndian(UInt16(4 + value.count)) + littleEndian(type) + value + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }

    /// Visits the attributes of a body from `start` (type without its flag bits, value).
    public static func forEachAttribute(_ body: [UInt8], from start: Int, _ visit: (UInt16, [UInt8]) -> Void) {
        var offset = start
        while offset + 4 <= body.count {
            let length = Int(u16(body, offset))
            guard length >= 4, offset + length <= body.count else { return }
            visit(u16(body, offset + 2) & 0x3fff, Array(body[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }

    public static func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    public static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    public static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    /// A netlink address: the kernel (port 0, no groups), or ours with the multicast `groups`.
    public struct Address: SockAddrConvertible {
        public var groups: UInt32 = 0

        public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
            var address = sockaddr_nl()
            address.nl_family = sa_family_t(AF_NETLINK)
            address.nl_groups = groups
            return try withUnsafeBytes(of: &address) {
                try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
    }

    /// A non-blocking netlink socket of `netlinkProtocol`, bound to the multicast `groups`.
    public static func socket(_ netlinkProtocol: Int32, groups: UInt32 = 0) throws -> FileDescriptor {
        try Socket(family: AF_NETLINK, kind: .raw, protocol: netlinkProtocol, name: "socket(AF_NETLINK)") {
            try $0.bind(to: Address(groups: groups), name: "bind(AF_NETLINK)")
        }.fd
    }

    /// Sends a request to the kernel.
    public static func send(_ request: [UInt8], on fd: FileDescriptor) throws {
        _ = try Socket(fd).send(request, to: Address(), name: "sendto(AF_NETLINK)")
    }
}
