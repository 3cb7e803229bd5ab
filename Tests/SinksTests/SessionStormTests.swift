import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// Issue 20: a client (or a proxy in front of it) that refuses one kind of call for good gets
/// at most one fresh login per refused call, then the session's back-off; never a login storm.
/// With plain values: each round answers every request the session sends (at most 50, so the
/// old storm ends the round instead of the test), then the clock goes to the next deadline.
@Suite struct SessionStormTests {
    // MARK: Deluge

    typealias DelugeDriver = ClientSessionDriver<DelugeSession>

    /// Answers every call of a Deluge session with `answer(method, id)` until none is in flight.
    static func answerAll(_ driver: inout DelugeDriver, _ answer: (String, Int) -> String) {
        var answered = 0
        while let (call, id) = driver.session.inFlight, answered < 50 {
            answered += 1
            driver.answer(Recorded.deluge(answer(call.method, id), cookie: call.method == "auth.login" || !call.isCore))
        }
    }

    /// Rounds of a Deluge session against `answer`; the delays between them.
    static func delugeRounds(_ rounds: Int, _ answer: (String, Int) -> String) -> (DelugeDriver, [Duration]) {
        var settings = DelugeSessionTests.settings
        settings.reannounce = false
        var driver = DelugeDriver(DelugeSession(settings: settings))
        driver.feed(.desiredPort(Port(52101)!))
        answerAll(&driver, answer)
        var delays: [Duration] = []
        for _ in 1..<rounds {
            guard let deadline = driver.session.nextDeadline else { break }
            delays.append(deadline - driver.now)
            driver.reachDeadline()
            answerAll(&driver, answer)
        }
        return (driver, delays)
    }

    static func result(_ json: String, _ id: Int) -> String { #"{"result": \#(json), "error": null, "id": \#(id)}"# }
    static func error(_ code: Int, _ message: String, _ id: Int) -> String {
        #"{"result": null, "error": {"message": "\#(message)", "code": \#(code)}, "id": \#(id)}"#
    }

    static let backOff: [Duration] = [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(15), .seconds(15)]

    @Test func coreCallsNotAuthenticatedGetOneFreshLoginThenTheBackOff() {
        let (driver, delays) = Self.delugeRounds(8) { method, id in
            switch method {
            case "auth.login": Self.result("true", id)
            case "web.connected": Self.result("true", id)
            default: Self.error(1, "Not authenticated", id)
            }
        }
        #expect(driver.session.counters.logins == 2, "the first login and one fresh one")
        #expect(driver.session.counters.failedLogins == 0 && !driver.session.isLoginRefused)
        #expect(driver.sent.count == 6 + 7, "login, connected, read, login, connected, read; then one read a round")
        #expect(delays == Self.backOff)
        #expect(driver.logs.filter { $0.0 == .error }.count == 1, "said once: \(driver.allLogText)")
        #expect(driver.session.status.health == .failing("deluge-web refuses core.get_config_values (\"Not authenticated\") even with a fresh session, while the session's other calls work"))
    }

    @Test func unknownMethodAlthoughConnectedIsAFailureWithBackOffNotALoop() {
        let (driver, delays) = Self.delugeRounds(8) { method, id in
            switch method {
            case "auth.login": Self.result("true", id)
            case "web.connected": Self.result("true", id)
            default: Self.error(2, "Unknown method", id)
            }
        }
        #expect(driver.session.counters.logins == 1)
        #expect(driver.sent.count == 5 + 2 * 7, "login, connected, read, connected, read; then connected and read a round")
        #expect(delays == Self.backOff)
        #expect(driver.logs.filter { $0.0 == .error }.count == 1, "said once: \(driver.allLogText)")
        #expect(driver.logs.filter { $0.0 == .warning }.count == 1)
        #expect(driver.session.status.health == .failing("deluge-web says it is connected to its daemon, yet answers \"Unknown method\" to core.get_config_values"))
    }

    @Test func anErrorWhoseTextChangesOnEveryRetryIsStillSaidOnce() {
        var attempt = 0
        let (driver, _) = Self.delugeRounds(6) { method, id in
            switch method {
            case "auth.login": return Self.result("true", id)
            case "web.connected": return Self.result("true", id)
            default:
                attempt += 1
                return Self.error(3, "KeyError: listen_ports (attempt \(attempt) at 12:00:0\(attempt))", id)
            }
        }
        #expect(attempt == 6)
        #expect(driver.logs.filter { $0.0 == .error }.count == 1, "\(driver.allLogText)")
        #expect(driver.logs.filter { $0.0 == .debug && $0.1.hasPrefix("still: ") }.count == 5)
    }

    // MARK: qBittorrent

    typealias QBDriver = QBittorrentSessionTests.Driver

    /// Answers every request of a qBittorrent session with `answer(path)` until none is in flight.
    static func answerAll(_ driver: inout QBDriver, _ answer: (String) -> (Int, String)) {
        var answered = 0
        while driver.session.inFlight != nil, answered < 50, let path = driver.sent.last?.target {
            answered += 1
            let (status, body) = answer(path)
            driver.answer(status, body, headers: path.hasSuffix("/login") ? ["Set-Cookie": "SID=s\(driver.sent.count)"] : [:])
        }
    }

    @Test func aProxyThatForbidsOnlySetPreferencesGetsOneFreshLoginThenTheBackOff() {
        let tests = QBittorrentSessionTests()
        var driver = QBDriver(session: QBittorrentSession(settings: tests.settings()), now: tests.start)
        let answer: (String) -> (Int, String) = { path in
            switch path {
            case "/api/v2/auth/login": (200, "Ok.")
            case "/api/v2/app/version": (200, "v4.5.2")
            case "/api/v2/app/preferences": (200, QBittorrentSessionTests.preferences(port: 6881))
            default: (403, "Forbidden")
            }
        }
        driver.feed(.desiredPort(Port(51413)!))
        Self.answerAll(&driver, answer)
        var delays: [Duration] = []
        for _ in 1..<8 {
            guard let deadline = driver.session.nextDeadline else { break }
            delays.append(deadline - driver.now)
            driver.now = deadline
            driver.feed(.deadlineReached)
            Self.answerAll(&driver, answer)
        }
        #expect(driver.session.counters.logins == 2, "the first login and one fresh one")
        #expect(driver.session.counters.failedLogins == 0 && !driver.session.isLoginRefused)
        #expect(driver.sent.count == 7 + 2 * 7, "login, version, read, write, login, read, write; then read and write a round")
        #expect(delays == Self.backOff)
        #expect(driver.logs.filter { $0.0 == .error }.count == 1, "said once")
        #expect(driver.session.status.health == .failing("qBittorrent (or a proxy in front of it) refuses POST /api/v2/app/setPreferences with 403 even with a fresh session, while the session's other calls work"))
    }

    @Test func aForbiddenReannounceIsAWarningThatLeavesTheSessionAlone() {
        let tests = QBittorrentSessionTests()
        var driver = tests.movedAndVerified()
        #expect(driver.lastTarget == tests.reannounceTarget)
        let sent = driver.sent.count
        driver.answer(403, "Forbidden")
        #expect(driver.sent.count == sent, "no login")
        #expect(driver.logs.last?.0 == .warning)
        #expect(driver.logged("POST /api/v2/torrents/reannounce answered 403 \"Forbidden\": the trackers hear of port 51413 at their next announce"))
        #expect(driver.session.status.health == .verified && !driver.session.isLoginRefused)
        #expect(driver.session.counters.failedLogins == 0 && driver.session.counters.logins == 1)
        driver.now = driver.now + .seconds(120)
        tests.move(&driver, to: 40000)
        #expect(!driver.logged("noted, but not applied"))
    }
}
