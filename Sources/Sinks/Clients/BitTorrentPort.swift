import HTTP
import Reactor

/// Recognises the client's BitTorrent port given as its Web UI's URL: on this machine, a port
/// that dropped an HTTP request unanswered (qBittorrent resets it at once) and has a UDP socket
/// bound beside it (µTP, UDP trackers, DHT: every BitTorrent client binds one, no web server
/// does) is where peers connect, not an API.
public enum BitTorrentPort {
    /// The failure to report instead of `error`, when `url` is such a port; nil otherwise.
    public static func diagnosis(_ url: HTTPURL, _ error: HTTPClientError,
                                 udpSockets: (UInt16) -> [ListeningSockets.Listener]? = { try? ListeningSockets.udpSockets(port: $0) }) -> HTTPClientError? {
        switch error {
        case .connect(.reset), .closedUnanswered: break
        default: return nil
        }
        // A socket bound to the URL's address, or to every address when the URL is loopback:
        // a wildcard socket says nothing about a port on another machine.
        let host = url.bareHost == "localhost" ? "127.0.0.1" : url.bareHost
        let bound = host.contains(":") ? "[\(host)]" : host
        let loopback = SocketAddress(numericHost: host, port: url.port)?.isLoopback == true
        let addresses = loopback ? [bound, "0.0.0.0", "[::]"] : [bound]
        guard let sockets = udpSockets(url.port), sockets.contains(where: { addresses.contains($0.address) }) else { return nil }
        return .otherProtocol("port \(url.port) is a BitTorrent port (peers connect there; a UDP socket shares it and it dropped the HTTP request), not the Web UI: set url to the Web UI's address and port")
    }
}
