import Foundation
import Reactor
import Testing
import TestSupport
@testable import Watchers

/// Real rtnetlink, in a network namespace the test makes.
@Suite(.serialized, .enabled(if: NetworkLab.available, "needs root and iproute2 (CI runs as root)"))
final class LinkWatcherTests {
    @Test func followsTheTunnelDownUpAndAway() throws {
        let lab = try NetworkLab()
        try lab.inClient {
            let loop = try EventLoop(logger: LogCapture().logger)
            var states: [LinkTracker.State] = []
            let watcher = LinkWatcher(loop: loop, interface: "wg0") { states.append($0) }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { states.last == .usable(IPv4Address(10, 2, 0, 2)) })
            try lab.setTunnel(up: false)
            #expect(try runUntil(loop, seconds: 5) { states.last == .unusable("wg0 is down") })
            try lab.setTunnel(up: true)
            #expect(try runUntil(loop, seconds: 5) { states.last == .usable(IPv4Address(10, 2, 0, 2)) })
            try lab.ip("-n", lab.client, "link", "del", "wg0")
            #expect(try runUntil(loop, seconds: 5) { states.last == .unusable("wg0 does not exist") })
        }
    }

    @Test func lostEventsAreRecoveredByDumpingAgain() throws {
        let lab = try NetworkLab()
        try lab.inClient {
            let log = LogCapture()
            let loop = try EventLoop(logger: log.logger)
            var states: [LinkTracker.State] = []
            let watcher = LinkWatcher(loop: loop, interface: "wg0", receiveBufferSize: 2048) { states.append($0) }
            try watcher.start()
            #expect(try runUntil(loop, seconds: 5) { states.last == .usable(IPv4Address(10, 2, 0, 2)) })
            // Far more address events than 2 KiB hold, while the loop does not read: ENOBUFS.
            let batch = (1...150).map { "addr add 10.3.\($0 / 200).\($0 % 200 + 1)/32 dev wg0" }.joined(separator: "\n") + "\n"
            let file = "\(lab.directory)/batch"
            try batch.write(toFile: file, atomically: true, encoding: .utf8)
            try lab.ip("-n", lab.client, "-batch", file)
            try lab.setTunnel(up: false)
            #expect(try runUntil(loop, seconds: 5) { watcher.resyncs >= 1 && states.last == .unusable("wg0 is down") }, "\(watcher.resyncs) \(states) \(log.text.suffix(1500))")
            #expect(log.count("netlink events were lost (ENOBUFS); reading the state of wg0 again") >= 1)
        }
    }
}
