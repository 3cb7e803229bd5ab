import Domain
import Glibc
import HTTP
import Reactor

extension PortObservation.Source {
    /// A port PIA's server binds for as long as it is bound again: a lease.
    public static let pia = PortObservation.Source("pia", rank: .lease, title: "PIA", spokenName: "PIA's port forwarding")
}

extension PIASettings: PortSourceSettings {
    public var identity: PortObservation.Source { .pia }
    public var summary: String { "PIA port forwarding on \(interface) (\(serverName))" }
    public var tunnelInterface: String? { interface }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PIASource(loop: loop, settings: self)
    }
}

/// The tunnel watcher and PIA's API together, the shell around `PIASession`: it follows the
/// tunnel (the server's address, when configured, is the gateway the route is checked to), asks
/// the token endpoint and the server's API port from the tunnel's address, and keeps the payload
/// and signature in their file (0600). Traces name the path, never the query (it holds the
/// token, the payload and the signature).
public final class PIASource: PortSource {
    public let name = "pia.http"
    public let identity = PortObservation.Source.pia
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: PIASettings
    private var runner: MachineRunner<PIASession>!
    private var session: PIASession { runner.machine }
    private var watcher: TunnelWatcher?
    private var link: TunnelTracker.State?
    private var tokenClient: HTTPClient?
    private var apiClient: HTTPClient?
    private var lastGrant: Int64?

    public init(loop: EventLoop, settings: PIASettings) {
        self.loop = loop
        self.settings = settings
        let kept = Self.readKept(settings, loop.logger)
        runner = MachineRunner(loop: loop, name: "pia.session", machine: PIASession(settings: settings, kept: kept), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.afterBatch = { [unowned self] in self.onStatusChange?() }
    }

    deinit { stop(final: false) }

    /// The requests sent so far, by kind (tests).
    public var tokensAsked: Int { session.tokensAsked }
    public var signaturesAsked: Int { session.signaturesAsked }
    public var binds: Int { session.binds }

    public func start() throws {
        runner.send(.start(unixTime: Int64(time(nil))))
        let watcher = TunnelWatcher(loop: loop, interface: settings.interface, gateway: settings.serverAddress) { [unowned self] state in
            self.link = state
            switch state {
            case .usable(let tunnel): self.runner.send(.tunnelUp(tunnel))
            case .awaitingRoute, .unusable:
                self.runner.send(.tunnelDown("\(state)"))
                self.closeClients()  // a kept-alive connection from an address that is gone
            }
            self.onStatusChange?()
        }
        self.watcher = watcher
        try watcher.start()
    }

    public func stop(final: Bool) {
        watcher?.stop()
        watcher = nil
        runner?.stop()
        closeClients()
        link = nil
    }

    public func clientsVerified(_ port: Port) {}

    public var status: SourceStatus {
        var status = SourceStatus()
        status.link = link
        status.grants = session.binds
        status.failures = session.failures
        status.failureStreak = session.failureStreak
        status.lastGrant = lastGrant
        if let signature = session.signature, session.boundPort != nil { status.leaseExpiry = session.expiry(of: signature, loop.now) }
        let interface = settings.interface
        switch link {
        case nil:
            status.settled = false
        case .unusable(let reason)?:
            status.state = .unavailable(.unusable(reason, interface: interface, section: "pia", connect: "connect to PIA"))
        case .awaitingRoute(let tunnel)?:
            status.settled = false
            status.detail = "server \(settings.serverName) at \(tunnel.gateway) (\(tunnel.gatewayRule))"
            status.state = .waiting(.awaitingRoute(tunnel, interface: interface, peer: "PIA's server \(tunnel.gateway)",
                                                   setting: "set [pia].server_address to the WireGuard server's address"))
        case .usable(let tunnel)?:
            status.detail = "server \(settings.serverName) at \(tunnel.gateway):\(PIASettings.apiPort) (\(tunnel.gatewayRule))"
            status.settled = session.binds > 0 || session.failures > 0
            if let port = session.boundPort {
                status.state = .forwarding(port)
            } else if let problem = session.lastProblem {
                status.state = session.trouble == .refused
                    ? .misconfigured(SourceProblem(problem, fix: "check [pia].username and the password in [pia].password_file (PIA's p-number account)"))
                    : .failing(SourceProblem(problem, fix: "check [pia].server_name (the server's common name) and server_address; port forwarding needs a PIA server that offers it (not in the US)"))
            } else {
                status.state = .waiting(SourceProblem("asking PIA for a port (\(session.inFlight.map(PIASession.name(of:)) ?? "next step"))",
                                                      fix: "wait a moment; `portsync doctor` shows each step"))
            }
        }
        return status
    }

    private func perform(_ effect: PIASession.Effect) {
        switch effect {
        case .send(let request, let http, let tunnel):
            let client = self.client(for: request, tunnel)
            let path = http.target.prefix { $0 != "?" }
            loop.logger.trace(name, "→ \(http.method) \(client.url.address(of: String(path)))")
            client.send(http, retryIfStale: true) { [unowned self] result in
                switch result {
                case .success(let response):
                    // A token's or a signature's answer is the secret itself: its size only.
                    self.loop.logger.trace(self.name, request == .bind ? "← \(response.status) \(self.session.redaction(response.bodyExcerpt))"
                                                                       : "← \(response.status) (\(response.body.count) bytes)")
                    self.runner.send(.answered(request, response))
                case .failure(let error):
                    self.loop.logger.trace(self.name, "← failed: \(self.session.redaction(error.description))")
                    self.runner.send(.failed(request, error))
                }
            }
        case .cancelRequests:
            closeClients()
        case .forwarding(let port, let expiry, let reason):
            lastGrant = Int64(time(nil))
            onObservation?(PortObservation(source: identity, port: port, time: loop.now, expiry: expiry, reason: reason))
        case .withdrawn(let reason):
            onObservation?(PortObservation(source: identity, port: nil, time: loop.now, reason: reason))
        case .keep(let signature):
            keep(signature)
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    /// The token endpoint's client, or the API's at the tunnel's gateway (made again when the
    /// gateway moves); both send from the tunnel's address, and the token endpoint's name is
    /// looked up through the tunnel (`[pia] nameserver`).
    private func client(for request: PIASession.Request, _ tunnel: Tunnel) -> HTTPClient {
        let source = SocketAddress.v4(tunnel.address, port: 0)
        if request == .token {
            let client = tokenClient ?? HTTPClient(loop: loop, name: "pia.token", url: settings.tokenURL, tls: settings.tokenTLS,
                                                   connectTimeout: settings.requestTimeout, responseTimeout: settings.requestTimeout,
                                                   resolver: ResolverConfiguration(nameServers: settings.nameServers.map { .v4($0, port: 53) }))
            client.sourceAddress = source
            client.lookupRoute = LookupRoute(interface: tunnel.interface, index: tunnel.index, address: tunnel.address)
            tokenClient = client
            return client
        }
        let url = try! HTTPURL(parsing: "https://\(tunnel.gateway):\(PIASettings.apiPort)")
        if let apiClient, apiClient.url == url {
            apiClient.sourceAddress = source
            return apiClient
        }
        apiClient?.close()
        let client = HTTPClient(loop: loop, name: "pia.api", url: url, tls: settings.apiTLS, sourceAddress: source,
                                connectTimeout: settings.requestTimeout, responseTimeout: settings.requestTimeout)
        apiClient = client
        return client
    }

    private func closeClients() {
        tokenClient?.close()
        apiClient?.close()
    }

    private func keep(_ signature: PIASignature?) {
        do {
            if let signature {
                try FileContents.writeAtomically(signature.fileContents, toPath: settings.signatureFile, mode: 0o600)
            } else {
                try FileContents.remove(settings.signatureFile)
            }
        } catch {
            loop.logger.error(name, "PIA: cannot \(signature == nil ? "remove" : "write") \(settings.signatureFile): \(error); the port lasts until portsync stops")
        }
    }

    /// The last run's payload and signature, if their file holds them.
    private static func readKept(_ settings: PIASettings, _ logger: Logger) -> PIASignature? {
        guard FileContents.exists(settings.signatureFile) else { return nil }
        do {
            let bytes = try FileContents.read(atPath: settings.signatureFile, maxBytes: 64 * 1024)
            guard let kept = PIASignature.parse(bytes, origin: settings.signatureFile) else {
                logger.warning("pia.http", "PIA: \(settings.signatureFile) holds no payload and signature; asking for new ones")
                return nil
            }
            return kept
        } catch {
            logger.warning("pia.http", "PIA: cannot read \(settings.signatureFile): \(error); asking for a new signature")
            return nil
        }
    }
}
