import Reactor

/// How the NAT-PMP client asks for its mapping.
public struct NATPMPSettings: Equatable, Sendable {
    /// A configured gateway; nil: found by the tunnel tracker (`GatewayRule`).
    public var gateway: IPv4Address?
    /// The lifetime asked for (ProtonVPN grants 60 s at most).
    public var lease: Duration
    /// How often the mapping is renewed (never later than 3/4 of the lifetime granted).
    public var renewInterval: Duration
    /// A fixed internal port; nil: the port in use at the first mapping.
    public var internalPort: UInt16?
    /// Send internal port 0, as ProtonVPN's documented natpmpc loop does (RFC-strict gateways
    /// refuse it).
    public var zeroInternalPort: Bool
    /// The first retransmission wait; it doubles, up to `maxRetransmit`.
    public var initialRetransmit: Duration
    public var maxRetransmit: Duration
    /// Tries for a mapping that has no lease left to protect, before the cycle counts as failed.
    public var attempts: Int
    /// Pause after a failed cycle (no answer, or a refusal) before the next one.
    public var retryDelay: Duration

    public init(gateway: IPv4Address? = nil, lease: Duration = .seconds(60), renewInterval: Duration = .seconds(45),
                internalPort: UInt16? = nil, zeroInternalPort: Bool = false, initialRetransmit: Duration = .milliseconds(250),
                maxRetransmit: Duration = .seconds(8), attempts: Int = 9, retryDelay: Duration = .seconds(10)) {
        self.gateway = gateway
        self.lease = lease
        self.renewInterval = renewInterval
        self.internalPort = internalPort
        self.zeroInternalPort = zeroInternalPort
        self.initialRetransmit = initialRetransmit
        self.maxRetransmit = maxRetransmit
        self.attempts = attempts
        self.retryDelay = retryDelay
    }
}
