import Reactor

/// How the PCP client asks for its mappings.
public struct PCPSettings: Equatable, Sendable {
    /// A configured gateway; nil: found by the tunnel tracker (`GatewayRule`).
    public var gateway: IPv4Address?
    /// The lifetime asked for; the mapping is renewed at half the lifetime granted.
    public var lease: Duration
    /// A fixed internal port; nil: the port in use at the first mapping.
    public var internalPort: UInt16?
    /// §8.1.1: the first retransmission wait (IRT), doubling up to `maxRetransmit` (MRT), never
    /// past a lease that is still running.
    public var initialRetransmit: Duration
    public var maxRetransmit: Duration
    /// Tries for a mapping with no lease to protect before the gateway counts as silent.
    public var attempts: Int
    /// Pause after a failed cycle before the next, unless the gateway's error asks for longer
    /// (its lifetime: "do not retry before", §8.3, at most 30 minutes).
    public var retryDelay: Duration
    /// Ask NAT-PMP instead when the gateway does not speak PCP (UNSUPP_VERSION with version 0,
    /// port unreachable, or silence).
    public var fallBackToNATPMP: Bool

    public init(gateway: IPv4Address? = nil, lease: Duration = .seconds(7200), internalPort: UInt16? = nil,
                initialRetransmit: Duration = .seconds(3), maxRetransmit: Duration = .seconds(1024), attempts: Int = 4,
                retryDelay: Duration = .seconds(30), fallBackToNATPMP: Bool = true) {
        self.gateway = gateway
        self.lease = lease
        self.internalPort = internalPort
        self.initialRetransmit = initialRetransmit
        self.maxRetransmit = maxRetransmit
        self.attempts = attempts
        self.retryDelay = retryDelay
        self.fallBackToNATPMP = fallBackToNATPMP
    }
}
