import CLinux
import Glibc

/// An address the kernel takes as a `sockaddr` and its length (IPv4/IPv6, netlink, AF_UNIX).
public protocol SockAddrConvertible {
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R
}

extension SocketAddress: SockAddrConvertible {}

/// A socket, with one wrapper per socket call. Every socket is non-blocking and close-on-exec
/// from its creation, and every send passes `MSG_NOSIGNAL`: a peer that closed its end gives
/// EPIPE (`TCPConnectionError.reset`), never a SIGPIPE, so the process needs no global
/// `SIGPIPE` disposition. Reads go through `fd.read`. Whoever creates a socket closes it
/// (often through the `Registration` that owns its fd).
public struct Socket: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case stream
        case datagram
        case raw

        var rawValue: Int32 {
            switch self {
            case .stream: Int32(SOCK_STREAM.rawValue)
            case .datagram: Int32(SOCK_DGRAM.rawValue)
            case .raw: Int32(SOCK_RAW.rawValue)
            }
        }
    }

    public let fd: FileDescriptor

    /// A socket on an existing descriptor (one that `accept` returned, one a test made).
    public init(_ fd: FileDescriptor) {
        self.fd = fd
    }

    /// `socket(2)`, non-blocking and close-on-exec. `name` is the call as error messages say it.
    public init(family: Int32, kind: Kind, protocol socketProtocol: Int32 = 0, name: String = "socket") throws {
        fd = FileDescriptor(rawValue: try systemCall(name) {
            Glibc.socket(family, kind.rawValue | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, socketProtocol)
        })
    }

    /// A new socket made ready by `setUp` (options, bind, connect, listen), and closed again
    /// when a step of it fails.
    public init(family: Int32, kind: Kind, protocol socketProtocol: Int32 = 0, name: String = "socket",
                setUp: (Socket) throws -> Void) throws {
        try self.init(family: family, kind: kind, protocol: socketProtocol, name: name)
        do {
            try setUp(self)
        } catch {
            close()
            throw error
        }
    }

    public var description: String { "socket \(fd.rawValue)" }

    public func close() {
        fd.close()
    }

    /// `setsockopt(2)` with an integer value (a flag, a buffer size, an interface index).
    public func setOption(_ level: Int32, _ option: Int32, _ value: Int32, name: String) throws(SystemCallError) {
        var value = value
        _ = try systemCall("setsockopt \(name)") {
            setsockopt(fd.rawValue, level, option, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// `SO_BINDTODEVICE`: the socket's packets leave through `interface` alone, whatever the
    /// routes say (no privilege needed since Linux 5.7, for a socket not bound to one yet).
    public func bind(toDevice interface: String) throws(SystemCallError) {
        _ = try systemCall("setsockopt SO_BINDTODEVICE \(interface)") {
            interface.withCString { setsockopt(fd.rawValue, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
        }
    }

    public func bind(to address: some SockAddrConvertible, name: String = "bind") throws {
        _ = try address.withSockAddr { pointer, length in
            try systemCall(name) { Glibc.bind(fd.rawValue, pointer, length) }
        }
    }

    /// `connect(2)`. A TCP handshake that has to wait (EINPROGRESS) is no error: the socket
    /// becomes writable when it ends, and `pendingError` then says how.
    public func connect(to address: some SockAddrConvertible, name: String = "connect") throws {
        do {
            _ = try address.withSockAddr { pointer, length in
                try systemCall(name) { Glibc.connect(fd.rawValue, pointer, length) }
            }
        } catch let error as SystemCallError where error.errno == .inProgress {
            return
        }
    }

    public func listen(backlog: Int32) throws(SystemCallError) {
        _ = try systemCall("listen") { Glibc.listen(fd.rawValue, backlog) }
    }

    /// The next pending connection, non-blocking and close-on-exec, or `.wouldBlock`.
    public func accept() throws(SystemCallError) -> IOResult<Socket> {
        switch try nonBlockingCall("accept", { accept4(fd.rawValue, nil, nil, CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC) }) {
        case .done(let raw): .done(Socket(FileDescriptor(rawValue: raw)))
        case .wouldBlock: .wouldBlock
        }
    }

    /// The address the socket is bound to (the port the kernel picked for port 0).
    public func localAddress() throws -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        return try withUnsafeMutablePointer(to: &storage) { storage in
            try storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                _ = try systemCall("getsockname") { getsockname(fd.rawValue, pointer, &length) }
                return SocketAddress(pointer)
            }
        }
    }

    /// `SO_ERROR`: how a non-blocking connect ended; nil when it succeeded.
    public func pendingError() throws(SystemCallError) -> Errno? {
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try systemCall("getsockopt SO_ERROR") { getsockopt(fd.rawValue, SOL_SOCKET, SO_ERROR, &code, &length) }
        return code == 0 ? nil : Errno(rawValue: code)
    }

    /// Sends as much of `bytes` as the kernel takes now, with `MSG_NOSIGNAL`.
    public func send(_ bytes: UnsafeRawBufferPointer, name: String = "send") throws(SystemCallError) -> IOResult<Int> {
        try nonBlockingCall(name) { Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    public func send(_ bytes: [UInt8], name: String = "send") throws -> IOResult<Int> {
        try bytes.withUnsafeBytes { buffer in try send(buffer, name: name) }
    }

    /// One datagram to `address` (an unconnected socket: netlink, the systemd notify socket).
    public func send(_ bytes: [UInt8], to address: some SockAddrConvertible, name: String = "sendto") throws -> IOResult<Int> {
        try bytes.withUnsafeBytes { buffer in
            try address.withSockAddr { pointer, length in
                try nonBlockingCall(name) {
                    sendto(fd.rawValue, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL), pointer, length)
                }
            }
        }
    }
}
