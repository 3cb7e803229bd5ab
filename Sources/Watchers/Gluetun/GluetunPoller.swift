import Domain
import HTTP
import Reactor

/// Polls Gluetun's control server in the loop: the shell around `GluetunSession`.
public final class GluetunPoller {
    public let name = "gluetun.http"
    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var runner: MachineRunner<GluetunSession>!
    private var session: GluetunSession { runner.machine }
    private let client: HTTPClient

    public init(loop: EventLoop, settings: GluetunSettings, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
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

    public func stop() {
        runner.stop()
        client.close()
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
            handler(PortObservation(source: .gluetun, port: index < ports.count ? ports[index] : nil, time: loop.now, ports: ports))
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }
}

extension GluetunSession: LoopStateMachine {}
