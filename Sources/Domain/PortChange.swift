/// A port handed to the clients: the one to listen on, what it was before, and which source
/// named it (the command hook passes both on; the others only need the port).
public struct PortChange: Equatable, Sendable {
    public let port: Port
    /// The port handed off before this one; nil at the first hand-off.
    public let previous: Port?
    /// The source's name as in logs and `status`, e.g. `natpmp`, `proton-file`.
    public let source: String
    /// Every port the source forwards (Gluetun can forward several), `port` among them: a
    /// client with a `port_index` of its own takes its port from here.
    public let ports: [Port]
    /// Why the port is handed over (the hook passes it on as `PORTSYNC_REASON`).
    public let reason: ChangeReason

    /// `ports`: nil when the source forwards one port, `port`.
    public init(port: Port, previous: Port? = nil, source: String = "", ports: [Port]? = nil, reason: ChangeReason = .started) {
        self.port = port
        self.previous = previous
        self.source = source
        self.ports = ports ?? [port]
        self.reason = reason
    }

    /// The change as a client with `portIndex` sees it: the source's port at that index (with no
    /// previous one), nil when the source forwards fewer ports; unchanged without an index.
    public func selecting(_ portIndex: Int?) -> PortChange? {
        guard let portIndex else { return self }
        guard portIndex < ports.count else { return nil }
        return PortChange(port: ports[portIndex], source: source, ports: ports, reason: reason)
    }
}
