/// Why portsync moved the clients to a port, or touched them on the same one: what the history,
/// `status`, the hook (`PORTSYNC_REASON`), the metrics and STATUS= name. The source that saw the
/// change knows its reason; the coordinator adds the ones only it can see (the first port of a
/// run, a reload, a rotation too fast to be normal), a client session the repairs.
public enum ChangeReason: String, CaseIterable, Sendable {
    /// The first port of this run.
    case started = "start"
    /// The gateway answered a renewal with another port.
    case renewedToNewPort = "renewed-new-port"
    /// The lease ran out before it was renewed (a missed renewal, a suspend): the port is gone,
    /// and the next mapping may have another.
    case leaseLapsed = "lease-lapsed"
    /// The gateway's epoch went back or jumped: it restarted and lost its mappings.
    case gatewayRestarted = "gateway-restarted"
    /// The tunnel went away and came back, or came back with another address or gateway (a
    /// reconnect, another server).
    case tunnelRecreated = "tunnel-recreated"
    /// The provider's file (or Gluetun) names another port.
    case sourceChanged = "source-changed"
    /// The provider's file was emptied (or Gluetun has no port): the clients keep the last one.
    case sourceEmptied = "source-emptied"
    /// A client's port was changed behind portsync's back and set back.
    case clientDrifted = "client-drifted"
    /// A client's listener did not listen (or was bound to a vanished interface) and was made
    /// to re-open its sockets.
    case staleListener = "stale-listener"
    /// Several new ports within minutes: two tunnels that share one WireGuard key take the
    /// mapping from each other.
    case rapidRotation = "rapid-rotation"
    /// A reloaded configuration chose another source or port.
    case reload

    /// In words, for `status` and `history`.
    public var explanation: String {
        switch self {
        case .started: "the first port since portsync started"
        case .renewedToNewPort: "the gateway gave a new port on renewal"
        case .leaseLapsed: "the lease lapsed (a missed renewal or a suspend)"
        case .gatewayRestarted: "the gateway restarted (its epoch reset) and lost its mappings"
        case .tunnelRecreated: "the tunnel was recreated or the server switched"
        case .sourceChanged: "the provider's file or control server named another port"
        case .sourceEmptied: "the provider's file was emptied; the clients keep their port"
        case .clientDrifted: "a client's port was changed behind portsync's back and set back"
        case .staleListener: "a client's listener was dead and was made to re-open its sockets"
        case .rapidRotation: "several new ports within minutes: two tunnels sharing one WireGuard key (two devices with one configuration) take the port from each other"
        case .reload: "the configuration was reloaded"
        }
    }

    /// A repair of a client on the port it already had, not a new port.
    public var isRepair: Bool { self == .clientDrifted || self == .staleListener }
}
