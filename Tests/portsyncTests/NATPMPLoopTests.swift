import Foundation
import Glibc
import Reactor
import TestSupport
import Testing
import Watchers
@testable import portsync

/// The NAT-PMP daemon in the test's own loop, inside the client namespace, on a clock that moves
/// only when told: renewals, retransmissions, a tunnel going down, a suspend and the recovery
/// command's cool-down are counted exactly. The gateway and qbittorrent-nox are the real ones of
/// `NATPMPDaemonTests`; answers arrive in real time and the test waits for them as events.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3 and qbittorrent-nox (CI runs as root; ./scripts/test installs them)"))
final class NATPMPLoopTests {
    let lab: NetworkLab
    let gateway: NATPMPGateway
    let qbittorrent: QBittorrentInstance
    let directory = TemporaryDirectory()
    let clock = ManualClock()
    let started: Instant
    let log = LogCapture(level: .debug, trace: true)
    var loop: EventLoop!
    var daemon: Daemon?
    /// What the daemon had sent and the gateway had seen when the first mapping was in.
    var baseline = (sent: 0, seen: 0)

    init() throws {
        started = clock.now()
        lab = try NetworkLab(style: .pointToPoint)
        gateway = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript)
        qbittorrent = try lab.inClient { try QBittorrentInstance() }
        directory.write("password", QBittorrentInstance.password)
    }

    deinit {
        if let daemon { try? lab.inClient { daemon.stop() } }
        daemon = nil  // before the loop it holds unowned
        qbittorrent.stop()
    }

    /// Starts the daemon in the client namespace (lease 4 s, renewed every 2 s) and waits until
    /// qBittorrent has the gateway's first port.
    func start(_ extra: [String: String] = [:]) throws {
        var environment = ["PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0",
                           "PORTSYNC_NATPMP_LEASE_SECONDS": "4", "PORTSYNC_NATPMP_RENEW_SECONDS": "2"]
        environment.merge(extra) { $1 }
        let configuration = loader(environment: daemonEnvironment(qbittorrent, in: directory, environment))
        try lab.inClient {
            loop = try EventLoop(clock: clock, logger: log.logger)
            let daemon = Daemon(loop: loop, loader: configuration, loaded: try configuration.load(), environment: [:])
            self.daemon = daemon
            try daemon.start()
        }
        #expect(try wait { self.verifiedPort == 40000 }, "\(log.text)")
        baseline = (client.requestsSent, gateway.requests.count)
    }

    var client: NATPMPSource { daemon!.sources.sources.compactMap { $0 as? NATPMPSource }[0] }
    var verifiedPort: Int? { daemon!.sinks.verifiedPort.map { Int($0.value) } }

    /// Runs the loop (in the namespace, clock still) until `condition` holds; false after 10 s
    /// of real time. For what arrives from outside: answers, netlink events, a child's exit.
    func wait(_ condition: () -> Bool) throws -> Bool {
        try lab.inClient {
            let deadline = Date().addingTimeInterval(10)
            while !condition() && Date() < deadline { try loop.runOnce(timeout: .milliseconds(20)) }
            return condition()
        }
    }

    /// Moves the clock in `step`s for `duration`, running what falls due after each step;
    /// calls `each` with the time since the start after every step. The gateway's epoch moves
    /// along (to the whole second the clock will reach), as it would in real time. After a step
    /// that sent requests, the clock waits until the gateway has them and its answers are in:
    /// the test's time must not outrun a real round trip.
    func advance(_ duration: Duration, step: Duration = .milliseconds(10), _ each: (Duration) -> Void = { _ in }) throws {
        try gateway.set(epochOffset: Int((clock.now() + duration - started).components.seconds))
        var elapsed = Duration.zero
        try lab.inClient {
            while elapsed < duration {
                clock.advance(by: step)
                elapsed += step
                let sent = client.requestsSent
                try loop.runOnce(timeout: .zero)
                if client.requestsSent > sent {
                    let seen = baseline.seen + client.requestsSent - baseline.sent
                    let deadline = Date().addingTimeInterval(2)
                    while gateway.requests.count < seen && Date() < deadline { try loop.runOnce(timeout: .milliseconds(5)) }
                    try loop.runOnce(timeout: .milliseconds(5))
                }
                each(elapsed)
            }
        }
    }

    @Test func eachRenewalIsOneUDPAndOneTCPRequestAndNothingElse() throws {
        // Without the re-announce and the read of the trackers after it: renewals alone are counted.
        try start(["PORTSYNC_QBITTORRENT_REANNOUNCE": "false"])
        let sent = client.requestsSent
        let atGateway = gateway.requests.count
        let granted = (client.status.grants ?? 0)
        let httpRequests = daemon!.sinks.sinks[0].sink.counters.requests
        for renewal in 1...3 {
            try advance(.seconds(2))
            #expect(try wait { self.gateway.requests.count == atGateway + 2 * renewal }, "\(log.text)")
            try advance(.milliseconds(250))  // the answers are collected in one wake-up
            #expect((client.status.grants ?? 0) == granted + renewal, "one mapping per renewal, both answers in: \(log.text)")
        }
        #expect(client.requestsSent - sent == 6, "a UDP and a TCP request per renewal, no retransmission")
        #expect(gateway.requests.count - atGateway == 6)
        #expect(Set(gateway.requests.compactMap { $0["internal"] as? Int }).count == 1, "one internal port for the session")
        #expect(daemon!.sinks.sinks[0].sink.counters.requests == httpRequests, "a renewal of the same port asks qBittorrent nothing: \(log.text)")
        #expect(log.count("no longer forwarded") == 0)
    }

    /// RFC 6886's schedule within the lease: 250 ms doubling, never past the lease's end; when
    /// it ends the port is said to be gone and the asking starts again from 250 ms. Every try
    /// reaches the gateway. When it answers again, the same port comes back.
    @Test func aBlackholedGatewayIsAskedOnScheduleAndTheLapseIsSaid() throws {
        try start()
        try gateway.set(mode: "blackhole")
        let before = client.requestsSent
        let atGateway = gateway.requests.count
        var sends: [Int64] = []
        var count = before
        try advance(.seconds(6)) { elapsed in
            if client.requestsSent > count {
                sends.append(Int64(elapsed.milliseconds) - 2000)
                count = client.requestsSent
            }
        }
        #expect(sends == [0, 250, 750, 1750, 2000, 2250, 2750, 3750], "renewal at 2 s (= 0 here), lease end at 2 s after it")
        #expect(client.requestsSent - before == 2 * sends.count, "UDP and TCP at every try")
        #expect(try wait { self.gateway.requests.count - atGateway == 2 * sends.count }, "every try reached the gateway")
        #expect(gateway.requests.dropFirst(atGateway).allSatisfy { $0["answered"] as? Bool == false })
        #expect(log.count("the lease ran out with no answer from the gateway 10.2.0.1; port 40000 is no longer forwarded") == 1)

        try gateway.set(mode: "normal")
        try advance(.seconds(2))  // the next try, at 3750 + 2000 ms
        #expect(try wait { self.log.count("the NAT-PMP gateway answers again") == 1 }, "\(log.text)")
        #expect(try lab.inClient { try qbittorrent.listenPort() } == 40000, "the gateway kept the mapping: the same port")
    }

    @Test func nothingIsSentWhileTheTunnelIsDownAndTheMappingFollowsItsReturn() throws {
        try start()
        try lab.setTunnel(up: false)
        #expect(try wait { self.log.count("wg0 is down: NAT-PMP paused") == 1 }, "\(log.text)")
        let sent = client.requestsSent
        try advance(.seconds(20), step: .milliseconds(100))
        #expect(client.requestsSent == sent, "five leases long, not one request")
        try lab.setTunnel(up: true)
        #expect(try wait { self.client.requestsSent == sent + 2 }, "asked as soon as netlink says the link runs, clock still: \(log.text)")
        #expect(try wait { self.log.count("socket table, port 40000: listening") >= 1 }, "\(log.text)")
        #expect(verifiedPort == 40000)
    }

    /// A suspend, as the loop sees it: CLOCK_BOOTTIME jumps past the lease in one step while the
    /// gateway forgets its mappings. The very first wake-up renews, and the new port follows.
    @Test func afterASuspendTheFirstWakeUpRenewsAndTheNewPortFollows() throws {
        try start()
        try gateway.resetEpochNow()
        try gateway.changePorts()
        let sent = client.requestsSent
        clock.advance(by: .seconds(6))  // as long as the reset is old: the epoch restarted during the suspend
        try lab.inClient { try loop.runOnce(timeout: .zero) }
        #expect(client.requestsSent == sent + 2, "renewed in the first wake-up after the jump")
        #expect(try wait { self.verifiedPort == 40001 }, "\(log.text)")
        #expect(log.count("the gateway lost its mappings") + log.count("changed the forwarded port from 40000 to 40001") >= 1)
    }

    /// The recovery command runs after the failures it waits for, then not again until its
    /// cool-down has passed, however many failures follow; then once more.
    @Test func theRecoveryCommandRespectsItsCooldownExactly() throws {
        try gateway.set(mode: "error", error: 3)
        let marker = "\(directory.path)/recovered"
        var environment = ["PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0",
                           "PORTSYNC_NATPMP_RECOVERY_COMMAND": "echo ran >> \(marker)",
                           "PORTSYNC_NATPMP_RECOVERY_AFTER": "1", "PORTSYNC_NATPMP_RECOVERY_COOLDOWN_SECONDS": "600"]
        environment.merge(["PORTSYNC_NATPMP_LEASE_SECONDS": "4", "PORTSYNC_NATPMP_RENEW_SECONDS": "2"]) { $1 }
        let configuration = loader(environment: daemonEnvironment(qbittorrent, in: directory, environment))
        try lab.inClient {
            loop = try EventLoop(clock: clock, logger: log.logger)
            daemon = Daemon(loop: loop, loader: configuration, loaded: try configuration.load(), environment: [:])
            try daemon!.start()
        }
        func runs() -> Int { ((try? String(contentsOfFile: marker, encoding: .utf8)) ?? "").split(separator: "\n").count }
        #expect(try wait { self.log.count("the recovery command exited with 0") == 1 }, "\(log.text)")
        #expect(log.count("refused the UDP mapping: network failure (3)") >= 1)
        baseline = (client.requestsSent, gateway.requests.count)
        try advance(.seconds(590), step: .seconds(1))
        let failures = daemon!.sources.status(of: .natpmp)?.failures ?? 0
        #expect(failures > 10, "the gateway kept refusing: \(failures) failed cycles")
        #expect(runs() == 1, "held back by the cool-down")
        try advance(.seconds(20), step: .seconds(1))
        #expect(try wait { self.log.count("the recovery command exited with 0") == 2 }, "\(log.text)")
        #expect(runs() == 2, "once more after 600 s")
    }
}
