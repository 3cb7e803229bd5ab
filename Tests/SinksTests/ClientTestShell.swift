import HTTP
import Reactor
@testable import Sinks

/// A minimal shell for the end-to-end tests (the daemon's own comes with the new sink seam):
/// the session in a `MachineRunner`, its requests through a real `HTTPClient` with the
/// session's request timeout, its logs into the loop's logger.
final class ClientTestShell<Session: LoopStateMachine> where Session.Input == ClientSessionInput, Session.Effect == ClientSessionEffect {
    private let loop: EventLoop
    private let name: String
    private var client: HTTPClient
    private var runner: MachineRunner<Session>!
    private(set) var statuses: [SinkStatus] = []
    private(set) var requestsSent = 0

    init(loop: EventLoop, name: String, session: Session, url: HTTPURL, requestTimeout: Duration) {
        self.loop = loop
        self.name = name
        client = HTTPClient(loop: loop, name: name, url: url,
                            connectTimeout: requestTimeout, responseTimeout: requestTimeout)
        runner = MachineRunner(loop: loop, name: "\(name).timer", machine: session, deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit {
        runner.stop()
        client.close()
    }

    var session: Session { runner.machine }
    var status: SinkStatus? { statuses.last }

    func send(_ input: ClientSessionInput) { runner.send(input) }

    private func perform(_ effect: ClientSessionEffect) {
        switch effect {
        case .send(let request, let retryIfStale):
            requestsSent += 1
            // Never the body: Deluge's login carries the password.
            loop.logger.trace(name, "→ \(request.method) \(request.target)")
            client.send(request, retryIfStale: retryIfStale) { [unowned self] result in
                switch result {
                case .success(let response): self.runner.send(.responseReceived(response))
                case .failure(let error): self.runner.send(.requestFailed(error))
                }
            }
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        case .statusChanged(let status):
            statuses.append(status)
        }
    }
}
