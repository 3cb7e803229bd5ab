import Glibc
import Reactor
import Testing
import TestSupport
@testable import portsync

@Suite struct RecoveryCommandTests {
    @Test func theCommandSeesNoSecretsAndNoNotifySocket() {
        let environment = ProcessEnvironment.forChildren([
            "PATH": "/usr/bin", "PORTSYNC_QBITTORRENT_PASSWORD": "hunter2", "PORTSYNC_GLUETUN_API_KEY": "k",
            "PORTSYNC_NATPMP_INTERFACE": "wg0", "NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "1",
            "CREDENTIALS_DIRECTORY": "/run/credentials/portsync.service",
        ])
        #expect(environment == ["PATH=/usr/bin", "PORTSYNC_NATPMP_INTERFACE=wg0"])
    }

    /// The loop sleeps while the command runs: its end is the one event of the one wakeup.
    @Test func whileTheCommandRunsTheLoopSleeps() throws {
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        let recovery = RecoveryCommand(loop: loop, command: "sleep 1.5", threshold: 2, cooldown: .seconds(600))
        recovery.failed(streak: 1)
        #expect(recovery.runs == 0, "below the threshold")
        recovery.failed(streak: 2)
        #expect(recovery.runs == 1)
        try loop.runOnce(timeout: .seconds(20))
        #expect(loop.dispatches == 1, "no timer reaped it: \(log.lines)")
        #expect(log.count("natpmp.recovery: the recovery command exited with 0") == 1, "\(log.lines)")
    }

    @Test func aCommandThatHangsIsKilledAfterItsTimeoutAndTheNextRunWaitsForTheCooldown() throws {
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        let recovery = RecoveryCommand(loop: loop, command: "sleep 30", threshold: 1, cooldown: .seconds(600), timeout: .milliseconds(200))
        recovery.failed(streak: 1)
        try runUntil(loop, seconds: 10) { log.count("the recovery command was killed by signal 9") == 1 }
        #expect(log.count("is still running after 200 ms: killing it and its process group") == 1, "\(log.lines)")
        #expect(log.count("natpmp.recovery: the recovery command was killed by signal 9") == 1, "\(log.lines)")
        recovery.failed(streak: 2)
        #expect(recovery.runs == 1, "the cool-down holds the next run back")
    }
}
