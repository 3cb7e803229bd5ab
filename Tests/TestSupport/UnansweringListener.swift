import CLinux
import Glibc
import Reactor

/// A TCP listener on `address` whose accept queue is full and never drained (backlog 0, one
/// connection of its own waiting): the kernel drops every further SYN, so a connection to it
/// neither succeeds nor fails, as to a host that is down or filtered.
public final class UnansweringListener {
    public let address: SocketAddress
    private let listener: Int32
    private let filler: Int32

    public init(_ address: SocketAddress) throws {
        self.address = address
        listener = socket(address.family, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        filler = socket(address.family, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        var one: Int32 = 1
        _ = setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard address.withSockAddr({ bind(listener, $0, $1) }) == 0, listen(listener, 0) == 0,
              address.withSockAddr({ Glibc.connect(filler, $0, $1) }) == 0 else {
            let error = errno
            close(listener)
            close(filler)
            throw ChildProcessError(message: "an unanswering listener on \(address): errno \(error)")
        }
    }

    deinit {
        close(filler)
        close(listener)
    }
}
