import CLinux
import Glibc
import Reactor

/// A listening TCP socket on 127.0.0.1 (or ::1) with a kernel-chosen port.
public struct Listener {
    public let fd: FileDescriptor
    public let port: UInt16

    public init(backlog: Int32 = 16, ipv6: Bool = false) {
        let local: SocketAddress = ipv6 ? SocketAddress(numericHost: "::1", port: 0)! : .v4(IPv4Address(127, 0, 0, 1), port: 0)
        let socketFD = socket(local.family, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        precondition(local.withSockAddr { bind(socketFD, $0, $1) } == 0 && listen(socketFD, backlog) == 0)
        fd = FileDescriptor(rawValue: socketFD)
        port = (try? Socket(fd).localAddress())??.port ?? 0
    }

    /// A listener on `address` (a port the test chose), for a test that holds a port before
    /// a client wants it.
    public init(address: SocketAddress, backlog: Int32 = 16) throws {
        let socketFD = socket(address.family, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        guard address.withSockAddr({ bind(socketFD, $0, $1) }) == 0, listen(socketFD, backlog) == 0 else {
            let error = SystemCallError(call: "bind/listen \(address)", errno: Errno(rawValue: errno))
            close(socketFD)
            throw error
        }
        fd = FileDescriptor(rawValue: socketFD)
        port = address.port
    }

    /// Blocking accept.
    public func accept() -> FileDescriptor {
        FileDescriptor(rawValue: Glibc.accept(fd.rawValue, nil, nil))
    }
}
