import Domain
import Glibc
import Reactor

extension PortObservation.Source {
    /// A mapping the gateway (a home router, miniupnpd) granted with PCP, or with NAT-PMP when
    /// it speaks only that.
    public static let pcp = PortObservation.Source("pcp", rank: .lease, title: "PCP", spokenName: "PCP")
}

/// PCP on an interface, NAT-PMP as its fallback: where the tunnel is and which gateway, and how
/// to map.
public struct PCPSourceSettings: PortSourceSettings, Equatable {
    public var pcp: PCPSettings
    public var interface: String
    /// Tell the gateway to drop the mappings when portsync stops (never on a reload).
    public var deleteOnExit: Bool

    public init(pcp: PCPSettings, interface: String, deleteOnExit: Bool = false) {
        self.pcp = pcp
        self.interface = interface
        self.deleteOnExit = deleteOnExit
    }

    public var identity: PortObservation.Source { .pcp }
    public var summary: String { "PCP on \(interface)\(pcp.fallBackToNATPMP ? " (NAT-PMP if the gateway does not speak PCP)" : "")" }
    public var tunnelInterface: String? { interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PCPSource(loop: loop, settings: self, memory: memory)
    }

    /// NAT-PMP as the fallback asks: the same gateway and lease, renewed at half of it.
    var natpmp: NATPMPSettings {
        NATPMPSettings(gateway: pcp.gateway, lease: pcp.lease, renewInterval: pcp.lease / 2, internalPort: pcp.internalPort)
    }
}

/// The tunnel watcher, the PCP client and, once the gateway turned out not to speak PCP, a
/// `NATPMPClient` on the same tunnel: one source, so that only one of the two protocols asks at
/// a time. A new tunnel (a reconnect, another address or gateway) is asked with PCP first again,
/// as RFC 6886 §1.1 wants.
public final class PCPSource: PortSource {
    public let identity = PortObservation.Source.pcp
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: PCPSourceSettings
    private var client: PCPClient!
    /// NAT-PMP, while it has the tunnel.
    private var fallback: NATPMPClient?
    private var watcher: TunnelWatcher?
    private var link: TunnelTracker.State?
    private var preferred: Port?
    private var tried = false
    private var failures = 0
    private var lastGrant: Int64?

    public init(loop: EventLoop, settings: PCPSourceSettings, memory: SourceMemory) {
        self.loop = loop
        self.settings = settings
        client = PCPClient(loop: loop, settings: settings.pcp) { [unowned self] observation in self.observed(observation) }
        client.onFailure = { [unowned self] _ in self.failed() }
        client.onFallBack = { [unowned self] _ in self.fallBack() }
        if let port = memory.port { prefer(port) }
    }

    public func start() throws {
        let watcher = TunnelWatcher(loop: loop, interface: settings.interface, gateway: settings.pcp.gateway) { [unowned self] state in
            self.tunnelChanged(state)
        }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        watcher?.stop()
        watcher = nil
        let delete = final && settings.deleteOnExit
        client.stop(deleteMappings: delete)
        fallback?.stop(deleteMappings: delete)
        fallback = nil
        link = nil
    }

    public func clientsVerified(_ port: Port) {
        prefer(port)
    }

    private func prefer(_ port: Port) {
        preferred = port
        client.prefer(port)
        fallback?.prefer(port)
    }

    /// Whether NAT-PMP asks for this tunnel (tests).
    public var usesNATPMP: Bool { fallback != nil }

    private func tunnelChanged(_ state: TunnelTracker.State) {
        let previous = link
        link = state
        if let fallback {
            guard case .usable(let tunnel) = state, case .usable(let before)? = previous, tunnel == before else {
                // Another tunnel, or none: PCP first again (what NAT-PMP held is gone with it).
                fallback.stop(deleteMappings: false)
                self.fallback = nil
                if fallback.port != nil { onObservation?(PortObservation(source: identity, port: nil, time: loop.now, reason: .tunnelRecreated)) }
                client.tunnelChanged(state)
                onStatusChange?()
                return
            }
            fallback.tunnelChanged(state)
        } else {
            client.tunnelChanged(state)
        }
        onStatusChange?()
    }

    private func fallBack() {
        let natpmp = NATPMPClient(loop: loop, settings: settings.natpmp) { [unowned self] observation in
            self.observed(PortObservation(source: self.identity, port: observation.port, time: observation.time,
                                          expiry: observation.expiry, reason: observation.reason))
        }
        natpmp.onFailure = { [unowned self] _ in self.failed() }
        if let preferred { natpmp.prefer(preferred) }
        fallback = natpmp
        if let link { natpmp.tunnelChanged(link) }
        onStatusChange?()
    }

    private func observed(_ observation: PortObservation) {
        tried = true
        if observation.port != nil { lastGrant = Int64(time(nil)) }
        onObservation?(observation)
    }

    private func failed() {
        tried = true
        failures += 1
        onStatusChange?()
    }

    public var status: SourceStatus {
        var status = SourceStatus()
        status.link = link
        status.grants = client.mappingsGranted + (fallback?.mappingsGranted ?? 0)
        status.failures = failures
        status.failureStreak = fallback?.failureStreak ?? client.failureStreak
        status.lastGrant = lastGrant
        status.leaseExpiry = fallback?.leaseExpiry ?? client.leaseExpiry
        let interface = settings.interface
        switch link {
        case nil:
            status.settled = false
        case .unusable(let reason)?:
            status.state = .unavailable(.unusable(reason, interface: interface, section: "pcp", connect: "bring the network up", what: "the interface"))
        case .awaitingRoute(let tunnel)?:
            status.settled = false
            status.detail = "gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
            status.state = .waiting(.awaitingRoute(tunnel, interface: interface, peer: "the gateway \(tunnel.gateway) (\(tunnel.gatewayRule))",
                                                   network: "the network", setting: "set [pcp].gateway if the gateway is another address"))
        case .usable(let tunnel)?:
            status.settled = tried
            let port = fallback?.port ?? client.port
            let problem = fallback?.lastProblem ?? client.lastProblem
            let streak = fallback?.failureStreak ?? client.failureStreak
            let external = client.externalAddress.map { ", external address \($0)" } ?? ""
            status.detail = fallback == nil
                ? "gateway \(tunnel.gateway) (\(tunnel.gatewayRule))\(external)"
                : "gateway \(tunnel.gateway) (\(tunnel.gatewayRule)), with NAT-PMP: it does not speak PCP"
            if let port {
                status.state = .forwarding(port)
            } else if streak > 0 || problem != nil, let problem {
                status.state = .failing(SourceProblem(problem, fix: client.lastResult.map(Self.fix) ?? "turn on PCP/NAT-PMP (often \"UPnP\") on the router \(tunnel.gateway), or check [pcp].gateway"))
            } else {
                status.state = .waiting(SourceProblem("no answer yet from the gateway \(tunnel.gateway) to \(client.requestsSent + (fallback?.requestsSent ?? 0)) request(s)",
                                                      fix: "turn on PCP/NAT-PMP (often \"UPnP\") on the router \(tunnel.gateway), or check [pcp].gateway"))
            }
        }
        return status
    }

    static func fix(_ result: PCP.ResultCode) -> String {
        switch result {
        case .notAuthorized: "allow this host to map ports in the router's PCP/NAT-PMP settings (miniupnpd: an `allow` rule for its address and ports)"
        case .noResources, .userExceededQuota: "free mappings on the router, or wait: it said to ask again later"
        case .addressMismatch: "a NAT sits between portsync and the gateway: set [pcp].interface to the interface that faces the router"
        case .networkFailure: "the router has no working uplink; wait for it"
        default: "check the router's PCP settings; set [pcp].internal_port if it refuses this port"
        }
    }
}
