import HTTP

/// A client's port settings as its session first read them (at connect, before portsync
/// changed anything): the port it listens on, and what stands in the way of the port portsync
/// gives it, as values. `portsync doctor` prints them; their words are made there.
public struct ClientInspection: Equatable, Sendable {
    public enum Finding: Equatable, Sendable {
        /// The client picks a port at random: qBittorrent's and Deluge's `random_port`,
        /// Transmission's `peer-port-random-on-start`. portsync turns it off with the port.
        case randomPort
        /// The client's own UPnP/NAT-PMP forwarding is on (qBittorrent's `upnp` when
        /// `disable_upnp`, Transmission's `port-forwarding-enabled`): it cannot reach a VPN's
        /// gateway, and portsync turns it off with the port.
        case portForwarding
        /// qBittorrent 5.1's `announce_port` is not 0: trackers hear of that port, whatever
        /// portsync sets (it takes effect only after a restart, so portsync leaves it).
        case announcePort(Int)
        /// `[qbittorrent] interface` is not among the interfaces qBittorrent lists (it lists
        /// only those that have an address), which are given.
        case interfaceNotListed(String, listed: [String])
        /// deluge-web is not connected to deluged, and was left so (`inspect`): its port
        /// settings could not be read.
        case daemonNotConnected
    }

    /// The port as the client keeps it: one, or Deluge's `listen_ports` pair; empty when it
    /// could not be read.
    public var listenPorts: [Int]
    public var findings: [Finding]

    public init(listenPorts: [Int], findings: [Finding] = []) {
        self.listenPorts = listenPorts
        self.findings = findings
    }

    /// With every secret taken out of what it quotes from the client (interface names).
    func redacted(by redaction: Redaction) -> ClientInspection {
        var copy = self
        copy.findings = findings.map { finding in
            guard case .interfaceNotListed(let interface, let listed) = finding else { return finding }
            return .interfaceNotListed(interface, listed: listed.map { redaction($0) })
        }
        return copy
    }
}
