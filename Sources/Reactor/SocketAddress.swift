import CLinux
import Glibc

/// An IPv4 address as four bytes in network order (a.b.c.d).
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt8, UInt8, UInt8, UInt8)

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        bytes = (a, b, c, d)
    }

    /// Dotted quad only: "10.2.0.1".
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var values: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let value = UInt8(part) else { return nil }
            values.append(value)
        }
        self.init(values[0], values[1], values[2], values[3])
    }

    public var octets: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3] }

    public var description: String { "\(bytes.0).\(bytes.1).\(bytes.2).\(bytes.3)" }

    public var isLoopback: Bool { bytes.0 == 127 }

    public static func == (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.octets == rhs.octets }
    public func hash(into hasher: inout Hasher) { hasher.combine(octets) }

    var inAddr: in_addr {
        in_addr(s_addr: UInt32(bytes.0) | UInt32(bytes.1) << 8 | UInt32(bytes.2) << 16 | UInt32(bytes.3) << 24)
    }

    init(_ address: in_addr) {
        let raw = address.s_addr
        self.init(UInt8(raw & 0xff), UInt8(raw >> 8 & 0xff), UInt8(raw >> 16 & 0xff), UInt8(raw >> 24))
    }
}

/// An IPv4 or IPv6 socket address.
public enum SocketAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address, port: UInt16)
    case v6(bytes: [UInt8], port: UInt16)

    /// A numeric address: "127.0.0.1", "::1" or "[::1]". No name lookup.
    public init?(numericHost host: String, port: UInt16) {
        if let v4 = IPv4Address(host) {
            self = .v4(v4, port: port)
            return
        }
        var trimmed = host
        if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") { trimmed = String(trimmed.dropFirst().dropLast()) }
        var address = in6_addr()
        guard inet_pton(AF_INET6, trimmed, &address) == 1 else { return nil }
        self = .v6(bytes: withUnsafeBytes(of: address) { Array($0) }, port: port)
    }

    public init?(_ pointer: UnsafePointer<sockaddr>?, port: UInt16? = nil) {
        guard let pointer else { return nil }
        switch Int32(pointer.pointee.sa_family) {
        case AF_INET:
            let address = UnsafeRawPointer(pointer).load(as: sockaddr_in.self)
            self = .v4(IPv4Address(address.sin_addr), port: port ?? UInt16(bigEndian: address.sin_port))
        case AF_INET6:
            let address = UnsafeRawPointer(pointer).load(as: sockaddr_in6.self)
            self = .v6(bytes: withUnsafeBytes(of: address.sin6_addr) { Array($0) },
                       port: port ?? UInt16(bigEndian: address.sin6_port))
        default:
            return nil
        }
    }

    public var port: UInt16 {
        switch self {
        case .v4(_, let port), .v6(_, let port): port
        }
    }

    public var family: Int32 {
        switch self {
        case .v4: AF_INET
        case .v6: AF_INET6
        }
    }

    public var isLoopback: Bool {
        switch self {
        case .v4(let address, _): address.isLoopback
        case .v6(let bytes, _): bytes == [UInt8](repeating: 0, count: 15) + [1]
        }
    }

    public var hostText: String {
        switch self {
        case .v4(let address, _): return address.description
        case .v6(let bytes, _):
            var address = in6_addr()
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }

    public var description: String {
        switch self {
        case .v4: "\(hostText):\(port)"
        case .v6: "[\(hostText)]:\(port)"
        }
    }

    /// Calls `body` with this address as a `sockaddr` and its length.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        switch self {
        case .v4(let address, let port):
            var raw = sockaddr_in()
            raw.sin_family = sa_family_t(AF_INET)
            raw.sin_port = port.bigEndian
            raw.sin_addr = address.inAddr
            return try withUnsafeBytes(of: &raw) {
                try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        case .v6(let bytes, let port):
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: bytes) }
            return try withUnsafeBytes(of: &raw) {
                try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }
}
