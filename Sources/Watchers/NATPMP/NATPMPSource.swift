import Domain
import Glibc
import Reactor

extension PortObservation.Source {
    /// A live mapping from the gateway outranks a file that repeats what someone was told.
    public static let natpmp = PortObservation.Source("natpmp", rank: .lease, title: "NAT-PMP", spokenName: "NAT-PMP")
}

/// NAT-PMP on the VPN interface: where the tunnel is and which gateway, and how to map.
public struct NATPMPSourceSettings: PortSourceSettings, Equatable {
    public var natpmp: NATPMPSettings
    public var interface: String
    /// Tell the gateway to drop the mappings when portsync stops (never on a reload).
    public var deleteOnExit: Bool

    public init(natpmp: NATPMPSettings, interface: String, deleteOnExit: Bool = false) {
        self.natpmp = natpmp
        self.interface = interface
        self.deleteOnExit = deleteOnExit
    }

    public var identity: PortObservation.Source { .natpmp }
    public var summary: String { "NAT-PMP on \(interface)" }
    public var tunnelInterface: String? { interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        NATPMPSource(loop: loop, settings: self, memory: memory)
    }
}

/// The tunnel watcher and the NAT-PMP client together: the client maps on whatever tunnel the
/// watcher finds usable, and keeps the mapping renewed.
public final class NATPMPSource: PortSource {
    static let internalPortKey = "internal_port"

    public let identity = PortObservation.Source.natpmp
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: NATPMPSourceSettings
    private var client: NATPMPClient!
    private var watcher: TunnelWatcher?
    private var link: TunnelTracker.State?
    /// Mapped, or failed, at least once.
    private var tried = false
    private var failures = 0
    private var lastGrant: Int64?

    public init(loop: EventLoop, settings: NATPMPSourceSettings, memory: SourceMemory) {
        self.loop = loop
        self.settings = settings
        client = NATPMPClient(loop: loop, settings: settings.natpmp) { [unowned self] observation in
            self.tried = true
            if observation.port != nil { self.lastGrant = Int64(time(nil)) }
            self.onObservation?(observation)
        }
        if let port = memory.port { client.prefer(port) }
        if let internalPort = memory.kept[Self.internalPortKey].flatMap(UInt16.init) { client.restore(internalPort: internalPort) }
        client.onPublicAddress = { [unowned self] in self.onStatusChange?() }
        client.onFailure = { [unowned self] _ in
            self.tried = true
            self.failures += 1
            self.onStatusChange?()
        }
    }

    public func start() throws {
        let watcher = TunnelWatcher(loop: loop, interface: settings.interface, gateway: settings.natpmp.gateway) { [unowned self] state in
            self.link = state
            self.client.tunnelChanged(state)
            self.onStatusChange?()
        }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        watcher?.stop()
        watcher = nil
        client.stop(deleteMappings: final && settings.deleteOnExit)
        link = nil
    }

    public func clientsVerified(_ port: Port) {
        client.prefer(port)
    }

    public func remap() {
        client.remap()
    }

    /// The requests sent so far (tests, the idle benchmark).
    public var requestsSent: Int { client.requestsSent }

    public var status: SourceStatus {
        var status = SourceStatus()
        status.link = link
        status.grants = client.mappingsGranted
        status.failures = failures
        status.failureStreak = client.failureStreak
        status.lastGrant = lastGrant
        status.leaseExpiry = client.leaseExpiry
        status.publicAddress = client.publicAddress
        if let internalPort = client.internalPort { status.kept[Self.internalPortKey] = String(internalPort) }
        let interface = settings.interface
        switch link {
        case nil:
            status.settled = false
        case .unusable(let reason)?:
            status.state = .unavailable(.unusable(reason, interface: interface, section: "natpmp", connect: "connect the VPN"))
        case .awaitingRoute(let tunnel)?:
            status.settled = false
            status.detail = "gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
            status.state = .waiting(.awaitingRoute(tunnel, interface: interface, peer: "the gateway \(tunnel.gateway) (\(tunnel.gatewayRule))",
                                                   setting: "set [natpmp].gateway if the gateway is another address"))
        case .usable(let tunnel)?:
            status.settled = tried
            status.detail = "gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
            if let port = client.port {
                status.state = .forwarding(port)
            } else if client.failureStreak > 0 || client.lastProblem != nil, let problem = client.lastProblem {
                status.state = .failing(SourceProblem(problem, fix: "the VPN may not forward ports: ProtonVPN needs a P2P server with port forwarding; check [natpmp].gateway"))
            } else {
                status.state = .waiting(SourceProblem("no answer from the NAT-PMP gateway \(tunnel.gateway) to \(client.requestsSent) request(s)",
                                                      fix: "this connection forwards no ports. ProtonVPN: connect to a P2P server with port forwarding on; a WireGuard configuration must be made with NAT-PMP (port forwarding) on"))
            }
        }
        return status
    }
}
