import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// The one driver of every client session's target (QBittorrentSession, TransmissionSession,
/// DelugeSession): the session is driven through a sequence of inputs, those every client
/// session takes (connect, desired ports, new settings, deadlines, the passing of time, failed
/// requests and answers, each answer bytes that go through the HTTP parser first: raw from the
/// input, or shaped like what the client sends to the request in flight) and the client's own;
/// a look at the socket table is answered at once, as the shells do, by the next byte.
///
/// Properties of every client session: one request at a time, none while one is in flight;
/// none while the login is refused, until the settings change or the pause ends; every request
/// well-formed (`checkRequest`); no write of port 0 or of a port out of range; "verified" only
/// on the desired port; deadlines never in the past; a new port re-announced at once, the same
/// port again at most once a minute; the secret never in a log line or the status, in any
/// form. The target adds its client's, for each request sent (`checkSent`), knowing how many
/// were sent since the last input that was not an answer (a storm has no bound).
///
/// Input: a settings byte, then steps of an operation byte (an index into `operations`) and
/// its arguments.
func fuzzClientSession<Session: FuzzedClientSession>(_ data: UnsafePointer<UInt8>?, _ count: Int, _: Session.Type,
                                                     checkSent: (HTTPRequest, _ session: Session, _ round: Int) -> Void) -> Int32 {
    var input = FuzzInput(data, count)
    var session = Session(settings: Session.settings(input.byte()))
    var now = Instant(nanoseconds: 1_000_000_000)
    var steps = 0
    var round = 0
    var listenerAnswer: ((ListeningSockets.Check) -> Session.Input)?
    var lastReannounce: (port: Port, at: Instant)?
    var secrets = SecretForms(session.clientSettings)
    while !input.isAtEnd && steps < 200 {
        steps += 1
        let sessionInput: Session.Input
        var isAnswer = false
        var isUnblocking = false
        if let answer = listenerAnswer {
            sessionInput = answer(input.pick([.listening, .absent, .stale(ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 2)),
                                              .stale(ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 3)), .unknown("fuzz")]))
        } else {
            switch input.pick(Session.operations) {
            case .connect:
                sessionInput = .connect
            case .desiredPort:
                guard let port = Port(input.uint16()) else { continue }
                sessionInput = .desiredPort(port)
            case .settingsChanged:
                sessionInput = .settingsChanged(Session.settings(input.byte()))
                isUnblocking = true
            case .rawAnswer:
                sessionInput = exchange(response(from: input.chunk()))
                isAnswer = session.isBusy
            case .requestFailed:
                sessionInput = .requestFailed(input.pick([.timedOut, .closed, .connect(.refused), .resolve("no such host")]))
                isAnswer = session.isBusy
            case .deadlineReached:
                if let deadline = session.nextDeadline, deadline > now { now = deadline }
                sessionInput = .deadlineReached
                isUnblocking = true
            case .timePasses:
                now = now + .milliseconds(Int(input.uint16()) * 100)
                continue
            case .shapedAnswer:
                guard let answer = session.shapedAnswer(&input) else { continue }
                sessionInput = exchange(response(from: answer))
                isAnswer = true
            case .input(let own):
                sessionInput = own
            }
        }

        let before = (busy: session.isBusy, refused: session.isLoginRefused, deadline: session.nextDeadline, reannounces: session.counters.reannounces)
        if !isAnswer { round = 0 }
        listenerAnswer = nil
        var sent: [HTTPRequest] = []
        let effects = session.handle(sessionInput, now: now)
        if secrets.settings != session.clientSettings { secrets = SecretForms(session.clientSettings) }
        for effect in effects {
            switch Session.view(effect) {
            case .send(let request): sent.append(request)
            case .log(let message): secrets.check(message)
            case .status(let status): secrets.check(status)
            case .checkListener(let answer): listenerAnswer = answer
            }
        }
        secrets.check(session.status)
        require(sent.count <= 1, "\(sent.count) requests at once")
        if !sent.isEmpty {
            require(!before.busy || isAnswer, "a request sent while another is in flight")
            require(!before.refused || isUnblocking, "a request sent while the login is refused")
        }
        for request in sent {
            round += 1
            checkRequest(request, to: session.clientSettings.url, methods: Session.methods)
            for port in Session.writtenPorts(request) ?? [] {
                require((1...65535).contains(port), "a write of port \(port)")
            }
            checkSent(request, session, round)
        }
        if session.counters.reannounces > before.reannounces, let port = session.status.verifiedPort {
            // A new port at once; the same port again at most once a minute.
            require(lastReannounce.map { $0.port != port || now >= $0.at + .seconds(60) } ?? true, "the same port re-announced twice within a minute")
            lastReannounce = (port, now)
        }
        if session.status.health == .verified {
            require(session.status.verifiedPort == session.desiredPort,
                    "verified on \(String(describing: session.status.verifiedPort)), desired \(String(describing: session.desiredPort))")
        }
        if let deadline = session.nextDeadline, deadline != before.deadline {
            require(deadline >= now, "a deadline in the past")
        }
    }
    return 0
}

/// A client session as `fuzzClientSession` drives it.
protocol FuzzedClientSession: LoopStateMachine where Input: FuzzedSessionInput, Input.Settings == Settings {
    associatedtype Settings
    init(settings: Settings)
    var status: SinkStatus { get }
    var counters: SinkCounters { get }
    var isLoginRefused: Bool { get }
    var isBusy: Bool { get }
    var desiredPort: Port? { get }
    /// The URL requests go to, and the secret that must not be said.
    var clientSettings: ClientSettings { get }
    /// The settings a byte picks.
    static func settings(_ byte: UInt8) -> Settings
    /// What an operation byte picks, by its index: the seeds in Fuzz/Corpus/<target> are
    /// written in this order.
    static var operations: [FuzzOperation<Input>] { get }
    static var methods: Set<String> { get }
    static func view(_ effect: Effect) -> FuzzedEffect<Input>
    /// The bytes the client would answer to the request in flight, shaped by the input; nil
    /// when none is in flight.
    func shapedAnswer(_ input: inout FuzzInput) -> [UInt8]?
    /// The ports a write sets; nil when the request is no write.
    static func writtenPorts(_ request: HTTPRequest) -> [Int]?
}

/// The inputs every client session takes, by the names of its enum's cases.
protocol FuzzedSessionInput {
    associatedtype Settings
    static var connect: Self { get }
    static func desiredPort(_ port: Port) -> Self
    static func settingsChanged(_ settings: Settings) -> Self
    static func responseReceived(_ response: HTTPResponse) -> Self
    static func requestFailed(_ error: HTTPClientError) -> Self
    static var deadlineReached: Self { get }
}

enum FuzzOperation<Input> {
    case connect, desiredPort, settingsChanged, rawAnswer, requestFailed, deadlineReached, timePasses, shapedAnswer
    /// One of the client's own inputs.
    case input(Input)
}

/// What an effect is to the driver.
enum FuzzedEffect<Input> {
    case send(HTTPRequest)
    case log(String)
    case status(SinkStatus)
    /// A look at the socket table, answered with the input this makes of what it found.
    case checkListener((ListeningSockets.Check) -> Input)
}

func exchange<Input: FuzzedSessionInput>(_ result: Result<HTTPResponse, HTTPClientError>) -> Input {
    switch result {
    case .success(let response): .responseReceived(response)
    case .failure(let error): .requestFailed(error)
    }
}

extension ClientSessionInput: FuzzedSessionInput {}

/// Transmission and Deluge: the shared inputs and effects, and no input of their own.
extension FuzzedClientSession where Input == ClientSessionInput, Effect == ClientSessionEffect, Self: CoreClientSession {
    var desiredPort: Port? { core.desired }
    var clientSettings: ClientSettings { settings }

    static var operations: [FuzzOperation<Input>] {
        [.desiredPort, .settingsChanged, .rawAnswer, .requestFailed, .deadlineReached, .timePasses, .shapedAnswer, .connect]
    }

    static var methods: Set<String> { ["POST"] }

    static func view(_ effect: ClientSessionEffect) -> FuzzedEffect<Input> {
        switch effect {
        case .send(let request, _): .send(request)
        case .log(_, let message): .log(message)
        case .statusChanged(let status): .status(status)
        case .checkListener: .checkListener(ClientSessionInput.listenerChecked)
        }
    }
}
