import CLinux
import Glibc
import Reactor

/// An eventfd in the loop: `signal()` any number of times, and the handler runs once in the
/// next wakeup. Used to run work after the current handler has returned.
public final class Wakeup {
    private let source: Registration

    /// A failed read of the eventfd stops the loop: a test must not go on without its wakeups.
    public init(loop: EventLoop, name: String, handler: @escaping () -> Void) throws {
        let fd = FileDescriptor(rawValue: try systemCall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) })
        source = try Registration(loop: loop, owning: fd, interest: .readable, name: name, onFailure: .stopLoop) { _ in
            var counter: UInt64 = 0
            // One read resets the counter however often it was signalled.
            guard case .done = try withUnsafeMutableBytes(of: &counter, { try fd.read(into: $0) }) else { return }
            handler()
        }
    }

    public func signal() throws {
        var one: UInt64 = 1
        _ = try withUnsafeBytes(of: &one) { try source.fd.write($0) }
    }

    public func close() {
        source.cancel()
    }
}
