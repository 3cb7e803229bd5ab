import Domain
import HTTP
import Reactor

/// Polls Gluetun's control server in the loop: the shell around `GluetunSession`.
public final class GluetunPoller: PortSource {
    public let name = "gluetun.http"
    public let identity = PortObservation.Source.gluetun
    public var onObservation: ((PortObservation) -> Void)?
    /// Never called: what Gluetun says comes as observations, and its problems are in `status`.
    public var onStatusChange: (() -> Void)?
    private let loop: EventLoop
    private var runner: MachineRunner<GluetunSession>!
    private var session: GluetunSession { runner.machine }
    private let client: HTTPClient

    public init(loop: EventLoop, settings: GluetunSettings, handler: ((PortObservation) -> Void)? = nil) {
        self.loop = loop
        onObservation = handler
        client = HTTPClient(loop: loop, name: "gluetun.http", url: settings.url, tls: settings.tls,
                            connectTimeout: settings.requestTimeout, responseTimeout: settings.requestTimeout)
        runner = MachineRunner(loop: loop, name: "gluetun.poll", machine: GluetunSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit { stop() }

    public var lastProblem: String? { session.lastProblem }
    public var lastPorts: [Port]? { session.lastPorts }
    public var refused: Bool { session.refused }
    public var route: String { session.route }

    public func start() {
        handle(.start)
    }

    public func stop(final: Bool) {
        runner.stop()
        client.close()
    }

    public func stop() {
        stop(final: false)
    }

    public func clientsVerified(_ port: Port) {}

    /// A refusal is the settings' fault (a key Gluetun does not know); no port is Gluetun's. The
    /// last answer decides: one that failed is said while the clients keep the last good port.
    public var status: SourceStatus {
        var status = SourceStatus()
        let settings = session.settings
        status.detail = settings.url.address(of: settings.url.target(session.route))
        if let problem = session.lastProblem {
            status.state = session.refused
                ? .misconfigured(SourceProblem(problem, fix: "give portsync a role in Gluetun's auth config.toml (see the README) and set [gluetun].api_key_file"))
                : .failing(SourceProblem(problem, fix: "check [gluetun].url (Gluetun's HTTP control server, port 8000 by default)"))
        } else if let ports = session.lastPorts {
            if ports.isEmpty {
                status.state = .failing(SourceProblem("Gluetun has no forwarded port yet",
                                                      fix: "enable VPN_PORT_FORWARDING in Gluetun and use a provider and server that forward ports"))
            } else if settings.portIndex >= ports.count {
                status.state = .misconfigured(SourceProblem("Gluetun forwards \(ports.count) port(s); port_index \(settings.portIndex) is not among them",
                                                            fix: "set [gluetun].port_index below \(ports.count)"))
            } else {
                status.state = .forwarding(ports[settings.portIndex])
            }
        }
        return status
    }

    private func handle(_ input: GluetunSession.Input) {
        runner.send(input)
    }

    private func perform(_ effect: GluetunSession.Effect) {
        switch effect {
        case .send(let request):
            loop.logger.trace(name, "→ GET \(request.target)")
            client.send(request) { [unowned self] result in
                switch result {
                case .success(let response):
                    self.loop.logger.trace(self.name, "← \(response.status) \(self.session.redaction(response.bodyExcerpt))")
                    self.handle(.responseReceived(response))
                case .failure(let error):
                    self.loop.logger.trace(self.name, "← failed: \(error)")
                    self.handle(.requestFailed(error))
                }
            }
        case .ports(let ports):
            let index = session.settings.portIndex
            if !ports.isEmpty && index >= ports.count {
                loop.logger.warning(name, "Gluetun forwards \(ports.count) port(s); port_index \(index) is not among them")
            }
            onObservation?(PortObservation(source: .gluetun, port: index < ports.count ? ports[index] : nil, time: loop.now, ports: ports))
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }
}

extension GluetunSession: LoopStateMachine {}

extension PortObservation.Source {
    /// Gluetun's control server: a hint, repeated from Gluetun's own port forwarding.
    public static let gluetun = PortObservation.Source("gluetun", rank: .hint, title: "Gluetun", spokenName: "Gluetun's control server")
    /// The file Gluetun writes the port to (`VPN_PORT_FORWARDING_STATUS_FILE`).
    public static let gluetunFile = PortObservation.Source("gluetun-file", rank: .hint, title: "Gluetun port file",
                                                           spokenName: "Gluetun's port file")
}

extension GluetunSettings: PortSourceSettings {
    public var identity: PortObservation.Source { .gluetun }
    public var summary: String { "Gluetun at \(url)" }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        GluetunPoller(loop: loop, settings: self)
    }
}
