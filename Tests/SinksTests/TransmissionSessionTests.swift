import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// The Transmission session with plain values, answered with what transmission-daemon 3.00
/// really sent (`Recorded`); 4.1's JSON-RPC in TransmissionDialectTests.
@Suite struct TransmissionSessionTests {
    static let password = Secret(value: "pa:ss&w=rd", origin: "test")
    static let settings = ClientSettings(url: try! HTTPURL(parsing: "http://127.0.0.1:9091"), username: "portsync", password: password)

    typealias Driver = ClientSessionDriver<TransmissionSession>

    func driver(_ settings: ClientSettings = settings) -> Driver { Driver(TransmissionSession(settings: settings)) }

    /// Desired 52001; the 409 handshake done; the probe answered with `port`.
    func probed(port: Int = 51999) -> Driver {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(Recorded.transmissionConflict)
        driver.answer(Recorded.transmissionProbe(port: port, tag: driver.tag))
        return driver
    }

    /// Verified on 52001 after a write.
    func verified() -> Driver {
        var driver = probed()
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52001, tag: driver.tag))
        return driver
    }

    @Test func theFirstRequestLearnsTheSessionIDAndIsSentOnceMoreWithIt() throws {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        let first = try #require(driver.sent.first)
        #expect(first.method == "POST" && first.target == "/transmission/rpc")
        #expect(first.headers["X-Transmission-Session-Id"] == nil)
        #expect(first.headers["Authorization"] == "Basic " + Base64.encode(Array("portsync:pa:ss&w=rd".utf8)))
        #expect(driver.lastBody.contains(#""method":"session-get""#) && driver.lastBody.contains(#""rpc-version""#))
        driver.answer(Recorded.transmissionConflict)
        #expect(driver.sent.count == 2)
        #expect(driver.sent[1].headers["X-Transmission-Session-Id"] == Recorded.transmissionSessionID)
        #expect(driver.sent[1].body.count == first.body.count)
    }

    /// Found by the fuzzer: a request that fails long after the last verify (a suspend while it
    /// was in flight) is retried after its back-off, not at once by the drift check that fell
    /// due meanwhile.
    @Test func aFailureAfterTheDriftCheckFellDueWaitsItsBackOff() {
        var driver = verified()
        driver.feed(.desiredPort(Port(52002)!))
        let sent = driver.sent.count
        driver.advance(.seconds(900))
        driver.feed(.requestFailed(.timedOut))
        #expect(driver.session.nextDeadline == driver.now + .milliseconds(500))
        #expect(driver.sent.count == sent)
    }

    @Test func aDifferentPortIsWrittenWithTheTwoSettingsThatMoveItThenReadBack() {
        var driver = probed()
        #expect(driver.session.rpcVersion == "16" && driver.session.dialect == .legacy)
        #expect(driver.session.status.version == "3.00 (bb6b5a062e)")
        #expect(driver.lastBody == #"{"arguments":{"peer-port":52001,"peer-port-random-on-start":false,"port-forwarding-enabled":false},"method":"session-set","tag":3}"#)
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        #expect(driver.lastBody == #"{"arguments":{"fields":["peer-port"]},"method":"session-get","tag":4}"#)
        driver.answer(Recorded.transmissionPort(52001, tag: driver.tag))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(52001))
        #expect(driver.logs.contains { $0.0 == .notice && $0.1 == "Transmission: port 52001 applied and verified" })
        #expect(driver.sent.count == 4)
        #expect(driver.session.counters.applies == 1)
        #expect(driver.session.nextDeadline == driver.now + .seconds(300))
    }

    @Test func aPortAlreadyRightIsNotWritten() {
        let driver = probed(port: 52001)
        #expect(driver.sent.count == 2)
        #expect(!driver.bodies.contains { $0.contains("session-set") })
        #expect(driver.session.status.health == .verified)
        #expect(driver.logged("Transmission already listens on port 52001"))
    }

    @Test func aSecond409InARowIsAFailureWithBackOffNotALoop() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(Recorded.transmissionConflict)
        driver.answer(Recorded.transmissionConflict)
        #expect(driver.sent.count == 2)
        #expect(driver.logged("409 again right after handing out a session id"))
        #expect(driver.session.nextDeadline == driver.now + .milliseconds(500))
        driver.reachDeadline()
        #expect(driver.sent.count == 3)
    }

    @Test func aSessionIDThatExpiresLaterIsRenewedAndTheRequestSentOnceMore() throws {
        var driver = verified()
        driver.reachDeadline()
        #expect(driver.lastBody.contains(#""fields":["peer-port","peer-port-random-on-start","port-forwarding-enabled"]"#))
        let renewed = HTTPResponse(status: 409, headers: ["X-Transmission-Session-Id": "fresh-id"], body: Array("<h1>409: Conflict</h1>".utf8))
        driver.answer(renewed)
        #expect(driver.sent.last?.headers["X-Transmission-Session-Id"] == "fresh-id")
        driver.answer(Recorded.transmissionProbe(port: 52001, tag: driver.tag))
        #expect(driver.session.status.health == .verified)
        driver.reachDeadline()
        driver.answer(renewed)
        #expect(driver.sent.count == 8, "every new 409 gets its one retry")
    }

    @Test func aRefusedLoginStopsEveryRequestUntilTheSettingsChange() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(Recorded.transmissionUnauthorized)
        #expect(driver.session.isLoginRefused)
        #expect(driver.session.counters.failedLogins == 1)
        #expect(driver.logged("Transmission refused the login (401): wrong username \"portsync\" or password"))
        driver.feed(.desiredPort(Port(52002)!))
        driver.advance(.seconds(3000))
        driver.feed(.deadlineReached)
        #expect(driver.sent.count == 1)
        #expect(driver.logged("not applied: Transmission refused the login"))
        var fresh = Self.settings
        fresh.password = Secret(value: "right", origin: "test")
        driver.feed(.settingsChanged(fresh))
        #expect(driver.sent.count == 2)
        #expect(!driver.session.isLoginRefused)
    }

    @Test func theRefusalEndsAfterThePauseWithOneMoreTry() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(Recorded.transmissionUnauthorized)
        #expect(driver.session.nextDeadline == driver.now + .seconds(3900))
        driver.reachDeadline()
        #expect(driver.sent.count == 2)
        #expect(driver.logged("trying to log in to Transmission again after the pause"))
    }

    @Test func aWriteThatDidNotTakeIsAFailure() {
        var driver = probed()
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(51999, tag: driver.tag))
        #expect(driver.session.counters.failedApplies == 1)
        #expect(driver.logged("Transmission still has peer-port 51999 after being set to 52001"))
        #expect(driver.session.status.health == .failing("Transmission still has peer-port 51999 after being set to 52001"))
    }

    @Test func aNewPortAfterAVerifiedOneIsWrittenWithoutReadingFirst() {
        var driver = verified()
        driver.feed(.desiredPort(Port(52002)!))
        #expect(driver.lastBody.contains(#""method":"session-set""#) && driver.lastBody.contains(#""peer-port":52002"#))
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52002, tag: driver.tag))
        #expect(driver.session.status.verifiedPort == Port(52002))
    }

    /// A listener that did not open: Transmission re-binds only for a port other than its own
    /// (`tr_sessionSetPeerPort`), so the port moves one away and back, each write read back.
    @Test func aReassertMovesThePortOneAwayAndBack() {
        var driver = probed()
        driver.feed(.reassert)
        #expect(driver.sent.count == 3 && driver.session.counters.listenerRepairs == 0, "nothing to re-open before the port is verified")
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52001, tag: driver.tag))
        let applies = driver.session.counters.applies
        driver.feed(.reassert)
        #expect(driver.session.status.health == .applying)
        #expect(driver.lastBody.contains(#""method":"session-set""#) && driver.lastBody.contains(#""peer-port":52002"#), "\(driver.lastBody)")
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52002, tag: driver.tag))
        driver.answer(Recorded.transmissionProbe(port: 52002, tag: driver.tag))
        #expect(driver.lastBody.contains(#""method":"session-set""#) && driver.lastBody.contains(#""peer-port":52001"#), "\(driver.lastBody)")
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52001, tag: driver.tag))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(52001))
        #expect(driver.session.counters.applies == applies + 2 && driver.session.counters.listenerRepairs == 1)
        #expect(driver.session.counters.driftRepairs == 0, "its own move is no drift")
    }

    @Test func aPortChangedBehindItsBackIsRestoredAtTheDriftCheck() {
        var driver = verified()
        driver.reachDeadline()
        driver.answer(Recorded.transmissionProbe(port: 40000, tag: driver.tag))
        #expect(driver.logs.contains { $0.0 == .warning && $0.1.contains("changed behind portsync's back (peer-port 40000)") })
        #expect(driver.lastBody.contains(#""peer-port":52001"#))
    }

    @Test func anErrorResultIsAFailureThatQuotesIt() {
        var driver = probed()
        driver.answer(Recorded.transmissionUnknownMethod(tag: driver.tag))
        #expect(driver.logged("Transmission answered session-set with \"method name not recognized\""))
    }

    @Test func aDaemonThatIsNotThereIsUnreachable() {
        var driver = driver()
        driver.feed(.desiredPort(Port(52001)!))
        driver.feed(.requestFailed(.connect(.refused)))
        guard case .unreachable = driver.session.status.health else {
            Issue.record("expected unreachable, got \(driver.session.status.health)")
            return
        }
    }

    @Test func neverPortTestNorIdsNorTheSecret() {
        var driver = verified()
        driver.feed(.desiredPort(Port(52002)!))
        driver.answer(Recorded.transmissionSet(tag: driver.tag))
        driver.answer(Recorded.transmissionPort(52002, tag: driver.tag))
        #expect(!driver.bodies.contains { $0.contains("port-test") || $0.contains("port_test") || $0.contains("\"ids\"") })
        #expect(!driver.allLogText.contains("pa:ss") && !driver.allLogText.contains("Basic"))
    }
}
