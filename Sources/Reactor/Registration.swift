/// A source in the loop that owns its fd: `cancel()` deregisters it and closes the fd, once
/// (and so does the end of its life). Disabled, by its owner or by the loop after its handler
/// failed (`FailurePolicy.disable`), it leaves epoll but keeps its fd; `enable()` brings it back.
public final class Registration {
    public let fd: FileDescriptor
    public let name: String
    private let loop: EventLoop
    private let onFailure: FailurePolicy
    private let handler: EventLoop.Handler
    private var interest: Interest
    private var id: RegistrationID?
    private var closed = false

    /// Takes `fd` over, whatever happens: when it cannot be registered, it is closed before the
    /// error is thrown.
    public init(loop: EventLoop, owning fd: FileDescriptor, interest: Interest, name: String, onFailure: FailurePolicy,
                handler: @escaping EventLoop.Handler) throws {
        self.loop = loop
        self.fd = fd
        self.name = name
        self.interest = interest
        self.onFailure = onFailure
        self.handler = handler
        do {
            try enable()
        } catch {
            cancel()
            throw error
        }
    }

    /// For a handler that cannot fail.
    public convenience init(loop: EventLoop, owning fd: FileDescriptor, interest: Interest, name: String,
                            handler: @escaping (Readiness) -> Void) throws {
        // A handler that cannot throw never reaches its policy.
        try self.init(loop: loop, owning: fd, interest: interest, name: name, onFailure: .stopLoop, handler: handler)
    }

    deinit { cancel() }

    /// In epoll right now.
    public var isEnabled: Bool { id.map(loop.isRegistered) ?? false }

    public func setInterest(_ interest: Interest) throws {
        self.interest = interest
        if let id, loop.isRegistered(id) { try loop.setInterest(id, interest) }
    }

    /// Out of epoll, the fd kept open.
    public func disable() {
        if let id { loop.deregister(id) }
        id = nil
    }

    /// Back into epoll (a new id, so no event fetched before can reach it).
    public func enable() throws {
        precondition(!closed, "enable after cancel")
        guard !isEnabled else { return }
        id = try loop.register(fd, interest: interest, name: name, onFailure: onFailure, handler: handler)
    }

    /// Deregisters and closes the fd; later calls do nothing.
    public func cancel() {
        guard !closed else { return }
        closed = true
        disable()
        fd.close()
    }
}
