/// What a BitTorrent client says of whether peers reach it (qBittorrent's `connection_status`,
/// libtorrent's `has_incoming_connections` and listen state): the clients' sessions read it,
/// the connectability verdict weighs it.
public enum ConnectionStatus: String, Equatable, Sendable {
    /// An incoming connection arrived since it began listening.
    case connected
    /// None yet.
    case firewalled
    /// Not listening.
    case disconnected
}
