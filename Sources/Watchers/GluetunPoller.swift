import Reactor

/// Polls Gluetun's control server in the loop: the shell around `GluetunSession`.
public final class GluetunPoller {
    public let name = "gluetun.http"
    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var session: GluetunSession
    private let client: HTTPClient
    private var timer: Timer!
    private var pendingInputs: [GluetunSession.Input] = []
    private var handling = false

    public init(loop: EventLoop, settings: GluetunSettings, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
        session = GluetunSession(settings: settings)
        client = HTTPClient(loop: loop, name: "gluetun.http", host: settings.url.bareHost, port: settings.url.port,
                            connectTimeout: settings.requestTimeout, responseTimeout: settings.requestTimeout)
        timer = loop.makeTimer(name: "gluetun.poll") { [unowned self] in self.handle(.deadlineReached) }
    }

    deinit { stop() }

    public var polls: Int { session.polls }
    public var lastProblem: String? { session.lastProblem }
    public var lastPorts: [Port]? { session.lastPorts }
    public var refused: Bool { session.refused }
    public var route: String { session.route }

    public func start() {
        handle(.start)
    }

    public func stop() {
        timer.cancel()
        client.close()
    }

    private func handle(_ input: GluetunSession.Input) {
        pendingInputs.append(input)
        guard !handling else { return }
        handling = true
        defer { handling = false }
        while !pendingInputs.isEmpty {
            for effect in session.handle(pendingInputs.removeFirst(), now: loop.now) { perform(effect) }
        }
        if let deadline = session.nextDeadline { timer.schedule(at: deadline) } else { timer.cancel() }
    }

    private func perform(_ effect: GluetunSession.Effect) {
        switch effect {
        case .send(let request):
            loop.logger.trace(name, "→ GET \(request.target)")
            client.send(request) { [unowned self] result in
                switch result {
                case .success(let response):
                    self.loop.logger.trace(self.name, "← \(response.status) \(response.bodyExcerpt)")
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
            handler(PortObservation(source: .gluetun, port: index < ports.count ? ports[index] : nil, time: loop.now))
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }
}
