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
    /// Also map the clients' port on the tunnel's IPv6 address over PCP on IPv6, where the
    /// gateway has an IPv6 way (`TunnelTracker.ipv6`).
    public var ipv6: Bool
    /// The mapping is of the clients' own port (`.preferredPort`), moved when it moves: IPv6,
    /// where the port is opened, not translated.
    public var followsClients: Bool

    public init(gateway: IPv4Address? = nil, lease: Duration = .seconds(7200), internalPort: UInt16? = nil,
                initialRetransmit: Duration = .seconds(3), maxRetransmit: Duration = .seconds(1024), attempts: Int = 4,
                retryDelay: Duration = .seconds(30), fallBackToNATPMP: Bool = true, ipv6: Bool = true, followsClients: Bool = false) {
        self.gateway = gateway
        self.lease = lease
        self.internalPort = internalPort
        self.initialRetransmit = initialRetransmit
        self.maxRetransmit = maxRetransmit
        self.attempts = attempts
        self.retryDelay = retryDelay
        self.fallBackToNATPMP = fallBackToNATPMP
        self.ipv6 = ipv6
        self.followsClients = followsClients
    }

    /// What the IPv6 client asks with: the same lease and timing, the clients' port, and a
    /// gateway that does not speak PCP over IPv6 given up on (`.fallBack`) until the way
    /// changes, for there is no NAT-PMP over IPv6.
    public var overIPv6: PCPSettings {
        var settings = self
        settings.internalPort = nil
        settings.fallBackToNATPMP = true
        settings.followsClients = true
        return settings
    }
}
