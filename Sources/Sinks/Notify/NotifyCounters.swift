/// Notifications delivered and given up, by event kind, for `/metrics` and tests.
public struct NotifyCounters: Equatable, Sendable {
    public var sent: [NotifyEvent.Kind: Int] = [:]
    /// Given up: every try failed, the server refused it for good, or asked to wait too long.
    public var failed: [NotifyEvent.Kind: Int] = [:]
    /// Requests made, retries included.
    public var attempts = 0

    public init() {}
}
