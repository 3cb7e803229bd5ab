/// What a watcher saw: a port (or none right now) from one source at one time. A NAT-PMP
/// mapping also has a lease; a file hint does not expire.
public struct PortObservation: Equatable, Sendable {
    /// Which source saw it, and how much its word counts. Each source's folder declares its own
    /// (`.natpmp` beside the NAT-PMP client): a new source adds a name, not a case.
    public struct Source: Hashable, Sendable, CustomStringConvertible {
        /// The name in logs, `status`, the history and the metrics: `natpmp`, `proton-file`.
        public let rawValue: String
        public let rank: SourceRank
        /// Its short name, for `doctor` and `status`: "port file", "NAT-PMP".
        public let title: String
        /// How a person names it at the start of a sentence: "the ProtonVPN file".
        public let spokenName: String

        public init(_ rawValue: String, rank: SourceRank, title: String, spokenName: String) {
            self.rawValue = rawValue
            self.rank = rank
            self.title = title
            self.spokenName = spokenName
        }

        public var description: String { rawValue }
        public static func == (left: Source, right: Source) -> Bool { left.rawValue == right.rawValue }
        public func hash(into hasher: inout Hasher) { hasher.combine(rawValue) }
    }

    public let source: Source
    /// nil: the source says there is no port right now (never "port 0").
    public let port: Port?
    public let time: Instant
    /// When the observation stops counting; nil: until the next one.
    public let expiry: Instant?
    /// Every port the source forwards, in its order, when it forwards several (Gluetun can);
    /// `port` is the one its `port_index` picks. A client's own `port_index` picks from these.
    public let ports: [Port]
    /// Why the source names this port (or none) if it differs from the one before: a file or
    /// Gluetun only knows that it changed or emptied; NAT-PMP knows a renewal from a lapse, a
    /// restarted gateway and a recreated tunnel.
    public let reason: ChangeReason

    /// `ports`: nil when the source forwards one port, `port`. `reason`: nil for "changed", or
    /// "emptied" when there is no port.
    public init(source: Source, port: Port?, time: Instant, expiry: Instant? = nil, ports: [Port]? = nil,
                reason: ChangeReason? = nil) {
        self.source = source
        self.port = port
        self.time = time
        self.expiry = expiry
        self.ports = ports ?? port.map { [$0] } ?? []
        self.reason = reason ?? (port == nil ? .sourceEmptied : .sourceChanged)
    }
}

/// How much a source's word counts: the live port of a higher rank outranks every lower one;
/// among equals the newer wins.
public enum SourceRank: Int, Comparable, Sendable {
    /// Repeats what someone was told: a file the VPN app writes, a control server's answer.
    case hint
    /// A lease the gateway itself granted just now, and keeps granting.
    case lease

    public static func < (left: SourceRank, right: SourceRank) -> Bool { left.rawValue < right.rawValue }
}
