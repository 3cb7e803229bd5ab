import CLinux
import Glibc
@testable import Reactor
import TestSupport

/// A non-blocking pipe; closed by the test.
struct Pipe {
    let readEnd: FileDescriptor
    let writeEnd: FileDescriptor

    init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        for fd in fds {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readEnd = FileDescriptor(rawValue: fds[0])
        writeEnd = FileDescriptor(rawValue: fds[1])
    }

    func write(_ text: String) {
        _ = try! writeEnd.write(Array(text.utf8))
    }

    func close() {
        readEnd.close()
        writeEnd.close()
    }
}

/// Reads everything that is there, until EAGAIN.
func drain(_ fd: FileDescriptor) throws -> [UInt8] {
    var all: [UInt8] = []
    while case .done(let bytes) = try fd.read(upTo: 4096), !bytes.isEmpty {
        all += bytes
    }
    return all
}

/// A listening TCP socket on 127.0.0.1 with a kernel-chosen port.
struct Listener {
    let fd: FileDescriptor
    let port: UInt16

    init(backlog: Int32 = 16) {
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
    func accept() -> FileDescriptor {
        FileDescriptor(rawValue: Glibc.accept(fd.rawValue, nil, nil))
    }
}
