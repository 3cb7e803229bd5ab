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

    /// Blocking accept.
    public func accept() -> FileDescriptor {
        FileDescriptor(rawValue: Glibc.accept(fd.rawValue, nil, nil))
    }
}
