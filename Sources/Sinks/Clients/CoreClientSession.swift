import HTTP
import Reactor

/// What `ClientSink` needs of its session: a pure machine on the shared inputs and effects.
public protocol ClientSinkSession: LoopStateMachine where Input == ClientSessionInput, Effect == ClientSessionEffect {
    /// The client in words, for titles and summaries: "Transmission".
    static var clientName: String { get }
    init(settings: ClientSettings)
    var settings: ClientSettings { get }
    var status: SinkStatus { get }
    var counters: SinkCounters { get }
    /// A request is in flight.
    var isBusy: Bool { get }
}

/// A client session that speaks its protocol around a `ClientSessionCore` (`TransmissionSession`,
/// `DelugeSession`): the outline of `handle` is the same for all of them and lives here; each
/// session fills in what its protocol says about answers, failures and the next request.
protocol CoreClientSession: ClientSessionCoreOwner, ClientSinkSession {
    var core: ClientSessionCore { get set }
    /// Verified with nothing in flight (and whatever else the protocol needs ready): a new port
    /// can be written without reading first.
    var isIdle: Bool { get }
    /// The URL or the account changed: forget the session (cookie, session id, versions).
    mutating func forgetSession()
    /// The answer to the request in flight (ignored when none is).
    mutating func received(_ response: HTTPResponse, _ now: Instant, _ effects: inout [ClientSessionEffect])
    /// The request in flight got no answer (ignored when none is).
    mutating func failed(_ error: HTTPClientError, _ now: Instant, _ effects: inout [ClientSessionEffect])
    /// The re-announce put off by its allowance is due now.
    mutating func reannounceBecameDue()
    /// Sends the next request of a sync, if one is wanted and nothing is in flight.
    mutating func startSync(_ effects: inout [ClientSessionEffect])
}

extension ClientSinkSession {
    /// "Transmission 3.00 (bb6b5a062e)"
    public var title: String { "\(Self.clientName)\(status.version.map { " \($0)" } ?? "")" }
}

extension CoreClientSession {
    public var settings: ClientSettings { core.settings }
    public var nextDeadline: Instant? { core.nextDeadline }

    mutating func reannounceBecameDue() {}

    public mutating func handle(_ input: ClientSessionInput, now: Instant) -> [ClientSessionEffect] {
        var effects: [ClientSessionEffect] = []
        let before = core.status
        switch input {
        case .connect:
            core.connectRequested = true
            startSync(&effects)
        case .inspect:
            core.connectRequested = true
            core.changesNothing = true
            startSync(&effects)
        case .desiredPort(let port):
            let next = core.desire(port, idle: isIdle, &effects)
            core.writeWithoutReading = next.skipRead
            if next.sync { startSync(&effects) }
        case .settingsChanged(let fresh):
            if core.update(fresh, &effects) { forgetSession() }
            startSync(&effects)
        case .responseReceived(let response):
            received(response, now, &effects)
        case .requestFailed(let error):
            failed(error, now, &effects)
        case .deadlineReached:
            let due = core.deadlinesReached(now, &effects)
            if due.reannounce { reannounceBecameDue() }
            if due.sync || due.reannounce { startSync(&effects) }
        case .listenerChecked(let check):
            if core.listenerChecked(check, now, &effects) {
                reannounceBecameDue()
                startSync(&effects)
            }
        case .reassert:
            if core.reassert(&effects) { startSync(&effects) }
        }
        if core.syncRequested && !isBusy {
            core.syncRequested = false
            startSync(&effects)
        }
        core.finish(since: before, &effects)
        return effects
    }
}
