import CLinux
import Glibc
import Reactor

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
public struct Listener {
    public let fd: FileDescriptor
    public let port: UInt16

    public init(backlog: Int32 = 16) {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(listen(socketFD, backlog) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        fd = FileDescriptor(rawValue: socketFD)
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Blocking accept.
    public func accept() -> FileDescriptor {
        FileDescriptor(rawValue: Glibc.accept(fd.rawValue, nil, nil))
    }
}
