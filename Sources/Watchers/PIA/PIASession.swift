import Domain
import HTTP
import Reactor

/// PIA's port forwarding, with no I/O, as PIA's own scripts and Gluetun do it: a token from the
/// account (kept for a day), a signature from the server for it (`getSignature`: a payload with
/// the port, good for about 60 days), then `bindPort` with both at once and every 15 minutes.
/// The payload and signature are kept (`keep`) and bound again after a reconnect or a restart,
/// so the port stays the same until fewer than 7 days of it remain; then a new signature. A
/// refused bind (409 `port N is busy.`, or any answer but OK) means a new signature; a bind that
/// got no answer (the tunnel went, a timeout) is tried again with the same one. Nothing is sent
/// while the tunnel is not usable. Every failure is one line, said once, and a `SourceProblem`.
public struct PIASession {
    public enum Request: Equatable, Sendable {
        case token
        case signature
        case bind
    }

    public enum Input {
        /// `unixTime`: the wall clock now, to place the payload's `expires_at` on the loop's clock.
        case start(unixTime: Int64)
        case tunnelUp(Tunnel)
        case tunnelDown(String)
        case deadlineReached
        case answered(Request, HTTPResponse)
        case failed(Request, HTTPClientError)
    }

    public enum Effect: Equatable {
        /// `.token` goes to the token URL, the others to the server's API port at the tunnel's
        /// gateway (the server's address); each from the tunnel's address.
        case send(Request, HTTPRequest, through: Tunnel)
        /// Drop what is in flight (the tunnel went).
        case cancelRequests
        /// The port is bound; it lasts until `expiry` while it is bound again.
        case forwarding(Port, expiry: Instant, reason: ChangeReason?)
        /// The port is gone (refused, or its payload expired), no other yet.
        case withdrawn(ChangeReason)
        /// Write the payload and signature to the kept file (nil: remove it).
        case keep(PIASignature?)
        case log(LogLevel, String)
    }

    /// What stands in the way, for the source's status.
    public enum Trouble: Equatable, Sendable {
        /// The account's login was refused: the settings' fault.
        case refused
        /// A request failed or PIA said no otherwise.
        case failed
    }

    public let settings: PIASettings
    /// The password, token, payload and signature in every form they travel in: out of every message.
    public private(set) var redaction: Redaction
    public private(set) var nextDeadline: Instant?
    public private(set) var tunnel: Tunnel?
    public private(set) var signature: PIASignature?
    /// The port the last `bindPort` bound (nil: none, or refused since).
    public private(set) var boundPort: Port?
    public private(set) var inFlight: Request?
    public private(set) var lastProblem: String?
    public private(set) var trouble: Trouble?
    public private(set) var binds = 0
    public private(set) var failures = 0
    public private(set) var failureStreak = 0
    /// Tokens asked for, and signatures (the tests count both).
    public private(set) var tokensAsked = 0
    public private(set) var signaturesAsked = 0
    private var token: (value: Secret, asked: Instant)?
    /// The signature was asked for in this run and has not been bound yet; new ones refused in a
    /// row: after the second, the next waits (PIA would go on naming busy ports).
    private var signatureIsFresh = false
    private var freshRefusals = 0
    /// The port the last observation named, and whether a new signature replaced a good one
    /// (the 7-day rule: the reason of the next port).
    private var announced: Port?
    private var renewing = false
    /// A renewal that failed waits until then, the old signature bound meanwhile.
    private var renewalNotBefore: Instant?
    private var lastProblemKind: String?
    private var secrets: [String] = []
    /// Unix seconds minus the loop clock's seconds.
    private var clockOffset: Int64 = 0

    /// `kept`: the payload and signature the last run kept; another server's is not used.
    public init(settings: PIASettings, kept: PIASignature?) {
        self.settings = settings
        signature = kept?.serverName == settings.serverName ? kept : nil
        redaction = Redaction([])
        updateRedaction()
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .start(let unixTime):
            clockOffset = unixTime - now.nanoseconds / 1_000_000_000
            if let signature {
                effects.append(.log(.info, "PIA: kept signature for port \(signature.port) on \(settings.serverName), \(remaining(signature, now)) left"))
            }
        case .tunnelUp(let fresh):
            guard fresh != tunnel else { break }
            if inFlight != nil { effects.append(.cancelRequests) }
            inFlight = nil
            tunnel = fresh
            advance(now, &effects)
        case .tunnelDown(let why):
            guard tunnel != nil else { break }
            if let inFlight {
                effects.append(.cancelRequests)
                effects.append(.log(.info, "PIA: the tunnel went during \(Self.name(of: inFlight)) (\(why)); asking again once it is back"))
            }
            inFlight = nil
            tunnel = nil
            nextDeadline = nil
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now, inFlight == nil else { break }
            nextDeadline = nil
            advance(now, &effects)
        case .answered(let request, let response):
            guard request == inFlight else { break }
            inFlight = nil
            switch request {
            case .token: tokenAnswered(response, now, &effects)
            case .signature: signatureAnswered(response, now, &effects)
            case .bind: bindAnswered(response, now, &effects)
            }
        case .failed(let request, let error):
            guard request == inFlight else { break }
            inFlight = nil
            let whom = request == .token ? "PIA's token endpoint \(settings.tokenURL.host)" : "PIA's API on \(settings.serverName)"
            problem("\(Self.name(of: request)): \(whom) \(error.isUnreachable ? "is unreachable" : "failed") through \(settings.interface): \(error)",
                    kind: "\(request) failed", .failed, &effects)
            if request == .bind {
                nextDeadline = now + settings.retryDelay
            } else {
                retry(after: settings.retryDelay, now, &effects)
            }
        }
        return effects.map { effect in
            guard case .log(let level, let message) = effect else { return effect }
            return .log(level, redaction(message))
        }
    }

    /// The next step on a usable tunnel: a bind while the signature has more than `renewBefore`
    /// left (or a new one was refused a moment ago); else a new signature, with a token first
    /// when none from the last `tokenLifetime` is at hand.
    private mutating func advance(_ now: Instant, _ effects: inout [Effect]) {
        guard let tunnel, inFlight == nil else { return }
        if let signature, unixNow(now) >= signature.expiresAt {
            effects.append(.log(.info, "PIA: the payload for port \(signature.port) expired; asking for a new signature"))
            drop(now, .leaseLapsed, &effects)
        }
        if let signature {
            guard needsRenewal(signature, now) else { return send(.bind, bindRequest(signature), tunnel, &effects) }
            effects.append(.log(renewing ? .debug : .info,
                                "PIA: \(remaining(signature, now)) left of port \(signature.port)'s payload; asking for a new signature"))
            renewing = true
        }
        if let token, now - token.asked < settings.tokenLifetime {
            return send(.signature, signatureRequest(token.value), tunnel, &effects)
        }
        token = nil
        tokensAsked += 1
        let url = settings.tokenURL
        let request = HTTPRequest.form(url.basePath.isEmpty ? "/" : url.basePath,
                                       fields: [("username", settings.username), ("password", settings.password.value)],
                                       headers: HTTPHeaders.request(to: url, ["Accept": "application/json"]))
        send(.token, request, tunnel, &effects)
    }

    /// Fewer than `renewBefore` left, and no new signature refused within the wait.
    private func needsRenewal(_ signature: PIASignature, _ now: Instant) -> Bool {
        !signatureIsFresh && .seconds(signature.expiresAt - unixNow(now)) <= settings.renewBefore && renewalNotBefore.map { $0 <= now } ?? true
    }

    /// After a failed token or signature: with a signature still good (a renewal), it is bound
    /// meanwhile and the renewal waits; without one, everything waits.
    private mutating func retry(after delay: Duration, _ now: Instant, _ effects: inout [Effect]) {
        guard signature != nil else {
            nextDeadline = now + delay
            return
        }
        renewalNotBefore = now + delay
        advance(now, &effects)
    }

    private mutating func send(_ request: Request, _ http: HTTPRequest, _ tunnel: Tunnel, _ effects: inout [Effect]) {
        if request == .signature { signaturesAsked += 1 }
        inFlight = request
        effects.append(.send(request, http, through: tunnel))
    }

    private mutating func tokenAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        switch response.status {
        case 200:
            do {
                token = (Secret(value: try PIAAnswer.token(response.body), origin: "PIA's token endpoint"), now)
                updateRedaction()
                advance(now, &effects)
            } catch {
                problem("token: \(settings.tokenURL.host) answered 200 but \(error)", kind: "token unreadable", .failed, &effects)
                retry(after: settings.retryDelay, now, &effects)
            }
        case 401, 403:
            problem("token: PIA refused the login of \"\(settings.username)\" (\(response.status) \(response.bodyExcerpt)); asking again in \(settings.authRetryDelay.components.seconds / 60) min",
                    kind: "token refused", .refused, &effects)
            retry(after: settings.authRetryDelay, now, &effects)
        default:
            problem("token: \(settings.tokenURL.host) answered \(response.status) \(response.bodyExcerpt)", kind: "token answered \(response.status)",
                    .failed, &effects)
            retry(after: settings.retryDelay, now, &effects)
        }
    }

    private mutating func signatureAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        let granted: (payload: String, signature: String, port: Port, expiresAt: Int64)
        do throws(PIAAnswer.ParseError) {
            guard response.status == 200 else {
                throw PIAAnswer.ParseError(message: "answered \(response.status) \(response.bodyExcerpt)")
            }
            granted = try PIAAnswer.signature(response.body)
        } catch {
            // A token the server refuses is asked again, after the wait: never in a loop.
            let refused = response.status == 401 || response.status == 403
            if refused { token = nil }
            problem("getSignature: \(settings.serverName) \(error)", kind: "getSignature failed", .failed, &effects)
            retry(after: refused ? settings.authRetryDelay : settings.retryDelay, now, &effects)
            return
        }
        guard granted.expiresAt > unixNow(now) else {
            problem("getSignature: \(settings.serverName) gave port \(granted.port) with a payload that expired already (is the clock right?)",
                    kind: "getSignature expired", .failed, &effects)
            return retry(after: settings.retryDelay, now, &effects)
        }
        let origin = "PIA's getSignature"
        let fresh = PIASignature(payload: Secret(value: granted.payload, origin: origin), signature: Secret(value: granted.signature, origin: origin),
                                 port: granted.port, expiresAt: granted.expiresAt, serverName: settings.serverName)
        signature = fresh
        signatureIsFresh = true
        renewalNotBefore = nil
        updateRedaction()
        effects.append(.keep(fresh))
        effects.append(.log(.info, "PIA: signature for port \(fresh.port), \(remaining(fresh, now)) left"))
        advance(now, &effects)
    }

    private mutating func bindAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        guard let signature else { return }
        let binding: PIAAnswer.Binding
        switch (response.status, Result { () throws(PIAAnswer.ParseError) in try PIAAnswer.binding(response) }) {
        case (200, .success(let answer)), (409, .success(let answer)): binding = answer
        case (_, .failure(let error)): binding = .refused("\(response.status): \(error)")
        case (let status, .success): binding = .refused("\(status) \(response.bodyExcerpt)")
        }
        switch binding {
        case .bound where unixNow(now) >= signature.expiresAt:
            // It expired while the bind was on its way: a new signature, not an expired port.
            advance(now, &effects)
        case .bound:
            let wasFresh = signatureIsFresh
            binds += 1
            failureStreak = 0
            freshRefusals = 0
            signatureIsFresh = false
            if lastProblem != nil { effects.append(.log(.info, "PIA: bound again")) }
            lastProblem = nil
            lastProblemKind = nil
            trouble = nil
            boundPort = signature.port
            if announced != signature.port || wasFresh {
                announced = signature.port
                effects.append(.log(.notice, "PIA: port \(signature.port) bound on \(settings.serverName)"))
                effects.append(.forwarding(signature.port, expiry: expiry(of: signature, now), reason: renewing ? .renewedToNewPort : nil))
                renewing = false
            }
            if wasFresh, Duration.seconds(signature.expiresAt - unixNow(now)) <= settings.renewBefore {
                // A new payload that is already short-lived: asked again a day later, not at once.
                effects.append(.log(.warning, "PIA: the new payload for port \(signature.port) has only \(remaining(signature, now)) left"))
                renewalNotBefore = now + settings.tokenLifetime
            }
            let renewal = now + (Duration.seconds(signature.expiresAt - unixNow(now)) - settings.renewBefore)
            nextDeadline = min(now + settings.bindInterval, max(renewal, renewalNotBefore ?? now, now))
        case .refused(let why):
            if signatureIsFresh { freshRefusals += 1 }
            problem("bindPort: \(settings.serverName) refused port \(signature.port) (\(why)); asking for a new signature",
                    kind: "bindPort refused", .failed, &effects)
            drop(now, .sourceChanged, &effects)
            if freshRefusals >= 2 {
                nextDeadline = now + settings.retryDelay
            } else {
                advance(now, &effects)
            }
        }
    }

    /// Forgets the signature (and its kept file); a bound port is withdrawn.
    private mutating func drop(_ now: Instant, _ reason: ChangeReason, _ effects: inout [Effect]) {
        signature = nil
        signatureIsFresh = false
        updateRedaction()
        effects.append(.keep(nil))
        if announced != nil {
            effects.append(.withdrawn(reason))
            announced = nil
        }
        boundPort = nil
    }

    private func signatureRequest(_ token: Secret) -> HTTPRequest {
        HTTPRequest(method: "GET", target: "/getSignature?" + FormEncoding.encode([("token", token.value)]), headers: apiHeaders)
    }

    private func bindRequest(_ signature: PIASignature) -> HTTPRequest {
        let fields = [("payload", signature.payload.value), ("signature", signature.signature.value)]
        return HTTPRequest(method: "GET", target: "/bindPort?" + FormEncoding.encode(fields), headers: apiHeaders)
    }

    /// As `curl --connect-to CN::ADDRESS:` sends them: the server's name in `Host`.
    private var apiHeaders: HTTPHeaders {
        ["Host": "\(settings.serverName):\(PIASettings.apiPort)", "User-Agent": HTTPHeaders.userAgent, "Accept": "application/json"]
    }

    /// Said once per kind; counted as a failed cycle.
    private mutating func problem(_ message: String, kind: String, _ trouble: Trouble, _ effects: inout [Effect]) {
        failures += 1
        failureStreak += 1
        effects.append(.log(kind == lastProblemKind ? .debug : .error, "PIA: \(message)"))
        lastProblem = redaction(message)
        lastProblemKind = kind
        self.trouble = trouble
    }

    /// Every secret of this run stays redacted, also once replaced: a server may echo an old one.
    private mutating func updateRedaction() {
        for secret in [settings.password, token?.value, signature?.payload, signature?.signature].compactMap({ $0 })
        where !secrets.contains(secret.value) {
            secrets.append(secret.value)
        }
        redaction = Redaction(secrets.map { Secret(value: $0, origin: "") })
    }

    private func unixNow(_ now: Instant) -> Int64 { now.nanoseconds / 1_000_000_000 + clockOffset }

    /// When the payload expires, on the loop's clock.
    public func expiry(of signature: PIASignature, _ now: Instant) -> Instant {
        now + .seconds(signature.expiresAt - unixNow(now))
    }

    private func remaining(_ signature: PIASignature, _ now: Instant) -> String {
        let seconds = max(signature.expiresAt - unixNow(now), 0)
        return seconds >= 86_400 ? "\(seconds / 86_400) days" : seconds >= 3600 ? "\(seconds / 3600) h" : "\(seconds / 60) min"
    }

    static func name(of request: Request) -> String {
        switch request {
        case .token: "token"
        case .signature: "getSignature"
        case .bind: "bindPort"
        }
    }
}

extension PIASession: LoopStateMachine {}
