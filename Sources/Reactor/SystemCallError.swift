import Glibc

/// A failed system call, with the call's name and the errno it left.
/// Printed as `epoll_ctl: Bad file descriptor (errno 9)`.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The outcome of a non-blocking call: done with a value, or it would have blocked.
public enum IOResult<Value> {
    case done(Value)
    case wouldBlock
}

extension IOResult: Equatable where Value: Equatable {}

/// The one place where errno is read. Retries EINTR; throws everything else.
@inline(__always)
public func systemCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemCallError(call: name, errno: code)
    }
}

/// Like `systemCall`, but EAGAIN/EWOULDBLOCK is returned as `.wouldBlock`.
@inline(__always)
public func nonBlockingCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws(SystemCallError) -> IOResult<T> {
    do {
        return .done(try systemCall(name, body))
    } catch where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
        return .wouldBlock
    }
}
