import Domain
import HTTP
import Reactor

extension PortObservation.Source {
    /// PrivateVPN's port API: a hint, what its server says it forwards, with no lease to keep.
    public static let privateVPN = PortObservation.Source("privatevpn", rank: .hint, title: "PrivateVPN",
                                                          spokenName: "PrivateVPN's port API")
}

extension PrivateVPNSettings: PortSourceSettings {
    public var identity: PortObservation.Source { .privateVPN }
    public var summary: String { "PrivateVPN's port API on \(interface)" }
    public var tunnelInterface: String? { interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PrivateVPNSource(loop: loop, settings: self)
    }
}

/// Follows the tunnel (`TunnelWatcher`) and asks PrivateVPN's API for the port of each address
/// it gets, from that address, so that the request goes through the tunnel, the API's name
/// looked up through it too (`[privatevpn] nameserver`): the shell around `PrivateVPNSession`.
/// A tunnel that goes away takes nothing back; one that comes back with another address
/// (another server) is asked again.
public final class PrivateVPNSource: PortSource {
    public let name = "privatevpn.http"
    public let identity = PortObservation.Source.privateVPN
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private var runner: MachineRunner<PrivateVPNSession>!
    private var session: PrivateVPNSession { runner.machine }
    private var watcher: TunnelWatcher?
    private var link: TunnelTracker.State?
    /// The client for the address asked from; another address gets a fresh one.
    private var client: HTTPClient?

    public init(loop: EventLoop, settings: PrivateVPNSettings) {
        self.loop = loop
        runner = MachineRunner(loop: loop, name: "privatevpn.timer", machine: PrivateVPNSession(settings: settings),
                               deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit { stop(final: false) }

    public func start() throws {
        let watcher = TunnelWatcher(loop: loop, interface: session.settings.interface) { [unowned self] state in self.tunnelChanged(state) }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        watcher?.stop()
        watcher = nil
        link = nil
        runner.stop()
        client?.close()
        client = nil
    }

    public func clientsVerified(_ port: Port) {}

    private func tunnelChanged(_ state: TunnelTracker.State) {
        link = state
        let address: IPv4Address? = if case .usable(let tunnel) = state { tunnel.address } else { nil }
        runner.send(.tunnelAddress(address))
        onStatusChange?()
    }

    private func perform(_ effect: PrivateVPNSession.Effect) {
        switch effect {
        case .send(let request, let address):
            // The session asks only about the address of a usable tunnel, the one `link` holds.
            guard case .usable(let tunnel)? = link, tunnel.address == address else {
                return runner.send(.requestFailed(.connect(.unreachable)))
            }
            let source = SocketAddress.v4(address, port: 0)
            if client?.sourceAddress != source {
                client?.close()
                let settings = session.settings
                client = HTTPClient(loop: loop, name: name, url: settings.url, tls: settings.tls, sourceAddress: source,
                                    connectTimeout: settings.requestTimeout, responseTimeout: settings.requestTimeout,
                                    resolver: ResolverConfiguration(nameServers: settings.nameServers.map { .v4($0, port: 53) }))
            }
            client?.lookupRoute = LookupRoute(interface: tunnel.interface, index: tunnel.index, address: tunnel.address)
            loop.logger.trace(name, "→ GET \(request.target) from \(address)")
            client?.send(request) { [unowned self] result in
                switch result {
                case .success(let response):
                    loop.logger.trace(name, "← \(response.status) \(response.bodyExcerpt)")
                    runner.send(.responseReceived(response))
                case .failure(let error):
                    loop.logger.trace(name, "← failed: \(error)")
                    runner.send(.requestFailed(error))
                }
                // Asked again only in minutes: the connection is not kept open until then.
                client?.closeIdleConnection()
                onStatusChange?()
            }
        case .port(let port, let reason):
            onObservation?(PortObservation(source: identity, port: port, time: loop.now, reason: reason))
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    public var status: SourceStatus {
        var status = SourceStatus()
        status.link = link
        status.failureStreak = session.failureStreak
        let interface = session.settings.interface
        switch (link, session.outcome) {
        case (nil, _):
            status.settled = false
        case (.unusable(let reason)?, _):
            status.state = .unavailable(.unusable(reason, interface: interface, section: "privatevpn", connect: "connect to PrivateVPN (OpenVPN)"))
        case (.awaitingRoute?, _):
            status.settled = false
            status.state = .waiting(SourceProblem("the tunnel \(interface) has no route yet", fix: "wait for the VPN to finish connecting"))
        case (.usable?, nil):
            status.settled = false
            status.state = .waiting(SourceProblem("asking PrivateVPN for the port of \(session.address.map(String.init(describing:)) ?? "the tunnel")",
                                                  fix: "wait for the answer"))
        case (.usable?, .forwarding(let port)?):
            status.state = .forwarding(port)
        case (.usable?, .unsupported?):
            status.state = .failing(SourceProblem("PrivateVPN forwards no port to \(session.address.map(String.init(describing:)) ?? "the tunnel") ({\"supported\":false})",
                                                  fix: "connect over OpenVPN: PrivateVPN forwards a port on its OpenVPN servers only, not over WireGuard"))
        case (.usable?, .failed(let problem)?):
            status.state = .failing(problem)
        }
        if let address = session.address { status.detail = "\(session.settings.url.address(of: session.settings.url.basePath)) for \(address)" }
        return status
    }
}

extension PrivateVPNSession: LoopStateMachine {}
