import Domain
import HTTP
import Reactor

/// The notifier's logic, with no I/O (as `HookSession`): events in, requests out.
///
/// What is news: a port change (as the history records it, once every client answered), a
/// client going from working to a trouble (unreachable, failing, its login refused; a retry,
/// or the same trouble in other words, is not, and only a verified client counts as working
/// again), connectability lost, and recovered after the person was told it was lost.
///
/// The rate limit: one message per topic (the port; each client; connectability, lost and
/// recovered being one) within `interval`; what comes in between is held and folded into one
/// message sent when the interval is over (a burst of port changes becomes "51413 → 61527 after
/// 3 changes"; a burst that ends where it began, a client verified again, connectability back
/// where the person last heard it: nothing). At most `hourlyLimit` messages within an hour;
/// past that they wait, folded, and the limit is said once.
///
/// Delivery: one request at a time, in order. A failure to connect or answer, a 408, 429 or
/// 5xx is tried again after `backOff` (doubled each time) or after what the server asks
/// (`Retry-After`, Discord's `retry_after`), `attempts` tries in all; any other answer is final.
/// A message given up is one warning line. The server's words are quoted without the secrets.
public struct NotifySession {
    public enum Input {
        case event(NotifyEvent)
        /// A client's health, sent after any client's status changed.
        case clientHealth(label: String, title: String, SinkStatus.Health)
        /// The answer to `.send`, or why there is none.
        case answered(Result<HTTPResponse, HTTPClientError>)
        /// New settings (a reload); `requestLost`: the request in flight went with the old
        /// connection, and is sent again.
        case settingsChanged(NotifySettings, requestLost: Bool)
        case deadlineReached
    }

    public enum Effect: Equatable {
        /// Send this request; answer with `.answered`.
        case send(HTTPRequest)
        case log(LogLevel, String)
    }

    /// What the rate limit keeps apart.
    private enum Topic: Hashable {
        case port
        case client(String)
        case connectability
    }

    public private(set) var settings: NotifySettings
    public private(set) var counters = NotifyCounters()
    public private(set) var nextDeadline: Instant?
    /// The message being delivered and its try (from 1); it stays here while a retry waits.
    public private(set) var inFlight: (message: NotifyMessage, attempt: Int)?
    /// When the message in flight is tried again; nil while its request is out.
    private var retryAt: Instant?
    /// Events waiting for their topic's interval (or the hourly limit), folded, oldest first.
    private var held: [(topic: Topic, event: NotifyEvent)] = []
    /// Messages released by the rate limit, waiting for the one in flight.
    private var queue: [NotifyMessage] = []
    /// When each topic last had a message released.
    private var lastReleased: [Topic: Instant] = [:]
    /// When messages were released within the last hour, oldest first.
    private var releases: [Instant] = []
    /// The hourly limit held a message back, and that was said.
    private var limitSaid = false
    /// Each client's trouble as last told; none: working, or not seen failing yet.
    private var troubles: [String: NotifyEvent.ClientTrouble.Kind] = [:]
    /// The connectability the person last heard of.
    private var toldConnectability: NotifyEvent.Kind?
    private var redaction: Redaction

    static let hour = Duration.seconds(3600)

    public init(settings: NotifySettings) {
        self.settings = settings
        redaction = settings.redaction
    }

    /// Messages held or waiting, and the one in flight.
    public var pending: Int { held.count + queue.count + (inFlight == nil ? 0 : 1) }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .event(let event):
            accept(event, now, &effects)
        case .clientHealth(let label, let title, let health):
            clientHealth(label, title, health, now, &effects)
        case .answered(let result):
            answered(result, now, &effects)
        case .settingsChanged(let fresh, let requestLost):
            settings = fresh
            redaction = fresh.redaction
            held.removeAll { !fresh.events.contains($0.event.kind) }
            queue.removeAll { !fresh.events.contains($0.event.kind) }
            if requestLost, let inFlight, retryAt == nil { send(inFlight.message, &effects) }
            release(now, &effects)
        case .deadlineReached:
            if let due = retryAt, due <= now, let current = inFlight {
                retryAt = nil
                inFlight = (current.message, current.attempt + 1)
                send(current.message, &effects)
            }
            release(now, &effects)
        }
        updateDeadline()
        return effects
    }

    // MARK: What is news

    private mutating func clientHealth(_ label: String, _ title: String, _ health: SinkStatus.Health, _ now: Instant,
                                       _ effects: inout [Effect]) {
        switch health {
        case .verified:
            troubles[label] = nil
            held.removeAll { $0.topic == .client(label) }
        case .idle, .applying:
            break
        case .unreachable, .failing, .loginRefused:
            guard let trouble = NotifyEvent.ClientTrouble(label: label, title: title, health: health), troubles[label] != trouble.kind else { return }
            troubles[label] = trouble.kind
            accept(.clientFailing(trouble), now, &effects)
        }
    }

    private mutating func accept(_ event: NotifyEvent, _ now: Instant, _ effects: inout [Effect]) {
        guard settings.events.contains(event.kind) else { return }
        let topic: Topic = switch event {
        case .portChanged: .port
        case .clientFailing(let trouble): .client(trouble.label)
        case .connectabilityLost, .connectabilityRecovered: .connectability
        }
        var latest = event
        if let index = held.firstIndex(where: { $0.topic == topic }) {
            if case .portChanged(let earlier) = held[index].event, case .portChanged(let later) = event {
                latest = .portChanged(earlier.folding(later))
            }
            held.remove(at: index)
        }
        guard isNews(latest) else { return }
        held.append((topic, latest))
        release(now, &effects)
    }

    private func isNews(_ event: NotifyEvent) -> Bool {
        switch event {
        case .portChanged(let move): move.previous != move.port
        case .clientFailing: true
        case .connectabilityLost: toldConnectability != .connectabilityLost
        case .connectabilityRecovered:
            toldConnectability == .connectabilityLost || !settings.events.contains(.connectabilityLost)
        }
    }

    // MARK: The rate limit

    /// Releases every held event whose topic's interval is over, as far as the hourly limit
    /// lets, then sends the next message if none is in flight.
    private mutating func release(_ now: Instant, _ effects: inout [Effect]) {
        releases.removeAll { $0 + Self.hour <= now }
        var index = 0
        while index < held.count {
            let (topic, event) = held[index]
            if let last = lastReleased[topic], now < last + settings.interval {
                index += 1
                continue
            }
            guard releases.count < settings.hourlyLimit else {
                if !limitSaid {
                    effects.append(.log(.warning, "\(settings.hourlyLimit) notifications within the last hour, the limit: the next waits until the oldest is an hour old"))
                    limitSaid = true
                }
                break
            }
            limitSaid = false
            held.remove(at: index)
            lastReleased[topic] = now
            releases.append(now)
            if topic == .connectability { toldConnectability = event.kind }
            queue.append(NotifyMessage(event))
        }
        guard inFlight == nil, !queue.isEmpty else { return }
        let next = queue.removeFirst()
        inFlight = (next, 1)
        send(next, &effects)
    }

    // MARK: Delivery

    private mutating func send(_ message: NotifyMessage, _ effects: inout [Effect]) {
        counters.attempts += 1
        effects.append(.send(settings.preset.request(message, url: settings.url, token: settings.token)))
    }

    private enum Outcome {
        case delivered
        /// Worth another try, after `wait` when the server said.
        case transient(String, wait: Duration?)
        case final(String)
    }

    private mutating func answered(_ result: Result<HTTPResponse, HTTPClientError>, _ now: Instant, _ effects: inout [Effect]) {
        guard let (message, attempt) = inFlight, retryAt == nil else { return }
        let kind = message.event.kind.rawValue
        switch Self.outcome(of: result) {
        case .delivered:
            counters.sent[message.event.kind, default: 0] += 1
            effects.append(.log(.info, "sent the \(kind) notification to \(settings.destination)"))
            inFlight = nil
        case .transient(let why, let wait):
            let why = redaction(why)
            guard attempt < settings.attempts else {
                return giveUp(message, "\(why); \(attempt) attempts made", now, &effects)
            }
            let delay = wait ?? settings.backOff * (1 << min(attempt - 1, 20))
            guard delay <= settings.longestWait else {
                return giveUp(message, "\(why), and the server asks to wait \(delay.limitText)", now, &effects)
            }
            retryAt = now + delay
            effects.append(.log(.info, "the \(kind) notification to \(settings.destination) failed (\(why)): trying again in \(delay.limitText) (try \(attempt + 1) of \(settings.attempts))"))
            return
        case .final(let why):
            return giveUp(message, redaction(why), now, &effects)
        }
        release(now, &effects)
    }

    private mutating func giveUp(_ message: NotifyMessage, _ why: String, _ now: Instant, _ effects: inout [Effect]) {
        counters.failed[message.event.kind, default: 0] += 1
        effects.append(.log(.warning, "the \(message.event.kind.rawValue) notification to \(settings.destination) was not delivered: \(why); given up"))
        inFlight = nil
        release(now, &effects)
    }

    private static func outcome(of result: Result<HTTPResponse, HTTPClientError>) -> Outcome {
        let response: HTTPResponse
        switch result {
        case .failure(let error): return .transient("\(error)", wait: nil)
        case .success(let answer): response = answer
        }
        let excerpt = response.bodyExcerpt.isEmpty ? "" : ": \(response.bodyExcerpt)"
        switch response.status {
        case 200..<300:
            return .delivered
        case 408, 429, 500..<600:
            return .transient("HTTP \(response.status)\(excerpt)", wait: retryAfter(response))
        case 300..<400:
            return .final("HTTP \(response.status) (redirects are not followed: give the URL it leads to)")
        case 401, 403:
            return .final("HTTP \(response.status)\(excerpt) (check the token)")
        case 404:
            return .final("HTTP 404\(excerpt) (check the URL)")
        default:
            return .final("HTTP \(response.status)\(excerpt)")
        }
    }

    /// How long the server asks to wait: `Retry-After` in seconds (an HTTP date is not taken),
    /// else the `retry_after` seconds of a JSON body (Discord's rate limit answer).
    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        func duration(_ seconds: Double?) -> Duration? {
            guard let seconds, seconds.isFinite, seconds >= 0, seconds < 1e9 else { return nil }
            return .milliseconds(Int64((seconds * 1000).rounded(.up)))
        }
        if let header = response.headers["Retry-After"]?.trimmingSpaces,
           header.utf8.allSatisfy({ (0x30...0x39).contains($0) || $0 == UInt8(ascii: ".") }),
           let wait = duration(Double(header)) {
            return wait
        }
        guard case .success(let body) = JSONValue.object(response.body), case .number(let seconds)? = body["retry_after"] else { return nil }
        return duration(seconds)
    }

    private mutating func updateDeadline() {
        var deadlines: [Instant] = []
        if let retryAt { deadlines.append(retryAt) }
        for (topic, _) in held {
            if let last = lastReleased[topic] { deadlines.append(last + settings.interval) }
        }
        if !held.isEmpty, releases.count >= settings.hourlyLimit, let oldest = releases.first { deadlines.append(oldest + Self.hour) }
        nextDeadline = deadlines.min()
    }
}
