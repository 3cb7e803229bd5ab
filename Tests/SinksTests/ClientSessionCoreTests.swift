import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// What every client session now does the one way, through its `ClientSessionCore` and its
/// `ClientLogin`: rules one session had and another did not.
@Suite struct ClientSessionCoreTests {
    /// deluge-web took the password but refused the session: after the pause the session is not
    /// reused, a fresh login is made (as qBittorrent always did).
    @Test func aSessionRefusedRightAfterALoginIsLoggedInAfreshAfterThePause() {
        var driver = DelugeSessionTests().driver()
        driver.feed(.desiredPort(Port(52101)!))
        driver.answer(Recorded.delugeLogin(true, id: 1))
        driver.answer(Recorded.delugeNotAuthenticated(id: 2))
        #expect(driver.session.isLoginRefused && driver.session.nextDeadline == driver.now + .seconds(3900))
        driver.reachDeadline()
        #expect(!driver.session.isLoginRefused)
        #expect(driver.sent.count == 3 && driver.lastBody.contains("auth.login"), "\(driver.lastBody)")
    }

    /// New settings (not a new account) forget which calls were refused despite a fresh login:
    /// each may have its one fresh login again (as qBittorrent always did).
    @Test func newSettingsGiveARefusedCallItsFreshLoginAgain() {
        var settings = DelugeSessionTests.settings
        settings.reannounce = false
        var driver = DelugeSessionTests().verified(settings: settings)
        driver.reachDeadline()
        driver.answer(Recorded.delugeNotAuthenticated(id: 8))
        #expect(driver.lastBody.contains("auth.login"))
        driver.answer(Recorded.delugeLogin(true, id: 9))
        settings.checkInterval = .seconds(600)
        driver.feed(.settingsChanged(settings))
        driver.answer(Recorded.delugeConnected(true, id: 10))
        driver.answer(Recorded.delugeNotAuthenticated(id: 11))
        #expect(driver.lastBody.contains("auth.login"), "a fresh login again, not a failure: \(driver.lastBody)")
        #expect(!driver.session.isLoginRefused && driver.session.status.health == .verified, "no failure")
    }

    /// The same port again while a drift check's read is in flight: qBittorrent stays verified,
    /// as Transmission and Deluge do (it used to say "applying" until the answer).
    @Test func theSamePortAgainWhileARequestIsInFlightStaysVerified() {
        let tests = QBittorrentSessionTests()
        var driver = tests.loggedIn()
        driver.answer(200, QBittorrentSessionTests.preferences(port: 51413))
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        #expect(driver.session.inFlight == .readPreferences(verify: false))
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.session.status.health == .verified)
        let sent = driver.sent.count
        driver.answer(200, QBittorrentSessionTests.preferences(port: 51413))
        #expect(driver.session.status.health == .verified && driver.sent.count == sent, "the read answered both")
    }
}
