import Domain
@testable import HTTP
import Reactor
@testable import Watchers

/// PIASession, started (with or without a kept payload, fresh or expired) and driven through a
/// sequence of inputs: the tunnel coming and going, deadlines, the passing of time, failed
/// requests and answers, each answer bytes that go through the HTTP parser first (raw from the
/// input, or shaped like PIA's: a token, a signature with a fuzzed port and expiry, a bind that
/// is OK, busy (409) or refused).
///
/// Properties: one request at a time, and none while the tunnel is down; every request
/// well-formed (the token a POST to the token URL, the others a GET of `/getSignature?token=`
/// or `/bindPort?payload=…&signature=…` with the server's name in Host); a bind only with a
/// signature, and a token asked no sooner than a day after the last one granted unless the
/// server refused it; a refused bind forgets the payload; no password, token, payload or
/// signature in any log line or problem; never more than six requests without time or the tunnel
/// moving (no loop); deadlines never in the past.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPIA(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let flags = input.byte()
    let unixStart: Int64 = 1_800_000_000
    let settings = PIASettings(username: "p1234567", password: Secret(value: "pass word&=", origin: "fuzz"), serverName: "amsterdam401",
                               interface: "pia", signatureFile: "/nonexistent/pia")
    var kept: PIASignature?
    if flags & 1 == 1 {
        let expires = unixStart + (flags & 2 == 0 ? 40 * 86_400 : -60)
        kept = PIASignature(payload: Secret(value: piaPayload(port: 40000, expiresAt: expires), origin: "kept"),
                            signature: Secret(value: "kept-signature-xyz", origin: "kept"), port: Port(40000)!, expiresAt: expires,
                            serverName: flags & 4 == 0 ? "amsterdam401" : "toronto402")
    }
    var session = PIASession(settings: settings, kept: kept)
    var now = Instant(nanoseconds: 1_000_000_000)
    let tunnels = [Tunnel(interface: "pia", index: 7, address: IPv4Address(10, 13, 0, 2), gateway: IPv4Address(10, 13, 128, 1), gatewayRule: .configured),
                   Tunnel(interface: "pia", index: 8, address: IPv4Address(10, 14, 0, 9), gateway: IPv4Address(10, 14, 128, 1), gatewayRule: .configured)]
    var secrets = ["pass word&=", FormEncoding.percentEncode("pass word&="), "kept-signature-xyz"] + (kept.map { [$0.payload.value] } ?? [])
    var tunnelUp = false
    var tokenGranted: Instant?
    var tokenRefused = false
    var sendsWithoutTime = 0
    var sessionInput = PIASession.Input.start(unixTime: unixStart)
    var steps = 0
    while steps < 200 {
        steps += 1
        let before = session.nextDeadline
        let wasInFlight = session.inFlight
        let answered: PIASession.Request?
        switch sessionInput {
        case .answered(let request, _) where request == wasInFlight, .failed(let request, _) where request == wasInFlight: answered = request
        default: answered = nil
        }
        if case .answered(.token, let response) = sessionInput, answered == .token, response.status == 200,
           let token = try? PIAAnswer.token(response.body) {
            tokenGranted = now
            tokenRefused = false
            secrets.append(token)
        }
        if case .answered(.signature, let response) = sessionInput, answered == .signature, [401, 403].contains(response.status) {
            tokenRefused = true
        }
        if case .answered(.signature, let response) = sessionInput, answered == .signature, response.status == 200,
           let granted = try? PIAAnswer.signature(response.body) {
            secrets += [granted.payload, granted.signature]
        }
        let hadSignature = session.signature
        let effects = session.handle(sessionInput, now: now)
        let cancelled = effects.contains(.cancelRequests)
        let sent = effects.compactMap { effect -> (PIASession.Request, HTTPRequest)? in
            if case .send(let request, let http, _) = effect { return (request, http) }
            return nil
        }
        require(sent.count <= 1, "\(sent.count) requests at once")
        for (request, http) in sent {
            require(wasInFlight == nil || answered != nil || cancelled, "\(request) sent while \(String(describing: wasInFlight)) is in flight")
            require(tunnelUp, "\(request) sent with the tunnel down")
            sendsWithoutTime += 1
            require(sendsWithoutTime <= 6, "\(sendsWithoutTime) requests without time passing")
            switch request {
            case .token:
                require(http.method == "POST" && http.target == settings.tokenURL.basePath, "token \(http.method) \(http.target)")
                require(http.headers.values(for: "Host") == [settings.tokenURL.hostHeader], "Host \(http.headers.values(for: "Host"))")
                require(http.headers["Content-Type"] == "application/x-www-form-urlencoded", "the token's form is not a form")
                require((try? http.serialized()) != nil, "serialized() refused the token request")
                require(tokenGranted.map { now - $0 >= settings.tokenLifetime } ?? true || tokenRefused,
                        "a token asked for \(tokenGranted.map { now - $0 }!) after the last one")
            case .signature:
                require(http.method == "GET" && http.target.hasPrefix("/getSignature?token="), "getSignature \(http.method) \(http.target)")
            case .bind:
                require(http.method == "GET" && http.target.hasPrefix("/bindPort?payload="), "bindPort \(http.method) \(http.target)")
                require(session.signature != nil, "a bind without a signature")
            }
            if request != .token {
                require(http.headers.values(for: "Host") == ["amsterdam401:19999"], "Host \(http.headers.values(for: "Host"))")
                require((try? http.serialized()) != nil, "serialized() refused a request the session made")
                require(!http.target.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F }, "target with a space")
            }
        }
        if case .answered(.bind, let response) = sessionInput, answered == .bind, let old = hadSignature,
           case .refused? = try? PIAAnswer.binding(response) {
            require(session.signature != old, "a refused payload is bound again")
            require(effects.contains(.keep(nil)), "a refused payload is not forgotten")
        }
        for case .forwarding(_, let expiry, _) in effects { require(expiry > now, "a port that has expired already") }
        for case .log(_, let message) in effects {
            require(!hasLineBreak(message), "a log line with a line break")
            for secret in secrets where !secret.isEmpty { require(!message.contains(secret), "a secret in the log: \(message)") }
        }
        for secret in secrets where !secret.isEmpty {
            require(!(session.lastProblem ?? "").contains(secret), "a secret in the problem")
        }
        if let deadline = session.nextDeadline, deadline != before { require(deadline >= now, "a deadline in the past") }

        guard !input.isAtEnd else { break }
        switch input.byte() % 8 {
        case 0:
            if let deadline = session.nextDeadline, deadline > now {
                now = deadline
                sendsWithoutTime = 0
            }
            sessionInput = .deadlineReached
        case 1:
            now = now + .seconds(Int64(input.uint16()) * 8)
            sendsWithoutTime = 0
            sessionInput = .deadlineReached
        case 2:
            sessionInput = piaExchange(session.inFlight ?? .bind, response(from: input.chunk()))
        case 3:
            sessionInput = .failed(session.inFlight ?? .token, input.pick([.timedOut, .closed, .connect(.refused)]))
        case 4:
            tunnelUp = true
            sendsWithoutTime = 0
            sessionInput = .tunnelUp(input.pick(tunnels))
        case 5:
            tunnelUp = false
            sendsWithoutTime = 0
            sessionInput = .tunnelDown("fuzz")
        default:
            let request = session.inFlight ?? input.pick([PIASession.Request.token, .signature, .bind])
            sessionInput = piaExchange(request, response(from: piaAnswer(request, &input, unixStart: unixStart)))
        }
    }
    return 0
}

func piaExchange(_ request: PIASession.Request, _ result: Result<HTTPResponse, HTTPClientError>) -> PIASession.Input {
    switch result {
    case .success(let response): .answered(request, response)
    case .failure(let error): .failed(request, error)
    }
}

func piaPayload(port: Int, expiresAt: Int64) -> String {
    let seconds = ((expiresAt % 86_400) + 86_400) % 86_400
    let day = expiresAt >= 0 ? expiresAt / 86_400 : (expiresAt - 86_399) / 86_400
    // Civil from days (Howard Hinnant), for the fuzzer's own timestamps.
    let shifted = day + 719_468
    let era = shifted / 146_097
    let dayOfEra = shifted - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let monthIndex = (5 * dayOfYear + 2) / 153
    let dayOfMonth = dayOfYear - (153 * monthIndex + 2) / 5 + 1
    let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let stamp = "\(year)-\(two(month))-\(two(dayOfMonth))T\(two(seconds / 3600)):\(two(seconds / 60 % 60)):\(two(seconds % 60)).5Z"
    return Base64.encode(Array(#"{"token":"in-payload","port":\#(port),"expires_at":"\#(stamp)"}"#.utf8))
}

/// An answer as PIA gives them to `request`, shaped by the input.
func piaAnswer(_ request: PIASession.Request, _ input: inout FuzzInput, unixStart: Int64) -> [UInt8] {
    let fuzzed = String(decoding: input.bytes(Int(input.byte() % 24)), as: UTF8.self)
    switch request {
    case .token:
        let status = input.pick([200, 200, 200, 401, 500])
        let token = input.uint16()
        return answer(status, [], status == 200 ? input.pick([#"{"token":"tok-\#(token)"}"#, #"{"token":""}"#, fuzzed]) : fuzzed)
    case .signature:
        let status = input.pick([200, 200, 200, 401, 500])
        let port = Int(input.uint16())
        let expires = unixStart + Int64(Int16(bitPattern: input.uint16())) * 3600
        let signature = input.uint16()
        let body = input.pick([#"{"status":"OK","payload":"\#(piaPayload(port: port, expiresAt: expires))","signature":"sig-\#(signature)"}"#,
                               #"{"status":"ERROR","message":"\#(fuzzed)"}"#, fuzzed])
        return answer(status, [], body)
    case .bind:
        let status = input.pick([200, 200, 200, 409, 400, 500])
        let busy = input.uint16()
        let body = input.pick([#"{"status":"OK","message":"port scheduled for add"}"#,
                               #"{"status":"ERROR","message":"port \#(busy) is busy. Try another one."}"#, fuzzed])
        return answer(status, [], body)
    }
}
