import HTTP
import Reactor
@testable import Sinks
import Testing

/// `torrents/reannounce` after a verified change of port, with plain values and an explicit
/// clock: once per change, at most once a minute, never after a check or a reassert.
extension QBittorrentSessionTests {
    /// Logged in, qBittorrent on 6881, moved to 51413 and verified: the re-announce just sent.
    func movedAndVerified() -> Driver {
        var driver = loggedIn(settings(reannounce: true))
        driver.answer(200, Self.preferences(port: 6881))
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        return driver
    }

    /// From verified on the current port: `port` written without a read, and read back.
    func move(_ driver: inout Driver, to port: Int) {
        driver.feed(.desiredPort(Port(port)!))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences")
        driver.answer(200)
        driver.answer(200, Self.preferences(port: port))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(port))
    }

    var reannounceTarget: String { "POST /api/v2/torrents/reannounce" }

    @Test func afterAVerifiedChangeEveryTorrentIsReannouncedOnce() {
        var driver = movedAndVerified()
        #expect(driver.lastTarget == reannounceTarget)
        #expect(driver.lastBody == "hashes=all")
        #expect(driver.sent.last?.headers["Cookie"] == "SID=abc123")
        driver.answer(200)
        #expect(driver.session.counters.reannounces == 1)
        #expect(driver.session.inFlight == nil && driver.session.nextDeadline == start + .seconds(300))
        #expect(driver.logged("told the trackers of every torrent about port 51413"))
    }

    @Test func aCheckThatFindsThePortRightOrAReassertTellsNoOne() {
        var driver = loggedIn(settings(reannounce: true))
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified && driver.session.inFlight == nil, "already there: nothing to tell")
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, Self.preferences(port: 51413))
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        driver.answer(200, Self.preferences(port: 51413))
        driver.feed(.reassert)
        driver.answer(200, Self.preferences(port: 51413))
        driver.answer(200)
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.counters.reasserts == 1)
        #expect(!driver.sent.contains { $0.target.hasSuffix("reannounce") })
    }

    @Test func aDriftedPortPutBackTellsNoOne() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        driver.answer(200, Self.preferences(port: 6881))
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified && driver.session.inFlight == nil)
        #expect(driver.sent.filter { $0.target.hasSuffix("reannounce") }.count == 1, "the trackers last heard 51413 from the first")
    }

    @Test func changesWithinTheMinuteAreToldOnceWhenItIsUp() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = start + .seconds(10)
        move(&driver, to: 40000)
        driver.now = start + .seconds(20)
        move(&driver, to: 40001)
        #expect(driver.session.counters.reannounces == 1 && driver.session.inFlight == nil)
        #expect(driver.session.nextDeadline == start + .seconds(60))
        driver.now = start + .seconds(60)
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == reannounceTarget)
        driver.answer(200)
        #expect(driver.session.counters.reannounces == 2)
        #expect(driver.logged("told the trackers of every torrent about port 40001"))
        #expect(driver.session.nextDeadline == start + .seconds(20) + .seconds(300), "then only the drift check")
        driver.now = start + .seconds(130)
        move(&driver, to: 40002)
        #expect(driver.lastTarget == reannounceTarget, "a minute after the last one: at once")
    }

    @Test func offItMakesNoCall() {
        var driver = loggedIn(settings(reannounce: false))
        driver.answer(200, Self.preferences(port: 6881))
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified && driver.session.inFlight == nil)
        #expect(!driver.sent.contains { $0.target.hasSuffix("reannounce") })
    }

    @Test func aRefusedReannounceIsLoggedAndNotRetried() {
        var driver = movedAndVerified()
        let sent = driver.sent.count
        driver.answer(404, "Not Found")
        #expect(driver.logged("POST /api/v2/torrents/reannounce answered 404 \"Not Found\": the trackers hear of port 51413 at their next announce"))
        #expect(driver.session.status.health == .verified && driver.session.inFlight == nil)
        #expect(driver.sent.count == sent && driver.session.counters.reannounces == 0)
        #expect(driver.session.nextDeadline == start + .seconds(300))
    }
}
