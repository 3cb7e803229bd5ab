import Domain
import Glibc
import Reactor

extension PortObservation.Source {
    /// A mapping the gateway (a home router, miniupnpd) granted with PCP, or with NAT-PMP when
    /// it speaks only that.
    public static let pcp = PortObservation.Source("pcp", rank: .lease, title: "PCP", spokenName: "PCP")
}

/// PCP on an interface or on the router of the default route, NAT-PMP as its fallback: where
/// the gateway is, how to map, and (for `auto`) which tunnel it stands back for.
public struct PCPSourceSettings: PortSourceSettings, Equatable {
    public var pcp: PCPSettings
    /// The interface that faces the router, or a tunnel; empty: whatever the default route
    /// leads through, with its gateway (`TunnelTracker.Target.defaultRoute`).
    public var interface: String
    /// Tell the gateway to drop the mappings when portsync stops (never on a reload).
    public var deleteOnExit: Bool
    /// `auto`: the router is asked only while this gate is open (no tunnel).
    public var standBack: RouterGate.Settings?

    public init(pcp: PCPSettings, interface: String, deleteOnExit: Bool = false, standBack: RouterGate.Settings? = nil) {
        self.pcp = pcp
        self.interface = interface
        self.deleteOnExit = deleteOnExit
        self.standBack = standBack
    }

    public var identity: PortObservation.Source { .pcp }
    public var summary: String {
        let place = interface.isEmpty ? "the router of the default route" : interface
        let fallback = pcp.fallBackToNATPMP ? " (NAT-PMP if the gateway does not speak PCP)" : ""
        return "PCP on \(place)\(fallback)\(standBack.map { ", while \($0.tunnel) is absent" } ?? "")"
    }
    public var tunnelInterface: String? { interface.isEmpty ? nil : interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PCPSource(loop: loop, settings: self, memory: memory)
    }

    /// NAT-PMP as the fallback asks: the same gateway and lease, renewed at half of it.
    var natpmp: NATPMPSettings {
        NATPMPSettings(gateway: pcp.gateway, lease: pcp.lease, renewInterval: pcp.lease / 2, internalPort: pcp.internalPort)
    }

    /// What the watcher follows.
    var tracker: TunnelTracker {
        interface.isEmpty ? TunnelTracker(defaultRouteWith: pcp.gateway) : TunnelTracker(interface: interface, gateway: pcp.gateway)
    }
}

/// The network watcher, the PCP client and, once the gateway turned out not to speak PCP, a
/// `NATPMPClient` on the same network: one source, so that only one of the two protocols asks
/// at a time. A new network (a reconnect, another address or gateway: for the default route,
/// another router) is asked with PCP first again, as RFC 6886 §1.1 wants. With `standBack`
/// (`auto`), a second watcher follows the tunnel and a `RouterGate` says when the router may
/// be asked; when the gate shuts, the router is told to drop the mappings and nothing more is
/// sent to it. Where the gateway has an IPv6 way (`TunnelTracker.ipv6`), a second PCP client
/// maps the clients' port on the IPv6 address too (a pinhole: the port the clients were
/// verified on); it names no port of its own, and a gateway that does not answer it over IPv6
/// is left alone until that way changes.
public final class PCPSource: PortSource {
    public let identity = PortObservation.Source.pcp
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: PCPSourceSettings
    private var client: PCPClient!
    /// Over IPv6, when the settings allow it.
    private var ipv6Client: PCPClient?
    /// The watcher's IPv6 way to the gateway, and why the gateway was given up on over IPv6.
    private var ipv6Path: GatewayPath?
    private var ipv6GivenUp: String?
    /// NAT-PMP, while it has the network.
    private var fallback: NATPMPClient?
    private var watcher: TunnelWatcher?
    /// What the watcher said last.
    private var network: TunnelTracker.State?
    /// What the clients were told last (the network, or the gate's reason while it is shut).
    private var link: TunnelTracker.State?
    private var tunnelWatcher: TunnelWatcher?
    private var gate: MachineRunner<RouterGate>?
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
        if settings.pcp.ipv6 {
            let ipv6 = PCPClient(loop: loop, settings: settings.pcp.overIPv6, ipv6: true) { [unowned self] _ in self.onStatusChange?() }
            ipv6.onFallBack = { [unowned self] reason in
                self.ipv6GivenUp = reason
                self.onStatusChange?()
            }
            ipv6Client = ipv6
        }
        if let port = memory.port { prefer(port) }
    }

    public func start() throws {
        if let standBack = settings.standBack {
            let gate = MachineRunner(loop: loop, name: "pcp.gate", machine: RouterGate(settings: standBack), deadlineInput: .deadlineReached)
            gate.perform = { [unowned self] effect in self.gateChanged(effect) }
            self.gate = gate
            let tunnel = TunnelWatcher(loop: loop, interface: standBack.tunnel) { [unowned self] _ in self.look() }
            tunnelWatcher = tunnel
            try tunnel.start()
        }
        let watcher = TunnelWatcher(loop: loop, tracker: settings.tracker) { [unowned self] state in
            self.network = state
            self.look()
            self.update()
        }
        if ipv6Client != nil {
            watcher.onIPv6Change = { [unowned self] path in
                self.ipv6Path = path
                self.updateIPv6()
            }
        }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        tunnelWatcher?.stop()
        tunnelWatcher = nil
        gate?.stop()
        gate = nil
        watcher?.stop()
        watcher = nil
        let delete = final && settings.deleteOnExit
        client.stop(deleteMappings: delete)
        ipv6Client?.stop(deleteMappings: delete)
        ipv6Path = nil
        fallback?.stop(deleteMappings: delete)
        fallback = nil
        link = nil
        network = nil
    }

    public func clientsVerified(_ port: Port) {
        prefer(port)
    }

    private func prefer(_ port: Port) {
        preferred = port
        client.prefer(port)
        ipv6Client?.prefer(port)
        fallback?.prefer(port)
    }

    /// Whether NAT-PMP asks for this network (tests).
    public var usesNATPMP: Bool { fallback != nil }

    /// Why the router may not be asked now; nil: it may (or there is no gate).
    public var standingBack: RouterGate.Verdict? {
        guard let verdict = gate?.machine.verdict, !verdict.isOpen else { return nil }
        return verdict
    }

    /// Tells the gate what is there now, once the tunnel's watcher has had its first look.
    private func look() {
        guard let gate, let tunnelWatcher, tunnelWatcher.hasReported else { return }
        let portFile = settings.standBack?.portFile.map(FileContents.exists) ?? false
        gate.send(.looked(tunnelPresent: tunnelWatcher.exists, portFileExists: portFile))
    }

    private func gateChanged(_ effect: RouterGate.Effect) {
        guard case .changed(let verdict) = effect else { return }
        if verdict.isOpen {
            loop.logger.info("pcp", "no tunnel \(settings.standBack?.tunnel ?? ""): asking the router of the default route")
        } else if verdict != .unknown {
            loop.logger.info("pcp", "\(verdict)")
        }
        update()
        onStatusChange?()
    }

    /// What the clients get: the network while the gate is open (or there is none), else the
    /// gate's reason. A router left behind is told to drop what it holds first.
    private func update() {
        guard let network else { return }
        let effective: TunnelTracker.State = if let verdict = standingBack { .unusable("\(verdict)") } else { network }
        guard effective != link else { return }
        if case .usable? = link, standingBack != nil {
            client.deleteMappings()
            ipv6Client?.deleteMappings()
            if let fallback {
                fallback.stop(deleteMappings: true)
                self.fallback = nil
                if fallback.port != nil { onObservation?(PortObservation(source: identity, port: nil, time: loop.now, reason: .tunnelRecreated)) }
            }
        }
        tunnelChanged(effective)
        updateIPv6()
    }

    /// The IPv6 client asks on the IPv6 way while the network is the source's (the gate open).
    private func updateIPv6() {
        guard let ipv6Client else { return }
        let path = standingBack == nil ? ipv6Path : nil
        guard path != ipv6Client.path else { return }
        ipv6GivenUp = nil
        ipv6Client.pathChanged(path)
        onStatusChange?()
    }

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
        status.grants = client.mappingsGranted + (fallback?.mappingsGranted ?? 0)
        status.failures = failures
        status.failureStreak = fallback?.failureStreak ?? client.failureStreak
        status.lastGrant = lastGrant
        status.leaseExpiry = fallback?.leaseExpiry ?? client.leaseExpiry
        if let verdict = standingBack {
            // The source speaks through no network now: the tunnel's source has it.
            if verdict == .unknown { status.settled = false } else { status.state = .standingBy("\(verdict)") }
            return status
        }
        status.link = link
        let interface = settings.interface
        switch link {
        case nil:
            status.settled = false
        case .unusable(let reason)? where interface.isEmpty:
            status.state = .unavailable(SourceProblem("no router to ask: \(reason)",
                                                      fix: "connect to a network whose default route leads to a router, or set [pcp].interface"))
        case .unusable(let reason)?:
            status.state = .unavailable(.unusable(reason, interface: interface, section: "pcp", connect: "bring the network up", what: "the interface"))
        case .awaitingRoute(let tunnel)?:
            status.settled = false
            status.detail = "gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
            status.state = .waiting(.awaitingRoute(tunnel, interface: tunnel.interface, peer: "the gateway \(tunnel.gateway) (\(tunnel.gatewayRule))",
                                                   network: "the network", setting: "set [pcp].gateway if the gateway is another address"))
        case .usable(let tunnel)?:
            status.settled = tried
            let port = fallback?.port ?? client.port
            let problem = fallback?.lastProblem ?? client.lastProblem
            let streak = fallback?.failureStreak ?? client.failureStreak
            let external = client.externalAddress.map { ", external address \($0)" } ?? ""
            // Which gateway and why: the rule, and for the default route the way there.
            let way = tunnel.gatewayRule == .defaultRoute ? " through \(tunnel.interface) from \(tunnel.address)" : ""
            status.detail = (fallback == nil
                ? "gateway \(tunnel.gateway) (\(tunnel.gatewayRule)\(way))\(external)"
                : "gateway \(tunnel.gateway) (\(tunnel.gatewayRule)\(way)), with NAT-PMP: it does not speak PCP") + ipv6Detail
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

    /// What the IPv6 client holds, for the status line.
    private var ipv6Detail: String {
        guard let ipv6Client, let path = ipv6Client.path else { return "" }
        if ipv6GivenUp != nil { return "; IPv6: the gateway \(path.gatewayText) does not answer PCP over IPv6" }
        guard let port = ipv6Client.port else { return "; IPv6: asking \(path.gatewayText) for \(path.local)" }
        return "; IPv6: port \(port) open on \(path.local) by \(path.gatewayText)"
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
