import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// The notifier's rules with plain values and an explicit clock: what is news, the rate limit
/// (per topic, folding, the hourly limit), retries with back-off and `Retry-After`, giving up,
/// and the secrets kept out of what it says.
@Suite struct NotifySessionTests {
    static let token = Secret(value: "tk_s3cr3t-token", origin: "test")
    static let url = try! HTTPURL(parsing: "https://ntfy.example.net/portsync-alerts")

    var session = NotifySession(settings: NotifySettings(url: url, preset: .ntfy, token: token))
    var now = Instant(nanoseconds: 5_000_000_000)

    mutating func feed(_ input: NotifySession.Input) -> [NotifySession.Effect] {
        session.handle(input, now: now)
    }

    /// Moves the clock to the session's deadline and feeds it.
    mutating func atDeadline() -> [NotifySession.Effect] {
        guard let deadline = session.nextDeadline else { return [] }
        now = deadline
        return feed(.deadlineReached)
    }

    static func move(_ previous: UInt16?, _ port: UInt16, clients: [NotifyEvent.ClientOutcome] = []) -> NotifyEvent {
        .portChanged(NotifyEvent.PortMove(previous: previous.flatMap(Port.init), port: Port(port)!, source: "natpmp", sourceTitle: "NAT-PMP",
                                          reason: .renewedToNewPort, clients: clients))
    }

    static let qbittorrentVerified = NotifyEvent.ClientOutcome(label: "qbittorrent", title: "qBittorrent v5.0.1", result: .verified)

    static func requests(_ effects: [NotifySession.Effect]) -> [HTTPRequest] {
        effects.compactMap { if case .send(let request) = $0 { request } else { nil } }
    }

    static func logs(_ effects: [NotifySession.Effect], _ level: LogLevel) -> [String] {
        effects.compactMap { if case .log(level, let line) = $0 { line } else { nil } }
    }

    /// The JSON body's members of a json or Gotify request.
    static func body(_ request: HTTPRequest) throws -> [String: JSONValue] {
        try JSONValue.object(request.body).get()
    }

    static func ok() -> Result<HTTPResponse, HTTPClientError> { .success(HTTPResponse(status: 200, body: Array("{}".utf8))) }

    // MARK: Each preset's request, byte for byte

    @Test func ntfyGetsTheTextAsTheBodyWithTitlePriorityTagsAndTheBearerToken() throws {
        let message = NotifyMessage(Self.move(51413, 61527, clients: [Self.qbittorrentVerified]))
        let request = NotifyPreset.ntfy.request(message, url: Self.url, token: Self.token)
        let text = "portsync: port 51413 → 61527 (NAT-PMP: the gateway gave a new port on renewal); qBittorrent v5.0.1 verified"
        #expect(String(decoding: try request.serialized(), as: UTF8.self) == """
            POST /portsync-alerts HTTP/1.1\r
            Host: ntfy.example.net\r
            User-Agent: portsync/0.1\r
            Content-Type: text/plain; charset=utf-8\r
            Title: portsync: port changed\r
            Priority: 3\r
            Tags: arrows_counterclockwise\r
            Authorization: Bearer tk_s3cr3t-token\r
            Content-Length: \(text.utf8.count)\r
            \r
            \(text)
            """)
        let failing = NotifyMessage(.clientFailing(NotifyEvent.ClientTrouble(label: "qbittorrent", title: "qBittorrent v5.0.1", kind: .unreachable,
                                                                              message: "connection refused")))
        let urgent = NotifyPreset.ntfy.request(failing, url: Self.url, token: nil)
        #expect(urgent.headers["Priority"] == "4" && urgent.headers["Tags"] == "x" && urgent.headers["Title"] == "portsync: qBittorrent v5.0.1 unreachable")
        #expect(!urgent.headers.contains("Authorization"), "no token, no Authorization")
        #expect(String(decoding: urgent.body, as: UTF8.self) == "portsync: qBittorrent v5.0.1 is unreachable: connection refused")
    }

    @Test func gotifyGetsTitleMessageAndPriorityAtSlashMessageWithTheAppToken() throws {
        let url = try HTTPURL(parsing: "https://push.example.net:8443/gotify/")
        let message = NotifyMessage(.connectabilityLost(port: Port(51413), why: "nothing listens on the tunnel's address"))
        let request = NotifyPreset.gotify.request(message, url: url, token: Self.token)
        let body = #"{"message":"portsync: port 51413 is not connectable: nothing listens on the tunnel's address","priority":8,"title":"portsync: not connectable"}"#
        #expect(String(decoding: try request.serialized(), as: UTF8.self) == """
            POST /gotify/message HTTP/1.1\r
            Host: push.example.net:8443\r
            User-Agent: portsync/0.1\r
            Content-Type: application/json\r
            X-Gotify-Key: tk_s3cr3t-token\r
            Content-Length: \(body.utf8.count)\r
            \r
            \(body)
            """)
        let given = NotifyPreset.gotify.request(NotifyMessage(.connectabilityRecovered(port: Port(51413))),
                                                url: try HTTPURL(parsing: "https://push.example.net/message"), token: Self.token)
        #expect(given.target == "/message", "a URL that ends in /message already is taken as it is")
        #expect(try Self.body(given)["priority"]?.integer == 5)
    }

    @Test func discordGetsTheContentWithMentionsOffAtTheWebhook() throws {
        let url = try HTTPURL(parsing: "https://discord.com/api/webhooks/1234567890/AbC-webhook_token")
        let message = NotifyMessage(Self.move(nil, 61527))
        let request = NotifyPreset.discord.request(message, url: url, token: nil)
        let body = #"{"allowed_mentions":{"parse":[]},"content":"portsync: port 61527 (NAT-PMP: the gateway gave a new port on renewal)"}"#
        #expect(String(decoding: try request.serialized(), as: UTF8.self) == """
            POST /api/webhooks/1234567890/AbC-webhook_token HTTP/1.1\r
            Host: discord.com\r
            User-Agent: portsync/0.1\r
            Content-Type: application/json\r
            Content-Length: \(body.utf8.count)\r
            \r
            \(body)
            """)
        let tokenless = try HTTPURL(parsing: "https://discord.com/api/webhooks/1234567890")
        let fromFile = NotifyPreset.discord.request(message, url: tokenless, token: Secret(value: "AbC-webhook_token", origin: "test"))
        #expect(fromFile.target == "/api/webhooks/1234567890/AbC-webhook_token" && !fromFile.headers.contains("Authorization"))
    }

    @Test func theGenericPresetPostsTheEventsValuesAsJSON() throws {
        let url = try HTTPURL(parsing: "http://127.0.0.1:8080/hooks/portsync")
        let failed = NotifyEvent.ClientOutcome(label: "transmission", title: "Transmission 4.0.5", result: .failed, detail: "connection refused")
        let message = NotifyMessage(Self.move(51413, 61527, clients: [Self.qbittorrentVerified, failed]))
        let request = NotifyPreset.json.request(message, url: url, token: Self.token)
        let text = "portsync: port 51413 → 61527 (NAT-PMP: the gateway gave a new port on renewal); qBittorrent v5.0.1 verified, Transmission 4.0.5 failed: connection refused"
        let body = #"{"changes":1,"clients":[{"client":"qbittorrent","result":"verified","title":"qBittorrent v5.0.1"},{"client":"transmission","detail":"connection refused","result":"failed","title":"Transmission 4.0.5"}],"event":"port-changed","message":""#
            + text + #"","port":61527,"previous_port":51413,"reason":"renewed-new-port","source":"natpmp","title":"portsync: port changed"}"#
        #expect(String(decoding: try request.serialized(), as: UTF8.self) == """
            POST /hooks/portsync HTTP/1.1\r
            Host: 127.0.0.1:8080\r
            User-Agent: portsync/0.1\r
            Content-Type: application/json\r
            Authorization: Bearer tk_s3cr3t-token\r
            Content-Length: \(body.utf8.count)\r
            \r
            \(body)
            """)
        let root = NotifyPreset.json.request(NotifyMessage(.connectabilityRecovered(port: nil)), url: try HTTPURL(parsing: "http://127.0.0.1:8080"), token: nil)
        #expect(root.target == "/")
        #expect(try Self.body(root) == ["event": .string("connectability-recovered"), "title": .string("portsync: connectable again"),
                                         "message": .string("portsync: connectable again"), "port": .null])
    }

    @Test func theURLNamesThePresetAndTheChecksSayWhatIsMissing() throws {
        func url(_ text: String) throws -> HTTPURL { try HTTPURL(parsing: text) }
        #expect(NotifyPreset.inferred(from: try url("https://discord.com/api/webhooks/1/abc")) == .discord)
        #expect(NotifyPreset.inferred(from: try url("https://ntfy.sh/alerts")) == .ntfy)
        #expect(NotifyPreset.inferred(from: try url("https://push.example.net")) == nil)
        #expect(NotifyPreset.ntfy.problem(url: try url("https://ntfy.sh"), hasToken: false)?.contains("topic") == true)
        #expect(NotifyPreset.gotify.problem(url: try url("https://push.example.net"), hasToken: false)?.contains("token") == true)
        #expect(NotifyPreset.gotify.problem(url: try url("https://push.example.net"), hasToken: true) == nil)
        #expect(NotifyPreset.discord.problem(url: try url("https://discord.com/api/webhooks/1"), hasToken: false)?.contains("needs its token") == true)
        #expect(NotifyPreset.discord.problem(url: try url("https://discord.com/api/webhooks/1/abc"), hasToken: true)?.contains("already") == true)
        #expect(NotifyPreset.discord.problem(url: try url("https://discord.com/channels/1"), hasToken: true) != nil)
        #expect(NotifyPreset.discord.problem(url: try url("https://discord.com/api/webhooks/1/abc"), hasToken: false) == nil)
    }

    // MARK: The rate limit

    @Test mutating func theFirstChangeGoesAtOnceAndABurstAfterItIsFoldedIntoOneMessage() throws {
        #expect(Self.requests(feed(.event(Self.move(51413, 61527)))).count == 1)
        _ = feed(.answered(Self.ok()))
        let start = now
        now = start + .seconds(10)
        #expect(Self.requests(feed(.event(Self.move(61527, 40000)))).isEmpty)
        now = start + .seconds(20)
        #expect(Self.requests(feed(.event(Self.move(40000, 40001, clients: [Self.qbittorrentVerified])))).isEmpty)
        #expect(session.nextDeadline == start + .seconds(60), "held until the port's interval is over")
        let folded = Self.requests(atDeadline())
        #expect(folded.count == 1)
        #expect(String(decoding: folded.first?.body ?? [], as: UTF8.self)
            == "portsync: port 61527 → 40001 after 2 changes (NAT-PMP: the gateway gave a new port on renewal); qBittorrent v5.0.1 verified")
        _ = feed(.answered(Self.ok()))
        #expect(session.counters.sent == [.portChanged: 2] && session.counters.attempts == 2)
        #expect(session.nextDeadline == nil && session.pending == 0)
    }

    @Test mutating func aBurstThatEndsWhereItBeganIsNoNews() {
        _ = feed(.event(Self.move(51413, 61527)))
        _ = feed(.answered(Self.ok()))
        now = now + .seconds(5)
        _ = feed(.event(Self.move(61527, 40000)))
        _ = feed(.event(Self.move(40000, 61527)))
        #expect(session.pending == 0 && session.nextDeadline == nil)
        #expect(Self.requests(atDeadline()).isEmpty)
    }

    @Test mutating func topicsAreLimitedApartAndQueueBehindTheOneInFlight() {
        #expect(Self.requests(feed(.event(Self.move(51413, 61527)))).count == 1)
        #expect(Self.requests(feed(.event(.connectabilityLost(port: Port(61527), why: "firewalled")))).isEmpty, "one request at a time")
        #expect(session.pending == 2)
        let next = Self.requests(feed(.answered(Self.ok())))
        #expect(next.map { $0.headers["Title"] } == ["portsync: not connectable"])
    }

    @Test mutating func theHourlyLimitHoldsTheRestAndSaysSoOnce() {
        session = NotifySession(settings: NotifySettings(url: Self.url, preset: .ntfy, hourlyLimit: 3))
        var sent = 0
        var warnings: [String] = []
        let start = now
        for index in 0..<5 {
            let effects = feed(.clientHealth(label: "qbittorrent.\(index)", title: "qBittorrent", .unreachable("connection refused")))
            sent += Self.requests(effects).count
            warnings += Self.logs(effects, .warning)
            sent += Self.requests(feed(.answered(Self.ok()))).count
        }
        #expect(sent == 3, "five clients failing, three messages")
        #expect(warnings == ["3 notifications within the last hour, the limit: the next waits until the oldest is an hour old"])
        #expect(session.nextDeadline == start + .seconds(3600))
        var later = Self.requests(atDeadline())
        later += Self.requests(feed(.answered(Self.ok())))
        #expect(later.compactMap { $0.headers["Title"] } == ["portsync: qbittorrent.3 unreachable", "portsync: qbittorrent.4 unreachable"])
        _ = feed(.answered(Self.ok()))
        #expect(session.counters.sent[.clientFailing] == 5)
    }

    // MARK: What is news

    @Test mutating func aClientIsToldOncePerTroubleNotPerRetry() {
        func health(_ health: SinkStatus.Health) -> [HTTPRequest] {
            let requests = Self.requests(feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", health)))
            if !requests.isEmpty { _ = feed(.answered(Self.ok())) }
            return requests
        }
        #expect(health(.idle).isEmpty && health(.applying).isEmpty)
        #expect(health(.unreachable("connection refused")).count == 1)
        #expect(health(.applying).isEmpty && health(.unreachable("connection reset by peer")).isEmpty, "a retry is not a new trouble")
        #expect(session.pending == 0, "nor held for later")
        #expect(health(.loginRefused("wrong password")).isEmpty, "another trouble, held for the client's interval")
        let refused = Self.requests(atDeadline())
        #expect(refused.map { String(decoding: $0.body, as: UTF8.self) } == ["portsync: qBittorrent refused the login: wrong password"])
        _ = feed(.answered(Self.ok()))
        now = now + .seconds(120)
        #expect(health(.verified).isEmpty)
        #expect(health(.unreachable("connection refused")).count == 1, "failing again after it worked is news")
        #expect(session.counters.sent[.clientFailing] == 3)
    }

    @Test mutating func aClientVerifiedBeforeItsHeldMessageWentIsNotTold() {
        _ = feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", .unreachable("connection refused")))
        _ = feed(.answered(Self.ok()))
        _ = feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", .verified))
        _ = feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", .failing("HTTP 500")))
        #expect(session.pending == 1)
        _ = feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", .verified))
        #expect(session.pending == 0 && Self.requests(atDeadline()).isEmpty)
    }

    /// The entry point for the connectability verdict: lost, then recovered; a repeat, a
    /// recovery never lost and a blip inside the interval are no news.
    @Test mutating func connectabilityLostAndRecoveredAreToldOnceEach() {
        #expect(Self.requests(feed(.event(.connectabilityRecovered(port: Port(51413))))).isEmpty, "nothing was lost")
        let lost = Self.requests(feed(.event(.connectabilityLost(port: Port(51413), why: "this server forwards on 203.0.113.142 but your traffic leaves from 203.0.113.132"))))
        #expect(lost.map { String(decoding: $0.body, as: UTF8.self) }
            == ["portsync: port 51413 is not connectable: this server forwards on 203.0.113.142 but your traffic leaves from 203.0.113.132"])
        #expect(lost.first?.headers["Priority"] == "4" && lost.first?.headers["Tags"] == "warning")
        _ = feed(.answered(Self.ok()))
        now = now + .seconds(120)
        #expect(Self.requests(feed(.event(.connectabilityLost(port: Port(51413), why: "still")))).isEmpty, "told already")
        let recovered = Self.requests(feed(.event(.connectabilityRecovered(port: Port(51413)))))
        #expect(recovered.map { String(decoding: $0.body, as: UTF8.self) } == ["portsync: port 51413 is connectable again"])
        _ = feed(.answered(Self.ok()))
        now = now + .seconds(10)
        _ = feed(.event(.connectabilityLost(port: Port(51413), why: "a blip")))
        _ = feed(.event(.connectabilityRecovered(port: Port(51413))))
        #expect(session.pending == 0 && Self.requests(atDeadline()).isEmpty, "a blip inside the interval ends where the person last heard")
        #expect(session.counters.sent == [.connectabilityLost: 1, .connectabilityRecovered: 1])
    }

    @Test mutating func eventsLeftOutOfTheSettingsAreNotSent() {
        session = NotifySession(settings: NotifySettings(url: Self.url, preset: .ntfy, events: [.connectabilityRecovered]))
        #expect(Self.requests(feed(.event(Self.move(51413, 61527)))).isEmpty)
        #expect(Self.requests(feed(.clientHealth(label: "qbittorrent", title: "qBittorrent", .unreachable("refused")))).isEmpty)
        #expect(Self.requests(feed(.event(.connectabilityLost(port: nil, why: "firewalled")))).isEmpty)
        #expect(Self.requests(feed(.event(.connectabilityRecovered(port: nil)))).count == 1, "without lost among the events, a recovery is news")
    }

    // MARK: Delivery

    @Test mutating func aFailedDeliveryIsTriedAgainWithBackOffThenGivenUpInOneLine() {
        session = NotifySession(settings: NotifySettings(url: Self.url, preset: .ntfy, attempts: 3, backOff: .seconds(5)))
        _ = feed(.event(Self.move(51413, 61527)))
        let start = now
        var effects = feed(.answered(.failure(.timedOut)))
        #expect(Self.requests(effects).isEmpty && Self.logs(effects, .warning).isEmpty)
        #expect(session.nextDeadline == start + .seconds(5))
        #expect(Self.requests(atDeadline()).count == 1)
        _ = feed(.answered(.success(HTTPResponse(status: 502, body: Array("Bad Gateway".utf8)))))
        #expect(session.nextDeadline == start + .seconds(15), "the wait doubles")
        #expect(Self.requests(atDeadline()).count == 1)
        effects = feed(.answered(.failure(.closed)))
        #expect(Self.logs(effects, .warning) == [
            "the port-changed notification to https://ntfy.example.net was not delivered: connection closed before the answer was complete; 3 attempts made; given up",
        ])
        #expect(session.counters.failed == [.portChanged: 1] && session.counters.sent.isEmpty && session.counters.attempts == 3)
        #expect(session.inFlight == nil && session.nextDeadline == nil)
    }

    @Test mutating func aRefusalIsFinalAndTheNextMessageGoes() {
        _ = feed(.event(Self.move(51413, 61527)))
        _ = feed(.event(.connectabilityLost(port: nil, why: "firewalled")))
        let effects = feed(.answered(.success(HTTPResponse(status: 401, body: Array(#"{"code":40101,"error":"unauthorized"}"#.utf8)))))
        #expect(Self.logs(effects, .warning).first?.contains(#"HTTP 401: {"code":40101,"error":"unauthorized"} (check the token); given up"#) == true)
        #expect(Self.requests(effects).map { $0.headers["Title"] } == ["portsync: not connectable"])
        #expect(session.counters.attempts == 2 && session.counters.failed == [.portChanged: 1])
    }

    @Test mutating func retryAfterAndDiscordsRetryAfterAreHonoured() {
        _ = feed(.event(Self.move(51413, 61527)))
        var limited = HTTPResponse(status: 429, headers: ["Retry-After": "7"], body: Array(#"{"retry_after": 64.57}"#.utf8))
        _ = feed(.answered(.success(limited)))
        #expect(session.nextDeadline == now + .seconds(7), "the header first")
        _ = atDeadline()
        limited = HTTPResponse(status: 429, body: Array(#"{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}"#.utf8))
        _ = feed(.answered(.success(limited)))
        #expect(session.nextDeadline == now + .milliseconds(1500), "Discord's body when there is no header")
        _ = atDeadline()
        let effects = feed(.answered(.success(HTTPResponse(status: 503, headers: ["Retry-After": "1337"]))))
        #expect(Self.logs(effects, .warning).first?.hasSuffix("HTTP 503, and the server asks to wait 1337 s; given up") == true)
        #expect(session.counters.failed == [.portChanged: 1] && session.counters.attempts == 3)
        #expect(NotifySession.retryAfter(HTTPResponse(status: 503, headers: ["Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"])) == nil)
    }

    @Test mutating func theTokenAndTheTopicNeverReachALogLine() {
        _ = feed(.event(Self.move(51413, 61527)))
        let echo = "bad request: Authorization Bearer tk_s3cr3t-token for topic portsync-alerts"
        let effects = feed(.answered(.success(HTTPResponse(status: 400, body: Array(echo.utf8)))))
        let line = Self.logs(effects, .warning).joined()
        #expect(line.contains("<redacted>") && !line.contains("tk_s3cr3t") && !line.contains("portsync-alerts"), "\(line)")
        #expect(line.contains("to https://ntfy.example.net was not delivered"), "the destination is its host, never its path")
    }

    @Test mutating func aRequestLostWithTheOldConnectionIsSentAgainWithTheNewSettings() throws {
        _ = feed(.event(Self.move(51413, 61527)))
        let moved = try HTTPURL(parsing: "https://ntfy.example.org/other-topic")
        let effects = feed(.settingsChanged(NotifySettings(url: moved, preset: .ntfy), requestLost: true))
        #expect(Self.requests(effects).map { "\($0.headers["Host"] ?? "") \($0.target)" } == ["ntfy.example.org /other-topic"])
        #expect(session.inFlight?.attempt == 1)
    }
}
