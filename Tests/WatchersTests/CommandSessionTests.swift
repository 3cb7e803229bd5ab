import Domain
import Reactor
import Testing
@testable import Watchers

/// The command source's rules on the test's clock: when it runs, what an end means.
@Suite struct CommandSessionTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    func session(_ mode: CommandSourceSettings.Mode) -> CommandSession {
        CommandSession(settings: CommandSourceSettings(argv: ["piactl", "monitor", "portforward"], mode: mode, environment: []))
    }

    func observed(_ effects: [CommandSession.Effect]) -> [Int?] {
        effects.compactMap { if case .observed(let port, _) = $0 { port.map { Int($0.value) } } else { nil } }
    }

    @Test func anIntervalRunsAgainThatLongAfterTheEndOfTheLast() {
        var session = session(.interval(.seconds(60)))
        #expect(session.handle(.start, now: start) == [.run])
        #expect(session.nextDeadline == nil, "no run while one runs")
        _ = session.handle(.printed("40000"), now: start)
        let effects = session.handle(.ended(.exited(0), outlivedTimeout: false, errorLine: nil), now: start + .seconds(2))
        #expect(observed(effects) == [40000])
        #expect(session.nextDeadline == start + .seconds(62))
        #expect(session.handle(.deadlineReached, now: start + .seconds(62)) == [.run])
        _ = session.handle(.printed("40000"), now: start + .seconds(62))
        #expect(observed(session.handle(.ended(.exited(0), outlivedTimeout: false, errorLine: nil), now: start + .seconds(63))).isEmpty,
                "the same port again is no new observation")
    }

    /// A stream that ends is started again after 1, 2, 4 … s, at most 60; after a run of more
    /// than a minute, after 1 s again.
    @Test func aStreamThatEndsIsStartedAgainWithBackOff() {
        var session = session(.stream)
        var now = start
        var delays: [Int64] = []
        for _ in 0..<8 {
            _ = session.handle(.start, now: now)
            _ = session.handle(.ended(.exited(1), outlivedTimeout: false, errorLine: "not logged in"), now: now)
            delays.append((session.nextDeadline! - now).components.seconds)
            now = session.nextDeadline!
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(session.state == .failing(SourceProblem("piactl exited with 1: not logged in; starting it again in 60 s",
                                                        fix: "run it by hand to see why")))
        _ = session.handle(.deadlineReached, now: now)
        _ = session.handle(.ended(.exited(0), outlivedTimeout: false, errorLine: nil), now: now + .seconds(120))
        #expect(session.nextDeadline == now + .seconds(121), "it had run for two minutes: 1 s again")
    }

    @Test func eachLineOfAStreamIsAReading() {
        var session = session(.stream)
        _ = session.handle(.start, now: start)
        var ports: [Int?] = []
        var said: [CommandSession.Effect] = []
        for line in ["Attempting", "51413", "51413", "port is 3", "Inactive"] {
            let effects = session.handle(.printed(line), now: start)
            ports += effects.compactMap { if case .observed(let port, _) = $0 { port.map { Int($0.value) } ?? -1 } else { nil } }
            said += effects
        }
        #expect(ports == [-1, 51413, -1], "none, the port once, none; garbage leaves the port as it was")
        #expect(said.contains(.log(.warning, "piactl printed not a port number: \"port is 3\"; keeping the last port")))
    }

    @Test func aProgramNotThereIsAskedForAgainLater() {
        var session = session(.interval(.seconds(30)))
        _ = session.handle(.start, now: start)
        let effects = session.handle(.notStarted("\"piactl\" is not an executable file on PATH (/usr/bin)", misconfigured: true), now: start)
        #expect(effects == [.log(.warning, "\"piactl\" is not an executable file on PATH (/usr/bin)"), .statusChanged])
        #expect(session.nextDeadline == start + .seconds(30), "installed later, it is found at the next run")
    }
}
