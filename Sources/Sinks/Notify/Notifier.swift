import Domain
import HTTP
import Reactor

/// Tells the person: the shell around `NotifySession`. Its requests go over an `HTTPClient`
/// (https, names, IPv6 as every client's) in the loop; an event is handed over and returns at
/// once, so a receiver that is slow, silent or gone never holds up anything else. Trace lines
/// name the destination's host, never its path (it can hold a token) or a header.
public final class Notifier {
    public let name = "notify.http"

    private let loop: EventLoop
    private var runner: MachineRunner<NotifySession>!
    private var client: HTTPClient

    public init(loop: EventLoop, settings: NotifySettings) {
        self.loop = loop
        client = Self.makeClient(loop, settings)
        runner = MachineRunner(loop: loop, name: "notify.timer", machine: NotifySession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit {
        runner.stop()
        client.close()
    }

    public var session: NotifySession { runner.machine }
    public var settings: NotifySettings { session.settings }
    public var counters: NotifyCounters { session.counters }

    /// Tells the person about `event`, as the rate limit allows.
    public func notify(_ event: NotifyEvent) {
        runner.send(.event(event))
    }

    /// A client's health (after any client's status changed): a new trouble is told.
    public func clientHealth(label: String, title: String, _ health: SinkStatus.Health) {
        runner.send(.clientHealth(label: label, title: title, health))
    }

    /// New settings from a reload: another URL, TLS or timeout makes a new connection.
    public func update(_ settings: NotifySettings) {
        let old = session.settings
        guard settings != old else { return client.forgetAddresses() }
        var lost = false
        if settings.url != old.url || settings.tls != old.tls || settings.timeout != old.timeout {
            lost = client.isBusy
            client.close()
            client = Self.makeClient(loop, settings)
        }
        runner.send(.settingsChanged(settings, requestLost: lost))
    }

    private func perform(_ effect: NotifySession.Effect) {
        switch effect {
        case .send(let request):
            let logger = loop.logger
            let started = loop.clock.now()
            logger.trace(name, "→ \(request.method) \(session.settings.destination) (\(session.inFlight?.message.event.kind.rawValue ?? "?"))")
            client.send(request, retryIfStale: true) { [unowned self] result in
                let elapsed = (self.loop.clock.now() - started).milliseconds
                switch result {
                case .success(let response): logger.trace(self.name, "← \(response.status) (\(response.body.count) bytes, \(elapsed.formatted) ms)")
                case .failure(let error): logger.trace(self.name, "← failed: \(error)")
                }
                self.runner.send(.answered(result))
                // Notifications are minutes apart: the connection is not kept for the next.
                self.client.closeIdleConnection()
            }
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    private static func makeClient(_ loop: EventLoop, _ settings: NotifySettings) -> HTTPClient {
        HTTPClient(loop: loop, name: "notify.http", url: settings.url, tls: settings.tls, connectTimeout: settings.timeout,
                   responseTimeout: settings.timeout)
    }
}

extension NotifySession: LoopStateMachine {}
