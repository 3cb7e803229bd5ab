import Domain
import Foundation
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

typealias Port = Domain.Port

/// The sink in a real loop against a real qbittorrent-nox 4.5.2 (locked-down profile).
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class QBittorrentSinkTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop

    init() throws {
        loop = try EventLoop(logger: log.logger)
    }

    /// The re-announce off unless asked for: these tests count requests without it.
    func settings(_ instance: QBittorrentInstance, password: String = QBittorrentInstance.password,
                  checkInterval: Duration = .seconds(300), interface: String? = nil, reannounce: Bool = false) -> QBittorrentSettings {
        QBittorrentSettings(url: instance.url,
                            authentication: .password(username: QBittorrentInstance.username, password: Secret(value: password, origin: "test")),
                            interface: interface, checkInterval: checkInterval,
                            retryInitial: .milliseconds(100), retryMax: .milliseconds(500), reannounce: reannounce)
    }

    func waitForVerified(_ sink: QBittorrentSink, _ port: Port, seconds: Double = 15) throws -> Bool {
        try runUntil(loop, seconds: seconds) { sink.status.health == .verified && sink.status.verifiedPort == port }
    }

    @Test func logsInSetsAndVerifiesThenSendsNothingForTheSamePort() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        #expect(try qbittorrent.listenPort() == Int(port.value))
        #expect(try qbittorrent.preferences()["upnp"]?.bool == false)
        #expect(sink.status.version == "v4.5.2")
        #expect(sink.counters.logins == 1 && sink.counters.applies == 1)
        #expect(log.count("listen_port \(port) applied and verified") == 1)
        #expect(try runUntil(loop, seconds: 5) { ListeningSockets.check(port: port.value) == .listening }, "qBittorrent listens on it at once")

        let requests = sink.counters.requests
        sink.apply(port)
        try runFor(loop, seconds: 0.3)
        #expect(sink.counters.requests == requests + 1, "the same port again: one read to check, no write")
        #expect(sink.counters.applies == 1)

        // A second sink (a restart) finds the port already set: it reads and writes nothing.
        let second = QBittorrentSink(loop: loop, settings: settings(qbittorrent))
        second.apply(port)
        #expect(try waitForVerified(second, port))
        #expect(second.counters.applies == 0)
        #expect(second.connectionsOpened == 1, "one kept-alive connection for login, version and preferences")
        #expect(!log.text.contains(QBittorrentInstance.password), "the password never reaches a log or trace line")
        #expect(!log.text.contains(sink.sessionCookie ?? "no cookie"), "nor the session cookie")
    }

    @Test func aPortChangedBehindItsBackIsRestoredByTheDriftCheck() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, checkInterval: .milliseconds(500)))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        try qbittorrent.setPreferences(#"{"listen_port":\#(freePort())}"#)
        #expect(try qbittorrent.listenPort() != Int(port.value))
        #expect(try runUntil(loop, seconds: 10) { sink.counters.applies == 2 && sink.status.health == .verified })
        #expect(try qbittorrent.listenPort() == Int(port.value))
        #expect(log.count("changed behind portsync's back") == 1)
    }

    @Test func anEndedSessionIsReplacedByExactlyOneNewLogin() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, checkInterval: .milliseconds(300)))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        let cookie = try #require(sink.sessionCookie)
        let logout = try RawHTTP.request(port: qbittorrent.webUIPort, "POST", "/api/v2/auth/logout", cookie: cookie)
        #expect(logout.status == 200)
        #expect(try runUntil(loop, seconds: 10) { sink.counters.logins == 2 && sink.status.health == .verified })
        try runFor(loop, seconds: 1)
        #expect(sink.counters.logins == 2, "and no more")
        #expect(sink.counters.failedLogins == 0)
        #expect(log.count("session expired (403 on /api/v2/app/preferences); logging in again") == 1)
    }

    @Test func qBittorrentKilledAndRestartedGetsThePortBack() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, checkInterval: .milliseconds(300)))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        qbittorrent.stop()
        #expect(try runUntil(loop, seconds: 10) {
            if case .unreachable = sink.status.health { return true } else { return false }
        })
        try runFor(loop, seconds: 1.5)
        // Restarted with another port in its profile, as after a reset.
        try qbittorrent.start(torrentPort: freePort())
        #expect(try qbittorrent.listenPort() != Int(port.value))
        #expect(try runUntil(loop, seconds: 15) { sink.status.health == .verified && sink.counters.applies == 2 })
        #expect(try qbittorrent.listenPort() == Int(port.value))
        #expect(log.count("error   qbittorrent.http: qBittorrent at") == 1, "one error line per state change, not one per retry: \(log.text)")
        #expect(log.count("qBittorrent is fine again") == 1)
    }

    @Test func aWrongPasswordMeansExactlyOneFailedLoginAndNoBan() throws {
        let qbittorrent = try QBittorrentInstance()
        // From 127.0.0.2, so that even a ban could not touch 127.0.0.1.
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, password: "wrong-password", checkInterval: .milliseconds(200)),
                                   sourceAddress: .v4(IPv4Address(127, 0, 0, 2), port: 0))
        sink.apply(Port(freePort())!)
        #expect(try runUntil(loop, seconds: 10) { sink.counters.failedLogins == 1 })
        sink.apply(Port(freePort())!)
        sink.reassert()
        try runFor(loop, seconds: 3)
        #expect(sink.counters.failedLogins == 1)
        guard case .loginRefused(let message) = sink.status.health else {
            Issue.record("status is \(sink.status.health)")
            return
        }
        #expect(message.contains("rejected the username \"admin\" or its password"))
        #expect(log.count("no more logins until the configuration is reloaded") == 1)
        #expect(qbittorrent.log.components(separatedBy: "WebAPI login failure").count - 1 == 1, "qBittorrent saw one failure")
        #expect(try qbittorrent.login(from: "127.0.0.2") != nil, "127.0.0.2 is not banned")
        #expect(!log.text.contains("wrong-password"))

        // The configuration is fixed and reloaded: it logs in and applies.
        sink.update(settings(qbittorrent))
        #expect(try runUntil(loop, seconds: 10) { sink.status.health == .verified })
    }

    @Test func theLocalhostBypassNeedsNoLogin() throws {
        let qbittorrent = try QBittorrentInstance(localHostAuth: false)
        let sink = QBittorrentSink(loop: loop, settings: QBittorrentSettings(url: qbittorrent.url, authentication: .none,
                                                                             retryInitial: .milliseconds(100)))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        #expect(sink.counters.logins == 0)
        #expect(try qbittorrent.listenPort() == Int(port.value))
    }

    @Test func reassertMovesThePortAwayAndBackAndQBittorrentListensAgain() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        sink.reassert()
        #expect(try runUntil(loop, seconds: 10) { sink.counters.reasserts == 1 && sink.counters.applies == 2 && sink.status.health == .verified })
        #expect(try qbittorrent.listenPort() == Int(port.value))
        #expect(try runUntil(loop, seconds: 5) { ListeningSockets.check(port: port.value) == .listening })
    }

    @Test func aPortNobodyListensOnIsReassertedOnceThenReported() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, checkInterval: .milliseconds(300)))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        #expect(try runUntil(loop, seconds: 5) { ListeningSockets.check(port: port.value) == .listening })
        // Bound to an interface that does not exist, qBittorrent keeps listen_port but listens
        // nowhere: what a recreated tunnel leaves behind.
        try qbittorrent.setPreferences(#"{"current_network_interface":"psync-gone0"}"#)
        #expect(try runUntil(loop, seconds: 5) { ListeningSockets.check(port: port.value) == .absent })
        #expect(try runUntil(loop, seconds: 10) { sink.status.health == .failing("not listening on port \(port)") })
        #expect(sink.counters.reasserts == 1)
        #expect(log.count("nothing listens on it; making it re-open its sockets") == 1)
        try runFor(loop, seconds: 1.5)
        #expect(sink.counters.reasserts == 1, "no reassert loop while it stays deaf")
        #expect(try qbittorrent.listenPort() == Int(port.value))

        // The interface binding is undone: it listens again and the sink says so.
        try qbittorrent.setPreferences(#"{"current_network_interface":"lo"}"#)
        #expect(try runUntil(loop, seconds: 10) { sink.status.health == .verified })
    }

    @Test func bindingToAnInterfaceQBittorrentDoesNotKnowWarnsAndSetsIt() throws {
        let qbittorrent = try QBittorrentInstance()
        let sink = QBittorrentSink(loop: loop, settings: settings(qbittorrent, interface: "psync-none0"))
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try waitForVerified(sink, port))
        #expect(log.count("qBittorrent does not list interface psync-none0") == 1)
        #expect(try qbittorrent.preferences()["current_network_interface"]?.string == "psync-none0")
    }
}

/// What qBittorrent 4.5.2 cannot show: 5.2's login and API keys, a ban, garbage, silence.
@Suite final class QBittorrentSinkFakeServerTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop
    let fake: FakeQBittorrent52

    init() throws {
        loop = try EventLoop(logger: log.logger)
        fake = try FakeQBittorrent52(loop: loop)
    }

    func sink(_ authentication: QBittorrentSettings.Authentication, requestTimeout: Duration = .seconds(5)) -> QBittorrentSink {
        QBittorrentSink(loop: loop, settings: QBittorrentSettings(url: fake.server.url, authentication: authentication,
                                                                  checkInterval: .milliseconds(200), retryInitial: .milliseconds(50),
                                                                  retryMax: .milliseconds(200), requestTimeout: requestTimeout))
    }

    func password(_ text: String) -> QBittorrentSettings.Authentication {
        .password(username: "admin", password: Secret(value: text, origin: "test"))
    }

    @Test func theQBittorrent52LoginWith204AndTheNewCookieName() throws {
        let sink = sink(password("right-password"))
        sink.apply(Port(51413)!)
        #expect(try runUntil(loop, seconds: 5) { sink.status.health == .verified }, "\(log.text)")
        #expect(fake.listenPort == 51413)
        #expect(sink.status.version == "v5.2.3")
        #expect(fake.loginRequests == 1)
        #expect(fake.server.requests.last?.headers["Cookie"] == "\(fake.cookieName)=s1")
        #expect(fake.server.requests.allSatisfy { $0.headers["Host"] == "127.0.0.1:\(fake.server.port)" && $0.headers["Referer"] == nil && $0.headers["Origin"] == nil })
    }

    @Test func aWrongPasswordOn52Is401AndOneAttempt() throws {
        let sink = sink(password("wrong"))
        sink.apply(Port(51413)!)
        try runFor(loop, seconds: 1.5)
        #expect(fake.loginRequests == 1)
        #expect(sink.counters.failedLogins == 1)
        #expect(log.count("login failed (401)") == 1)
    }

    @Test func theBanMessageStopsLoggingIn() throws {
        fake.banned = true
        let sink = sink(password("right-password"))
        sink.apply(Port(51413)!)
        try runFor(loop, seconds: 1)
        #expect(fake.loginRequests == 1)
        #expect(log.count("banned this IP address after too many failed logins") == 1)
        #expect(sink.counters.failedLogins == 0, "the ban answer is not a failed attempt of ours")
    }

    @Test func anAPIKeyIsSentAsBearerWithoutAnyLogin() throws {
        fake.apiKey = "qbt_abcdefghijklmnopqrstuvwxyz12"
        let sink = sink(.apiKey(Secret(value: "qbt_abcdefghijklmnopqrstuvwxyz12", origin: "test")))
        sink.apply(Port(40000)!)
        #expect(try runUntil(loop, seconds: 5) { sink.status.health == .verified })
        #expect(fake.listenPort == 40000)
        #expect(fake.loginRequests == 0)
        #expect(!log.text.contains("qbt_abcdefghijklmnopqrstuvwxyz12"))
    }

    @Test func garbageAnswersAreNamedAndTheSinkRecoversWhenTheyStop() throws {
        fake.preferencesBody = "<html><body>Unauthorized proxy</body></html>"
        let sink = sink(password("right-password"))
        sink.apply(Port(51413)!)
        #expect(try runUntil(loop, seconds: 5) {
            sink.status.health == .failing("answer to GET /api/v2/app/preferences is not a JSON object (unexpected character at byte 0): \"<html><body>Unauthorized proxy</body></html>\"")
        })
        try runFor(loop, seconds: 0.5)
        #expect(log.count("error   qbittorrent.http: answer to GET /api/v2/app/preferences is not a JSON object") == 1,
                "logged once, however often retried")
        fake.preferencesBody = nil
        #expect(try runUntil(loop, seconds: 5) { sink.status.health == .verified })
        #expect(fake.listenPort == 51413)
    }

    @Test func aBareCRInTheCookieIsAMalformedAnswerNotACrash() throws {
        fake.crInCookie = true
        let sink = sink(password("right-password"))
        sink.apply(Port(51413)!)
        #expect(try runUntil(loop, seconds: 5) {
            sink.status.health == .failing("POST /api/v2/auth/login: malformed HTTP response: header line 1 holds a bare CR")
        })
        fake.crInCookie = false
        #expect(try runUntil(loop, seconds: 5) { sink.status.health == .verified })
    }

    @Test func aServerThatNeverAnswersTimesOut() throws {
        fake.silent = true
        let sink = sink(password("right-password"), requestTimeout: .milliseconds(300))
        sink.apply(Port(51413)!)
        #expect(try runUntil(loop, seconds: 5) {
            sink.status.health == .failing("POST /api/v2/auth/login: no answer in time")
        })
        fake.silent = false
        #expect(try runUntil(loop, seconds: 5) { sink.status.health == .verified })
    }
}

extension QBittorrentSinkTests {
    /// The BitTorrent port given as the Web UI's URL: qBittorrent resets the HTTP request, and
    /// the UDP socket beside the port says what it is.
    @Test func itsBitTorrentPortAsTheURLIsNamedAsSuch() throws {
        let qbittorrent = try QBittorrentInstance()
        var wrong = settings(qbittorrent)
        wrong.url = try HTTPURL(parsing: "http://127.0.0.1:\(qbittorrent.torrentPort)")
        let sink = QBittorrentSink(loop: loop, settings: wrong)
        sink.connect()
        #expect(try runUntil(loop, seconds: 10) { if case .unreachable = sink.status.health { true } else { false } })
        #expect(sink.status.health == .unreachable("qBittorrent at http://127.0.0.1:\(qbittorrent.torrentPort) is unreachable: port \(qbittorrent.torrentPort) is a BitTorrent port (peers connect there; a UDP socket shares it and it dropped the HTTP request), not the Web UI: set url to the Web UI's address and port"))
    }
}

@Suite struct BitTorrentPortTests {
    static let wildcard = [ListeningSockets.Listener(address: "0.0.0.0", interfaceIndex: 0)]

    @Test func aDroppedRequestToALocalPortWithAUDPSocketIsABitTorrentPort() throws {
        let local = try HTTPURL(parsing: "http://localhost:51413")
        #expect(BitTorrentPort.diagnosis(local, .connect(.reset)) { _ in Self.wildcard } != nil)
        #expect(BitTorrentPort.diagnosis(local, .closedUnanswered) { _ in Self.wildcard } != nil)
        #expect(BitTorrentPort.diagnosis(local, .connect(.refused)) { _ in Self.wildcard } == nil, "nothing listens: not a BitTorrent port")
        #expect(BitTorrentPort.diagnosis(local, .connect(.reset)) { _ in [] } == nil, "no UDP socket: some other server")
        let remote = try HTTPURL(parsing: "http://192.0.2.7:51413")
        #expect(BitTorrentPort.diagnosis(remote, .connect(.reset)) { _ in Self.wildcard } == nil, "a local wildcard says nothing of another machine")
        let bound = [ListeningSockets.Listener(address: "192.0.2.7", interfaceIndex: 0)]
        #expect(BitTorrentPort.diagnosis(remote, .connect(.reset)) { _ in bound } != nil, "this machine's address, bound")
        let v6 = try HTTPURL(parsing: "http://[::1]:51413")
        #expect(BitTorrentPort.diagnosis(v6, .connect(.reset)) { _ in [ListeningSockets.Listener(address: "[::]", interfaceIndex: 0)] } != nil)
    }
}
