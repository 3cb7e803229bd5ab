import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// `.connect` at the daemon's start: qBittorrent is reached before any port (login, version),
/// and a wrong password shows then, tried once.
extension QBittorrentSessionTests {
    @Test func connectLogsInAndReadsTheVersionBeforeAnyPort() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        #expect(driver.lastTarget == "POST /api/v2/auth/login")
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123"])
        #expect(driver.lastTarget == "GET /api/v2/app/version")
        driver.answer(200, "v4.5.2")
        #expect(driver.session.inFlight == nil && driver.sent.count == 2, "no port yet: nothing more")
        #expect(driver.session.status.version == "v4.5.2" && driver.session.status.health == .idle)
        #expect(driver.session.nextDeadline == nil)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.lastTarget == "GET /api/v2/app/preferences", "the port then needs no second login")
        #expect(driver.session.counters.logins == 1)
    }

    @Test func aWrongPasswordAtConnectIsRefusedOnceAndNotRetried() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        driver.answer(200, "Fails.")
        #expect(driver.session.isLoginRefused && driver.session.counters.failedLogins == 1)
        driver.now = start + .seconds(600)
        driver.feed(.deadlineReached)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.sent.count == 1, "one login, then nothing until the pause ends or the settings change")
    }

    @Test func anUnreachableQBittorrentAtConnectIsRetriedWithBackOff() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        driver.feed(.requestFailed(.connect(.refused)))
        if case .unreachable = driver.session.status.health {} else { Issue.record("\(driver.session.status.health)") }
        #expect(driver.session.nextDeadline == start + .milliseconds(500))
        driver.now = start + .milliseconds(500)
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == "POST /api/v2/auth/login" && driver.sent.count == 2)
    }
}
