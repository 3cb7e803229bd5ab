import Domain
import Foundation
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The Transmission session through its production shell against a real transmission-daemon 3.00
/// (locked-down settings, loopback only, checked with ss).
@Suite(.serialized, .enabled(if: TransmissionInstance.available, "transmission-daemon is not installed (./scripts/test installs it as root)"))
final class TransmissionEndToEndTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop

    init() throws {
        loop = try EventLoop(logger: log.logger)
    }

    func shell(_ instance: TransmissionInstance, password: String = TransmissionInstance.password,
               checkInterval: Duration = .seconds(300)) -> ClientSink<TransmissionSession> {
        let settings = ClientSettings(url: instance.url, username: TransmissionInstance.username,
                                      password: Secret(value: password, origin: "test"), checkInterval: checkInterval,
                                      retryInitial: .milliseconds(100), retryMax: .milliseconds(500), requestTimeout: .seconds(5))
        return ClientSink<TransmissionSession>(loop: loop, label: "transmission", settings: settings)
    }

    func verified(_ shell: ClientSink<TransmissionSession>, _ port: Domain.Port) throws -> Bool {
        try runUntil(loop, seconds: 15) { shell.session.status.health == .verified && shell.session.status.verifiedPort == port }
    }

    @Test func setsAndVerifiesThePortThroughThe409Handshake() throws {
        let transmission = try TransmissionInstance()
        let shell = shell(transmission)
        let port = Domain.Port(freePort())!
        shell.apply(port)
        #expect(try verified(shell, port))
        #expect(try transmission.currentPeerPort() == Int(port.value))
        #expect(shell.session.rpcVersion == "16" && shell.session.dialect == .legacy)
        #expect(shell.session.status.version == "3.00 (bb6b5a062e)")
        #expect(shell.counters.requests == 4, "the probe, once more with the session id, session-set, the read-back")
        #expect(log.count("Transmission: port \(port) applied and verified") == 1)
        // Transmission listens on it, still on loopback only.
        let lines = try SocketTable.requireLoopbackOnly([transmission.pid!], what: "transmission-daemon")
        #expect(lines.contains { $0.contains("127.0.0.1:\(port) ") })

        // A second session (a restart of portsync) finds it set and writes nothing.
        let second = self.shell(transmission)
        second.apply(port)
        #expect(try verified(second, port))
        #expect(second.session.counters.applies == 0)
        #expect(!log.text.contains(TransmissionInstance.password))
    }

    @Test func aWrongPasswordIsRefusedOnceAndNeverRetriedInALoop() throws {
        let transmission = try TransmissionInstance()
        let shell = shell(transmission, password: "wrong")
        shell.apply(Domain.Port(freePort())!)
        #expect(try runUntil(loop, seconds: 10) { shell.session.isLoginRefused })
        try runFor(loop, seconds: 1.5)
        shell.apply(Domain.Port(freePort())!)
        try runFor(loop, seconds: 0.5)
        #expect(shell.counters.requests == 1)
        #expect(shell.session.counters.failedLogins == 1)
        #expect(log.count("Transmission refused the login (401)") == 1)
        #expect(!log.text.contains("wrong\""))
    }

    @Test func aPortChangedBehindItsBackIsRestoredAndARestartedDaemonIsFoundAgain() throws {
        let transmission = try TransmissionInstance()
        let shell = shell(transmission, checkInterval: .milliseconds(300))
        let port = Domain.Port(freePort())!
        shell.apply(port)
        #expect(try verified(shell, port))
        try transmission.setPeerPort(Int(transmission.peerPort))
        #expect(try runUntil(loop, seconds: 10) { log.count("changed behind portsync's back") == 1 && shell.session.status.health == .verified })
        #expect(try transmission.currentPeerPort() == Int(port.value))

        // A restart: a new session id (a 409 on the next read), the port kept in settings.json.
        transmission.stop()
        try transmission.start()
        let requests = shell.counters.requests
        #expect(try runUntil(loop, seconds: 10) { shell.counters.requests >= requests + 2 && shell.session.status.health == .verified })
        #expect(try transmission.currentPeerPort() == Int(port.value))
    }

    /// Transmission 3.00 tells its trackers about a new port by itself, so the session makes
    /// no call: the tracker hears the new port within moments of the verified change, also a
    /// second change within the tracker's `min interval` (60 s): Transmission's port change
    /// announces with `event=started` whatever the interval.
    @Test func theTrackerHearsTheNewPortWithoutACall() throws {
        let transmission = try TransmissionInstance()
        let tracker = try Tracker(directory: transmission.directory, port: freePort())
        try transmission.addTorrent(tracker.torrent(name: "portsync-test"))
        #expect(waitFor(seconds: 20) { tracker.announcedPorts.contains(Int(transmission.peerPort)) }, "the torrent announces the configured port")
        let shell = shell(transmission)
        let port = Domain.Port(freePort())!
        shell.apply(port)
        #expect(try verified(shell, port))
        #expect(waitFor(seconds: 5) { tracker.announcedPorts.contains(Int(port.value)) })
        #expect(shell.session.counters.reannounces == 0)
        #expect(shell.counters.requests == 4)
        let second = Domain.Port(freePort())!
        shell.apply(second)
        #expect(try verified(shell, second))
        #expect(waitFor(seconds: 5) { tracker.announcedPorts.contains(Int(second.value)) }, "within the minute: \(tracker.log)")
        try SocketTable.requireLoopbackOnly([transmission.pid!], what: "transmission-daemon with a torrent")
    }
}
