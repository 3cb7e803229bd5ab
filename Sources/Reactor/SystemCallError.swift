import Glibc

/// A failed system call, with the call's name and the errno it left.
/// Printed as `epoll_ctl: Bad file descriptor (errno 9)`.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Errno

    public init(call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(errno)"
    }
}

/// The outcome of a non-blocking call: done with a value, or it would have blocked.
public enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

extension IOResult: Equatable where Value: Equatable {}

/// The one place where errno is read, right after the call. Retries EINTR; throws everything
/// else.
@inline(__always)
public func systemCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno.current
        if code == .interrupted { continue }
        throw SystemCallError(call: name, errno: code)
    }
}

/// Like `systemCall`, but EAGAIN/EWOULDBLOCK is returned as `.wouldBlock`.
@inline(__always)
public func nonBlockingCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemCallError) -> IOResult<T> {
    do {
        return .done(try systemCall(name, body))
    } catch where error.errno == .wouldBlock {
        return .wouldBlock
    }
}
