import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// `torrents/reannounce` after a verified change of port, with plain values and an explicit
/// clock: once per change of port, once qBittorrent listens on it, never after a check or a
/// reassert; then one torrent's trackers are read.
extension QBittorrentSessionTests {
    /// Logged in, qBittorrent on 6881, moved to 51413 and verified: the re-announce just sent
    /// (when the socket table answers `listener` at once; nil: the test answers).
    func movedAndVerified(_ settings: QBittorrentSettings? = nil, listener: ListeningSockets.Check? = .listening) -> Driver {
        var driver = loggedIn(settings ?? self.settings(reannounce: true))
        driver.announceListener = listener
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

    @Test func afterAVerifiedChangeEveryTorrentIsReannouncedOnceItListens() {
        var driver = movedAndVerified()
        #expect(driver.announceListenerChecks == [Port(51413)!], "the socket table is looked at first")
        #expect(driver.lastTarget == reannounceTarget)
        #expect(driver.lastBody == "hashes=all")
        #expect(driver.sent.last?.headers["Cookie"] == "SID=abc123")
        driver.answer(200)
        #expect(driver.session.counters.reannounces == 1)
        #expect(driver.session.announced?.port == Port(51413) && driver.session.announced?.listener == .seen(after: .zero))
        #expect(driver.session.inFlight == nil && driver.session.nextDeadline == start + QBittorrentSession.trackerCheckDelay, "then the trackers are read")
    }

    /// qBittorrent answers and reads back the new port before libtorrent listens on it: the
    /// re-announce waits for the listener, looking every 5 ms.
    @Test func theReannounceWaitsForTheNewListener() {
        var driver = movedAndVerified(listener: nil)
        #expect(driver.announceListenerChecks == [Port(51413)!] && driver.session.inFlight == nil)
        driver.feed(.listenerCheckedBeforeAnnouncing(.absent))
        #expect(driver.session.nextDeadline == start + ListenerGate.pollInterval && driver.session.inFlight == nil)
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        #expect(driver.announceListenerChecks.count == 2)
        driver.feed(.listenerCheckedBeforeAnnouncing(.absent))
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        #expect(driver.announceListenerChecks.count == 3 && !driver.sent.contains { $0.target.hasSuffix("reannounce") })
        driver.feed(.listenerCheckedBeforeAnnouncing(.listening))
        #expect(driver.lastTarget == reannounceTarget)
        driver.answer(200)
        #expect(driver.session.announced?.listener == .seen(after: ListenerGate.pollInterval * 2))
        #expect(driver.logged("about port 51413 once it listened on it (10 ms after it took the port)"))
    }

    @Test func aListenerThatNeverComesIsAnnouncedAnywayAfterTwoSecondsAndSaidSo() {
        var driver = movedAndVerified(listener: .absent)
        while !driver.sent.contains(where: { $0.target.hasSuffix("reannounce") }), let deadline = driver.session.nextDeadline, deadline < start + .seconds(3) {
            driver.now = deadline
            driver.feed(.deadlineReached)
        }
        #expect(driver.now == start + ListenerGate.listenLimit)
        #expect(driver.announceListenerChecks.count == 401, "every 5 ms for 2 s")
        driver.answer(200)
        #expect(driver.session.announced?.listener == .notSeen(within: ListenerGate.listenLimit))
    }

    @Test func aRemoteQBittorrentIsGivenASecondToListen() {
        let remote = QBittorrentSettings(url: Self.url, authentication: Self.password, checkInterval: .seconds(300), checkListener: false, reannounce: true)
        var driver = movedAndVerified(remote)
        #expect(driver.announceListenerChecks.isEmpty && driver.session.inFlight == nil)
        #expect(driver.session.nextDeadline == start + ListenerGate.remoteSettle)
        driver.now = start + ListenerGate.remoteSettle
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == reannounceTarget)
        driver.answer(200)
        #expect(driver.session.announced?.listener == .unseen(after: ListenerGate.remoteSettle))
    }

    @Test func aPortThatMovesOnWhileWaitingIsNotAnnouncedButTheNextIs() {
        var driver = movedAndVerified(listener: nil)
        driver.feed(.listenerCheckedBeforeAnnouncing(.absent))
        driver.announceListener = .listening
        move(&driver, to: 40000)
        #expect(driver.lastTarget == reannounceTarget)
        driver.answer(200)
        #expect(driver.session.announced?.port == Port(40000) && driver.sent.filter { $0.target.hasSuffix("reannounce") }.count == 1)
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        #expect(driver.sent.filter { $0.target.hasSuffix("reannounce") }.count == 1, "nothing left of 51413's wait")
    }

    /// A few seconds after the re-announce, one torrent's trackers are read and what they say kept.
    @Test func afterTheReannounceATorrentsTrackersAreReadAndReported() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = start + QBittorrentSession.trackerCheckDelay
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == "GET /api/v2/torrents/info?limit=1")
        driver.answer(200, #"[{"hash":"8c4f3e2a","name":"debian.iso","state":"uploading"}]"#)
        #expect(driver.lastTarget == "GET /api/v2/torrents/trackers?hash=8c4f3e2a")
        driver.answer(200, #"[{"msg":"","status":0,"tier":-1,"url":"** [DHT] **"},{"msg":"","status":2,"tier":0,"url":"http://t.example/announce"},"#
                      + #"{"msg":"unregistered torrent","status":4,"tier":1,"url":"http://u.example/announce"}]"#)
        var report = QBittorrentAPI.TrackerReport(port: Port(51413)!, torrent: "debian.iso")
        report.working = 1
        report.notWorking = 1
        report.message = "unregistered torrent"
        #expect(driver.session.trackerReport == report)
        #expect(driver.logs.last?.0 == .warning, "a tracker that does not work is worth a warning")
        #expect(driver.session.inFlight == nil && driver.session.nextDeadline == start + .seconds(300))
    }

    @Test func noTorrentsMeansNoTrackersToRead() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = start + QBittorrentSession.trackerCheckDelay
        driver.feed(.deadlineReached)
        driver.answer(200, "[]")
        #expect(driver.session.inFlight == nil && driver.session.trackerReport == nil)
        #expect(driver.session.status.health == .verified)
    }

    @Test func aRefusedTrackerReadIsAWarningThatLeavesTheSessionAlone() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = start + QBittorrentSession.trackerCheckDelay
        driver.feed(.deadlineReached)
        let sent = driver.sent.count
        driver.answer(403, "Forbidden")
        #expect(driver.sent.count == sent && driver.session.status.health == .verified && driver.session.counters.logins == 1)
        #expect(driver.logs.last?.0 == .warning)
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

    /// Issue 21: a port change within a minute of the last re-announce used to wait for the
    /// minute's end; a new port is told at once, whatever the last announce was.
    @Test func aNewPortWithinTheMinuteIsToldAtOnce() {
        var driver = movedAndVerified()
        driver.answer(200)
        driver.now = start + .seconds(1)
        move(&driver, to: 40000)
        #expect(driver.lastTarget == reannounceTarget)
        driver.answer(200)
        driver.now = start + .seconds(2)
        move(&driver, to: 51413)
        #expect(driver.lastTarget == reannounceTarget, "51413 again, but the trackers last heard 40000")
        driver.answer(200)
        #expect(driver.session.counters.reannounces == 3 && driver.session.announced?.port == Port(51413))
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
