import Domain
import Reactor

extension PortObservation.Source {
    /// Perfect Privacy forwards ports computed from the tunnel's address: nothing is asked.
    public static let perfectPrivacy = PortObservation.Source("perfectprivacy", rank: .hint, title: "Perfect Privacy",
                                                              spokenName: "Perfect Privacy's ports")
}

/// Perfect Privacy's default forwarded ports (its FAQ, "How are the default forwarding ports
/// being calculated?"): 10000, 20000 and 30000, each plus the last 12 bits of the tunnel's
/// IPv4 address. Pure.
public enum PerfectPrivacyPorts {
    public static func ports(for address: IPv4Address) -> [Port] {
        let octets = address.octets
        let base = UInt16(octets[2] & 0x0F) << 8 | UInt16(octets[3])
        return [10_000, 20_000, 30_000].map { Port(UInt16($0) + base)! }
    }
}

public struct PerfectPrivacySettings: PortSourceSettings, Equatable {
    /// The tunnel interface (OpenVPN's tun0, or WireGuard's).
    public var interface: String
    /// Which of the three ports the clients take (a client's own `port_index` picks another).
    public var portIndex: Int

    public init(interface: String, portIndex: Int = 0) {
        self.interface = interface
        self.portIndex = portIndex
    }

    public var identity: PortObservation.Source { .perfectPrivacy }
    public var summary: String { "Perfect Privacy's ports on \(interface)" }
    public var tunnelInterface: String? { interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PerfectPrivacySource(loop: loop, settings: self)
    }
}

/// Follows the tunnel's address: every address it gets names its three ports. A tunnel that
/// goes away takes nothing back (the clients keep their port until an address names another);
/// one that comes back with another address (another server) names new ports.
public final class PerfectPrivacySource: PortSource {
    public let identity = PortObservation.Source.perfectPrivacy
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: PerfectPrivacySettings
    private var watcher: TunnelWatcher?
    private var link: TunnelTracker.State?
    private var address: IPv4Address?

    public init(loop: EventLoop, settings: PerfectPrivacySettings) {
        self.loop = loop
        self.settings = settings
    }

    public func start() throws {
        // No gateway is asked anything: its rule only decides when the tunnel counts as routed.
        let watcher = TunnelWatcher(loop: loop, interface: settings.interface) { [unowned self] state in self.tunnelChanged(state) }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        watcher?.stop()
        watcher = nil
        link = nil
    }

    public func clientsVerified(_ port: Port) {}

    private func tunnelChanged(_ state: TunnelTracker.State) {
        link = state
        let tunnel: Tunnel? = switch state {
        case .usable(let tunnel), .awaitingRoute(let tunnel): tunnel
        case .unusable: nil
        }
        guard let tunnel, tunnel.address != address else {
            onStatusChange?()
            return
        }
        let before = address
        address = tunnel.address
        let ports = PerfectPrivacyPorts.ports(for: tunnel.address)
        let port = ports[min(settings.portIndex, ports.count - 1)]
        loop.logger.info("perfectprivacy", "tunnel address \(tunnel.address): ports \(ports.map(\.description).joined(separator: ", "))")
        onObservation?(PortObservation(source: identity, port: port, time: loop.now, ports: ports,
                                       reason: before == nil ? .sourceChanged : .tunnelRecreated))
    }

    public var status: SourceStatus {
        var status = SourceStatus()
        status.link = link
        switch link {
        case nil:
            status.settled = false
        case .unusable(let reason)?:
            status.state = .unavailable(.unusable(reason, interface: settings.interface, section: "perfectprivacy", connect: "connect to Perfect Privacy"))
        case .usable?, .awaitingRoute?:
            if let address {
                let ports = PerfectPrivacyPorts.ports(for: address)
                status.state = .forwarding(ports[min(settings.portIndex, ports.count - 1)])
                status.detail = "tunnel address \(address)"
            }
        }
        return status
    }
}
