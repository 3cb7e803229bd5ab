import Domain
import Reactor
@testable import Sinks
import Testing

/// The hook's rules with plain values and an explicit clock: one run at a time, the latest
/// waiting change after it, one retry, the environment it is given.
@Suite struct HookSessionTests {
    static let settings = HookSettings(command: ["/usr/local/bin/open-port", "--tcp"], timeout: .seconds(5),
                                       retryDelay: .seconds(30), environment: ["HOME=/root", "PATH=/usr/bin:/bin"])

    var session = HookSession(settings: settings)
    var now = Instant(nanoseconds: 5_000_000_000)

    mutating func feed(_ input: HookSession.Input) -> [HookSession.Effect] {
        session.handle(input, now: now)
    }

    static func change(_ port: UInt16, previous: UInt16? = nil) -> PortChange {
        PortChange(port: Port(port)!, previous: previous.flatMap(Port.init), source: "natpmp", reason: .gatewayRestarted)
    }

    static func runs(_ effects: [HookSession.Effect]) -> [[String]] {
        effects.compactMap { if case .run(_, let environment) = $0 { environment } else { nil } }
    }

    @Test mutating func aChangeRunsTheCommandWithThePortInAnEnvironmentOfItsOwn() {
        let effects = feed(.portChanged(Self.change(51413, previous: 40000)))
        #expect(effects.contains(.run(command: ["/usr/local/bin/open-port", "--tcp"], environment: [
            "HOME=/root", "PATH=/usr/bin:/bin", "PORTSYNC_PORT=51413", "PORTSYNC_PREVIOUS_PORT=40000", "PORTSYNC_SOURCE=natpmp",
            "PORTSYNC_REASON=gateway-restarted",
        ])))
        #expect(session.status.health == .applying)
        _ = feed(.ended(.exited(0), errorLine: nil))
        #expect(session.status.health == .verified && session.status.verifiedPort == Port(51413))
        #expect(session.counters.applies == 1 && session.counters.failedApplies == 0)
        #expect(session.nextDeadline == nil)
    }

    @Test mutating func theFirstHandOffHasAnEmptyPreviousPort() {
        let environment = Self.runs(feed(.portChanged(Self.change(51413)))).first ?? []
        #expect(environment.contains("PORTSYNC_PREVIOUS_PORT="))
    }

    @Test mutating func changesWhileItRunsWaitAndOnlyTheLatestRunsAfterIt() {
        #expect(Self.runs(feed(.portChanged(Self.change(1001)))).count == 1)
        #expect(Self.runs(feed(.portChanged(Self.change(1002, previous: 1001)))).isEmpty)
        #expect(Self.runs(feed(.portChanged(Self.change(1003, previous: 1002)))).isEmpty)
        let after = Self.runs(feed(.ended(.exited(0), errorLine: nil)))
        #expect(after.count == 1 && after[0].contains("PORTSYNC_PORT=1003") && after[0].contains("PORTSYNC_PREVIOUS_PORT=1002"))
        #expect(session.status.health == .applying, "a run for a port no longer current says nothing about the current one")
        _ = feed(.ended(.exited(0), errorLine: nil))
        #expect(session.status.health == .verified && session.status.verifiedPort == Port(1003))
        #expect(session.counters.applies == 2)
    }

    @Test mutating func aFailedRunIsFailingWithItsStderrAndIsTriedOnceMore() {
        _ = feed(.portChanged(Self.change(51413)))
        let effects = feed(.ended(.exited(2), errorLine: "iptables: Permission denied"))
        let message = "the hook for port 51413 exited with 2: iptables: Permission denied"
        #expect(effects.contains(.log(.error, message)))
        #expect(session.status.health == .failing(message))
        #expect(session.counters.failedApplies == 1)
        #expect(session.nextDeadline == now + .seconds(30))
        now = now + .seconds(30)
        #expect(Self.runs(feed(.deadlineReached)).count == 1)
        _ = feed(.ended(.timedOut(.seconds(5)), errorLine: nil))
        #expect(session.status.health == .failing("the hook for port 51413 was still running after 5 s and was killed"))
        #expect(session.nextDeadline == nil, "one retry, not a loop")
    }

    @Test mutating func theSamePortNamedAgainRunsItAgain() {
        _ = feed(.portChanged(Self.change(51413)))
        _ = feed(.ended(.exited(0), errorLine: nil))
        #expect(Self.runs(feed(.portChanged(Self.change(51413, previous: 51413)))).count == 1)
    }

    @Test mutating func aReloadRunsItAgainOnlyWhenItFailedOrItsSettingsChanged() {
        _ = feed(.portChanged(Self.change(51413)))
        _ = feed(.ended(.exited(0), errorLine: nil))
        #expect(Self.runs(feed(.settingsChanged(Self.settings))).isEmpty)
        var longer = Self.settings
        longer.timeout = .seconds(9)
        #expect(Self.runs(feed(.settingsChanged(longer))).count == 1)
        _ = feed(.ended(.notStarted("posix_spawn /usr/local/bin/open-port: No such file or directory (errno 2)"), errorLine: nil))
        #expect(Self.runs(feed(.settingsChanged(longer))).count == 1)
    }

    @Test func theEnvironmentKeepsOnlyWhatIsNamedAndNoSecrets() {
        let kept = ChildEnvironment.passedOn([
            "PATH": "/usr/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_TIME": "de_DE.UTF-8", "TZ": "UTC",
            "PORTSYNC_QBITTORRENT_PASSWORD": "secret", "CREDENTIALS_DIRECTORY": "/run/credentials/portsync",
            "NOTIFY_SOCKET": "/run/systemd/notify", "USER": "u", "PORTSYNC_CONFIG": "/etc/portsync/config.toml",
        ])
        #expect(kept == ["HOME=/home/u", "LANG=C.UTF-8", "LC_TIME=de_DE.UTF-8", "PATH=/usr/bin", "TZ=UTC"])
        #expect(ChildEnvironment.passedOn([:]) == ["PATH=/usr/local/bin:/usr/bin:/bin"])
    }
}
