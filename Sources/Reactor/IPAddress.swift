import CLinux
import Glibc

/// An IPv6 address as sixteen bytes in network order.
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    public let octets: [UInt8]

    /// nil unless `octets` holds sixteen bytes.
    public init?(octets: [UInt8]) {
        guard octets.count == 16 else { return nil }
        self.octets = octets
    }

    /// The text form ("fd00:2::1"), no brackets, no scope.
    public init?(_ text: String) {
        var address = in6_addr()
        guard inet_pton(AF_INET6, text, &address) == 1 else { return nil }
        octets = withUnsafeBytes(of: address) { Array($0) }
    }

    /// fe80::/10: valid on one link only, so a socket needs that link's index (its scope).
    public var isLinkLocal: Bool { octets[0] == 0xFE && octets[1] & 0xC0 == 0x80 }

    public var description: String { SocketAddress.v6(bytes: octets, port: 0).hostText }
}

/// An IPv4 or an IPv6 address: what a gateway protocol that speaks both (PCP) is given.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }

    /// The address with `port` as a socket takes it; a link-local IPv6 address gets `scope`
    /// (the interface's index), as the kernel needs to bind or connect to one.
    public func socketAddress(port: UInt16, scope: Int32) -> IPSocketAddress {
        switch self {
        case .v4(let address): IPSocketAddress(address: self, port: port, scope: 0, plain: .v4(address, port: port))
        case .v6(let address): IPSocketAddress(address: self, port: port, scope: address.isLinkLocal ? UInt32(bitPattern: scope) : 0,
                                               plain: .v6(bytes: address.octets, port: port))
        }
    }
}

/// An IP socket address with the scope an IPv6 link-local address needs (`sin6_scope_id`).
public struct IPSocketAddress: SockAddrConvertible, Sendable {
    public let address: IPAddress
    public let port: UInt16
    public let scope: UInt32
    fileprivate let plain: SocketAddress

    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        guard case .v6(let bytes, let port) = plain, scope != 0 else { return try plain.withSockAddr(body) }
        var raw = sockaddr_in6()
        raw.sin6_family = sa_family_t(AF_INET6)
        raw.sin6_port = port.bigEndian
        raw.sin6_scope_id = scope
        withUnsafeMutableBytes(of: &raw.sin6_addr) { $0.copyBytes(from: bytes) }
        return try withUnsafeBytes(of: &raw) {
            try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
    }
}
