import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// The Deluge session with plain values, answered with what deluge-web 2.0.3 really sent
/// (`Recorded`). Call ids count from 1, one per call.
@Suite struct DelugeSessionTests {
    static let settings = ClientSettings(url: try! HTTPURL(parsing: "http://127.0.0.1:8112"), password: Secret(value: "web\"pass", origin: "test"))

    typealias Driver = ClientSessionDriver<DelugeSession>

    func driver(_ settings: ClientSettings = settings) -> Driver { Driver(DelugeSession(settings: settings)) }

    @Test func noPasswordIsAFailureSaidOnceNotAnApplyForever() {
        var settings = Self.settings
        settings.password = nil
        var driver = driver(settings)
        driver.feed(.desiredPort(Port(52101)!))
        driver.feed(.desiredPort(Port(52102)!))
        #expect(driver.sent.isEmpty)
        #expect(driver.session.status.health == .failing("deluge-web needs its password: none is configured"))
        #expect(driver.logs.filter { $0.0 == .error }.count == 1)
        driver.feed(.settingsChanged(Self.settings))
        #expect(driver.sent.count == 1, "the login, once a password is configured")
    }

    /// Desired 52101, logged in, deluge-web connected to deluged by portsync: 4 calls.
    func handshake(settings: ClientSettings = settings) -> Driver {
        var driver = driver(settings)
        driver.feed(.desiredPort(Port(52101)!))
        driver.answer(Recorded.delugeLogin(true, id: 1))
        driver.answer(Recorded.delugeConnected(false, id: 2))
        driver.answer(Recorded.delugeHosts(id: 3))
        driver.answer(Recorded.delugeConnect(true, id: 4))
        return driver
    }

    /// The handshake, then the ports read: 5 calls.
    func connected(port: Int = 52100, settings: ClientSettings = settings) -> Driver {
        var driver = handshake(settings: settings)
        driver.answer(Recorded.delugeConfigValues(port: port, id: 5))
        return driver
    }

    /// Verified on 52101 after a write, the re-announce asked for: 8 calls.
    func verified(settings: ClientSettings = settings) -> Driver {
        var driver = connected(settings: settings)
        driver.answer(Recorded.delugeNull(id: 6))
        driver.answer(Recorded.delugeListenPorts(52101, id: 7))
        return driver
    }

    /// A listener that did not open: Deluge's config ignores a value equal to its own, so the
    /// port moves one away and back (libtorrent re-opens its sockets for each), each read back.
    @Test func aReassertMovesThePortOneAwayAndBack() {
        var driver = verified()
        driver.answer(Recorded.delugeTorrents(["aa11"], id: 8))
        driver.answer(Recorded.delugeNull(id: 9))
        driver.feed(.reassert)
        #expect(driver.session.status.health == .applying)
        #expect(driver.lastBody == #"{"id":10,"method":"core.set_config","params":[{"listen_ports":[52102,52102],"random_port":false}]}"#)
        driver.answer(Recorded.delugeNull(id: 10))
        driver.answer(Recorded.delugeListenPorts(52102, id: 11))
        driver.answer(Recorded.delugeConfigValues(port: 52102, id: 12))
        #expect(driver.lastBody == #"{"id":13,"method":"core.set_config","params":[{"listen_ports":[52101,52101],"random_port":false}]}"#)
        driver.answer(Recorded.delugeNull(id: 13))
        driver.answer(Recorded.delugeListenPorts(52101, id: 14))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(52101))
        #expect(driver.session.counters.listenerRepairs == 1 && driver.session.counters.driftRepairs == 0)
    }

    @Test func theCallsAreJSONWithTheirOwnIdsAndExactlyApplicationJSON() throws {
        var driver = driver()
        driver.feed(.desiredPort(Port(52101)!))
        let login = try #require(driver.sent.first)
        #expect(login.method == "POST" && login.target == "/json")
        #expect(login.headers["Content-Type"] == "application/json")
        #expect(login.headers["Cookie"] == nil)
        #expect(driver.lastBody == #"{"id":1,"method":"auth.login","params":["web\"pass"]}"#)
        driver.answer(Recorded.delugeLogin(true, id: 1))
        #expect(driver.lastBody == #"{"id":2,"method":"web.connected","params":[]}"#)
        #expect(driver.sent.last?.headers["Cookie"] == Recorded.delugeCookie)
    }

    @Test func aWebUINotConnectedToItsDaemonIsConnectedThenThePortWrittenAndReadBack() {
        var driver = connected()
        #expect(driver.bodies[2] == #"{"id":3,"method":"web.get_hosts","params":[]}"#)
        #expect(driver.bodies[3] == #"{"id":4,"method":"web.connect","params":["a1b2c3d4e5f60718293a4b5c6d7e8f90"]}"#)
        #expect(driver.logged("deluge-web connected to its daemon at 127.0.0.1:58900"))
        #expect(driver.bodies[4] == #"{"id":5,"method":"core.get_config_values","params":[["listen_ports","random_port"]]}"#)
        #expect(driver.lastBody == #"{"id":6,"method":"core.set_config","params":[{"listen_ports":[52101,52101],"random_port":false}]}"#)
        driver.answer(Recorded.delugeNull(id: 6))
        #expect(driver.lastBody == #"{"id":7,"method":"core.get_config_value","params":["listen_ports"]}"#)
        driver.answer(Recorded.delugeListenPorts(52101, id: 7))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(52101))
        #expect(driver.logs.contains { $0.0 == .notice && $0.1 == "Deluge: port 52101 applied and verified" })
    }

    @Test func aPortAlreadyRightIsNotWrittenNorAnnounced() {
        let driver = connected(port: 52101)
        #expect(driver.sent.count == 5)
        #expect(driver.session.status.health == .verified)
    }

    @Test func randomPortOnIsAlsoADifference() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52101)!))
        driver.answer(Recorded.delugeLogin(true, id: 1))
        driver.answer(Recorded.delugeConnected(true, id: 2))
        driver.answer(Recorded.delugeConfigValues(port: 52101, random: true, id: 3))
        #expect(driver.logged("Deluge has random_port true"))
        #expect(driver.lastBody.contains("core.set_config"))
    }

    @Test func afterAVerifiedChangeTheTrackersAreToldOnceItListensAndANewPortAtOnce() {
        var driver = verified()
        #expect(driver.listenerChecks == [Port(52101)!], "the socket table is looked at first")
        #expect(driver.lastBody == #"{"id":8,"method":"core.get_session_state","params":[]}"#)
        driver.answer(Recorded.delugeTorrents(["aa11", "bb22"], id: 8))
        #expect(driver.lastBody == #"{"id":9,"method":"core.force_reannounce","params":[["aa11","bb22"]]}"#)
        driver.answer(Recorded.delugeNull(id: 9))
        #expect(driver.session.counters.reannounces == 1)
        driver.advance(.seconds(10))
        driver.listener = nil
        driver.feed(.desiredPort(Port(52102)!))
        driver.answer(Recorded.delugeNull(id: 10))
        driver.answer(Recorded.delugeListenPorts(52102, id: 11))
        #expect(driver.sent.count == 11 && driver.listenerChecks.last == Port(52102), "waiting for the listener")
        driver.feed(.listenerChecked(.absent))
        #expect(driver.session.nextDeadline == driver.now + ListenerGate.pollInterval)
        driver.reachDeadline()
        driver.feed(.listenerChecked(.listening))
        #expect(driver.lastBody.contains("core.get_session_state"), "a new port within the minute: at once")
        driver.answer(Recorded.delugeTorrents(["aa11"], id: 12))
        driver.answer(Recorded.delugeNull(id: 13))
        #expect(driver.session.counters.reannounces == 2)
        #expect(driver.logged("about port 52102 once it listened on it (5 ms after it took the port)"))
    }

    /// A new port while the last one's listener is still awaited (an unreadable socket table:
    /// a second's wait): the wait ends with it, so no stale wake-up is left behind, and the
    /// trackers are never told of the port being left (found by the DelugeSession fuzz target:
    /// the wait's deadline outlived the port and surfaced in the past).
    @Test func aNewPortEndsTheWaitForTheLastOnesListener() {
        var driver = verified()
        driver.answer(Recorded.delugeTorrents(["aa11"], id: 8))
        driver.answer(Recorded.delugeNull(id: 9))
        driver.advance(.seconds(10))
        driver.listener = nil
        driver.feed(.desiredPort(Port(52102)!))
        driver.answer(Recorded.delugeNull(id: 10))
        driver.answer(Recorded.delugeListenPorts(52102, id: 11))
        driver.feed(.listenerChecked(.unknown("no socket table")))
        let wake = driver.now + ListenerGate.remoteSettle
        #expect(driver.session.nextDeadline == wake, "waiting a second for 52102's listener")
        driver.feed(.desiredPort(Port(52103)!))
        #expect(driver.session.nextDeadline != wake, "the wait for 52102 is over")
        let sent = driver.sent.count
        driver.advance(.seconds(2))
        driver.feed(.deadlineReached)
        #expect(!driver.bodies.dropFirst(sent).contains { $0.contains("core.get_session_state") }, "52102 is not announced")
        #expect(driver.session.counters.reannounces == 1)
    }

    @Test func reannounceOffMakesNoCall() {
        var settings = Self.settings
        settings.reannounce = false
        let driver = verified(settings: settings)
        #expect(driver.sent.count == 7)
    }

    @Test func aRefusedPasswordStopsEveryLoginUntilTheSettingsChange() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52101)!))
        driver.answer(Recorded.delugeLogin(false, id: 1))
        #expect(driver.session.isLoginRefused && driver.session.counters.failedLogins == 1)
        #expect(driver.logged("deluge-web refused the password (auth.login answered false)"))
        driver.feed(.desiredPort(Port(52102)!))
        driver.advance(.seconds(3000))
        driver.feed(.deadlineReached)
        #expect(driver.sent.count == 1)
        var fresh = Self.settings
        fresh.password = Secret(value: "other", origin: "test")
        driver.feed(.settingsChanged(fresh))
        #expect(driver.sent.count == 2 && driver.lastBody.contains("auth.login"))
    }

    @Test func unknownMethodMeansNotConnectedAndSaysSo() {
        var driver = verified(settings: { var s = Self.settings; s.reannounce = false; return s }())
        driver.reachDeadline()
        driver.answer(Recorded.delugeUnknownMethod(id: 8))
        #expect(driver.logged("deluge-web is not connected to its daemon: it answers \"Unknown method\" to core.get_config_values; connecting it"))
        #expect(driver.lastBody.contains("web.connected"))
        driver.answer(Recorded.delugeConnected(false, id: 9))
        driver.answer(Recorded.delugeHosts(id: 10))
        driver.answer(Recorded.delugeConnect(true, id: 11))
        driver.answer(Recorded.delugeConfigValues(port: 52101, id: 12))
        #expect(driver.session.status.health == .verified)
    }

    @Test func unknownMethodRightAfterConnectingIsAFailureNotALoop() {
        var driver = handshake()
        driver.answer(Recorded.delugeUnknownMethod(id: 5))
        #expect(driver.sent.count == 5)
        #expect(driver.logged("even right after connecting to its daemon"))
    }

    @Test func noAnswerToACoreCallMeansTheDaemonWentAwayAndIsConnectedAgain() {
        var driver = verified(settings: { var s = Self.settings; s.reannounce = false; return s }())
        driver.feed(.desiredPort(Port(52102)!))
        driver.feed(.requestFailed(.timedOut))
        #expect(driver.logged("deluge-web did not answer core.set_config in time: its daemon has gone away"))
        driver.reachDeadline()
        #expect(driver.lastBody.contains("web.connected"))
        driver.answer(Recorded.delugeConnected(false, id: 9))
        driver.answer(Recorded.delugeHosts(id: 10))
        driver.answer(Recorded.delugeConnect(false, id: 11))
        #expect(driver.logged("deluge-web could not connect to its daemon at 127.0.0.1:58900: is deluged running"))
        driver.reachDeadline()
        driver.answer(Recorded.delugeConnected(false, id: 12))
        driver.answer(Recorded.delugeHosts(id: 13))
        driver.answer(Recorded.delugeConnect(true, id: 14))
        driver.answer(Recorded.delugeConfigValues(port: 52101, id: 15))
        driver.answer(Recorded.delugeNull(id: 16))
        driver.answer(Recorded.delugeListenPorts(52102, id: 17))
        #expect(driver.session.status.verifiedPort == Port(52102))
    }

    @Test func aSessionEndedByARestartedWebUIGetsOneFreshLogin() {
        var driver = verified(settings: { var s = Self.settings; s.reannounce = false; return s }())
        driver.reachDeadline()
        driver.answer(Recorded.delugeNotAuthenticated(id: 8))
        #expect(driver.logged("deluge-web ended the session"))
        #expect(driver.lastBody.contains("auth.login"))
        driver.answer(Recorded.delugeLogin(true, id: 9))
        driver.answer(Recorded.delugeNotAuthenticated(id: 10))
        #expect(driver.session.isLoginRefused, "a session refused right after a login is not retried")
        #expect(driver.session.counters.logins == 2)
    }

    @Test func aBadContentTypeAnswerIsAFailureThatQuotesIt() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52101)!))
        driver.answer(Recorded.delugeBadContentType)
        #expect(driver.logged("deluge-web answered auth.login with error 5 \"JSONException: Invalid JSON request content-type"))
    }

    @Test func neverTestListenPortNorTheSecretInLogs() {
        var driver = verified()
        driver.answer(Recorded.delugeTorrents(["aa11"], id: 8))
        driver.answer(Recorded.delugeNull(id: 9))
        #expect(!driver.bodies.contains { $0.contains("test_listen_port") })
        #expect(!driver.allLogText.contains("web\"pass") && !driver.allLogText.contains("_session_id="))
    }
}
