import Domain
import Foundation
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The re-announce against a real qbittorrent-nox 4.5.2 (locked-down profile) with a torrent
/// whose tracker is the test tracker on 127.0.0.1 (`/announce`: qBittorrent's SSRF mitigation
/// lets a loopback tracker through only with that path). qBittorrent 4.5.2 does not announce a
/// new port by itself (issue 14: nothing in 150 s). The tracker answers `interval 1800` and
/// `min interval 60`, as real trackers do.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class QBittorrentTrackerTests {
    let log = LogCapture()
    let loop: EventLoop
    let qbittorrent: QBittorrentInstance
    let tracker: Tracker

    init() throws {
        loop = try EventLoop(logger: log.logger)
        qbittorrent = try QBittorrentInstance()
        tracker = try Tracker(directory: qbittorrent.profile, port: freePort())
        try qbittorrent.addTorrent(tracker.torrent(name: "portsync-test"))
    }

    /// A sink verified on the port qBittorrent already has (so nothing to tell yet), after the
    /// torrent's first announce.
    func verifiedSink(reannounce: Bool) throws -> QBittorrentSink {
        #expect(waitFor(seconds: 20) { self.tracker.announcedPorts.contains(Int(self.qbittorrent.torrentPort)) }, "the torrent announces the configured port")
        let settings = QBittorrentSettings(url: qbittorrent.url, authentication: .password(
            username: QBittorrentInstance.username, password: Secret(value: QBittorrentInstance.password, origin: "test")),
            reannounce: reannounce)
        let sink = QBittorrentSink(loop: loop, settings: settings)
        let port = Port(qbittorrent.torrentPort)!
        sink.apply(port)
        #expect(try runUntil(loop, seconds: 15) { sink.status.health == .verified && sink.status.verifiedPort == port && sink.connectionsOpened > 0 })
        #expect(sink.counters.reannounces == 0)
        return sink
    }

    @Test func theTrackerHearsTheNewPortWithinASecondOfTheChange() throws {
        let sink = try verifiedSink(reannounce: true)
        let wakeup = try FileChangeWakeup(loop: loop, path: tracker.logPath)
        let port = Port(freePort())!
        sink.apply(port)
        // The second is the test's bound, not a measurement: the loop wakes when the tracker writes.
        #expect(try runUntil(loop, seconds: 1) { self.tracker.announcedPorts.contains(Int(port.value)) }, "\(tracker.log)")
        #expect(sink.status.health == .verified && sink.status.verifiedPort == port)
        #expect(sink.counters.reannounces == 1)
        _ = wakeup
    }

    /// Issue 21: with a tracker that sends `min interval 60` (as opentracker and private trackers
    /// do), two changes within the same minute each reach the tracker within a second, each
    /// told once qBittorrent listened on the new port; then the torrent's trackers say so.
    @Test func twoChangesWithinAMinuteEachReachTheTrackerWithinASecond() throws {
        let sink = try verifiedSink(reannounce: true)
        let wakeup = try FileChangeWakeup(loop: loop, path: tracker.logPath)
        for round in 1...2 {
            let port = Port(freePort())!
            sink.apply(port)
            // The second is the test's bound, not a measurement: the loop wakes when the tracker writes.
            #expect(try runUntil(loop, seconds: 1) { self.tracker.announcedPorts.contains(Int(port.value)) }, "round \(round): \(tracker.log)")
            #expect(sink.counters.reannounces == round && sink.announced?.port == port)
            if case .seen = sink.announced?.listener {} else { Issue.record("round \(round): told before qBittorrent listened: \(String(describing: sink.announced))") }
            #expect(try runUntil(loop, seconds: 6) { sink.trackerReport?.port == port })
            #expect(sink.trackerReport?.working == 1 && sink.trackerReport?.notWorking == 0, "\(String(describing: sink.trackerReport))")
        }
        _ = wakeup
    }

    @Test func withReannounceOffTheTrackerDoesNotHearTheNewPortSoon() throws {
        let sink = try verifiedSink(reannounce: false)
        let wakeup = try FileChangeWakeup(loop: loop, path: tracker.logPath)
        let port = Port(freePort())!
        sink.apply(port)
        #expect(try runUntil(loop, seconds: 15) { sink.status.health == .verified && sink.status.verifiedPort == port })
        #expect(try !runUntil(loop, seconds: 3) { self.tracker.announcedPorts.contains(Int(port.value)) }, "\(tracker.log)")
        #expect(sink.counters.reannounces == 0 && !log.text.contains("reannounce"))
        _ = wakeup
    }
}
