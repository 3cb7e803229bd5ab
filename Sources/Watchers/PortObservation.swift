import Domain
import Reactor

/// What a watcher saw: a port (or none right now) from one source at one time. A NAT-PMP
/// mapping also has a lease; a file hint does not expire.
public struct PortObservation: Equatable, Sendable {
    public enum Source: String, Sendable, CaseIterable {
        case protonFile = "proton-file"
        case natpmp
        case gluetun
        case gluetunFile = "gluetun-file"

        /// A live mapping from the gateway outranks a file that repeats what someone was told.
        public var isAuthority: Bool { self == .natpmp }
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
