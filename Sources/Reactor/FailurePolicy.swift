/// What the loop does when a source's handler throws. Every registration whose handler can
/// throw says which.
public enum FailurePolicy {
    /// The error is logged with the source's name, the source is disabled (it leaves epoll; its
    /// fd stays open for its owner) and `notify` tells the owner, which may report it, start
    /// over or give up.
    case disable(notify: (any Error) -> Void)
    /// The source is vital (signals, the tunnel's netlink): the error is logged, the loop stops
    /// and `run()` throws `SourceFailure`, so the daemon exits non-zero and systemd's
    /// `Restart=on-failure` starts it again.
    case stopLoop
}

/// A vital source's handler failed: what the loop throws.
public struct SourceFailure: Error, CustomStringConvertible {
    public let source: String
    public let error: any Error

    public var description: String { "\(source): \(error)" }
}
