import Domain
import HTTP
import Reactor
@testable import Sinks

/// Runs inputs through a client session with an explicit `now` and records what it asked for.
struct ClientSessionDriver<Session: LoopStateMachine> where Session.Input == ClientSessionInput, Session.Effect == ClientSessionEffect {
    var session: Session
    var now = Instant(nanoseconds: 5_000_000_000)
    var sent: [HTTPRequest] = []
    /// The socket table's answer to a listener check, given at once; nil: the test answers.
    var listener: ListeningSockets.Check? = .listening
    var listenerChecks: [Port] = []
    var logs: [(LogLevel, String)] = []
    var statuses: [SinkStatus] = []

    init(_ session: Session) {
        self.session = session
    }

    mutating func feed(_ input: ClientSessionInput) {
        for effect in session.handle(input, now: now) {
            switch effect {
            case .send(let request, _): sent.append(request)
            case .log(let level, let message): logs.append((level, message))
            case .statusChanged(let status): statuses.append(status)
            case .checkListener(let port):
                listenerChecks.append(port)
                if let listener { feed(.listenerChecked(listener)) }
            }
        }
    }

    mutating func answer(_ response: HTTPResponse) { feed(.responseReceived(response)) }

    /// Moves the clock to the session's deadline and reaches it.
    mutating func reachDeadline() {
        guard let deadline = session.nextDeadline else { return }
        now = max(now, deadline)
        feed(.deadlineReached)
    }

    mutating func advance(_ duration: Duration) { now = now + duration }

    /// The `tag` or `id` of the last request sent: what its answer must carry.
    var tag: Int { (try? JSONValue.parse(sent.last?.body ?? [])).flatMap { $0["tag"]?.integer ?? $0["id"]?.integer } ?? 0 }
    var lastBody: String { sent.last.map { String(decoding: $0.body, as: UTF8.self) } ?? "" }
    var bodies: [String] { sent.map { String(decoding: $0.body, as: UTF8.self) } }
    func logged(_ text: String) -> Bool { logs.contains { $0.1.contains(text) } }
    var allLogText: String { logs.map(\.1).joined(separator: "\n") }
}
