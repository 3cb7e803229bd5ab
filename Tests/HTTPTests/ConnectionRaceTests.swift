@testable import HTTP
import Reactor
import Testing

/// The staggered connection attempts (RFC 8305) as a pure machine, on an explicit clock.
@Suite struct ConnectionRaceTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    func race(_ count: Int) -> ConnectionRace {
        ConnectionRace(addressCount: count, stagger: .milliseconds(250), timeout: .seconds(10))
    }

    @Test func theNextAddressStartsAfterTheStaggerAndTheFirstToConnectWins() {
        var race = race(3)
        #expect(race.handle(.start, now: start) == [.attempt(0)])
        #expect(race.nextDeadline == start + .milliseconds(250))
        #expect(race.handle(.deadlineReached, now: start + .milliseconds(100)).isEmpty, "early: nothing")
        #expect(race.handle(.deadlineReached, now: start + .milliseconds(250)) == [.attempt(1)])
        #expect(race.handle(.deadlineReached, now: start + .milliseconds(500)) == [.attempt(2)])
        #expect(race.nextDeadline == start + .seconds(10), "all started: only the deadline is left")
        #expect(race.handle(.connected(attempt: 1), now: start + .milliseconds(600)) == [.abandon(0), .abandon(2), .won(1)])
        #expect(race.nextDeadline == nil && race.isFinished)
        #expect(race.handle(.connected(attempt: 0), now: start + .milliseconds(700)).isEmpty)
    }

    @Test func aFailureStartsTheNextAddressAtOnce() {
        var race = race(3)
        _ = race.handle(.start, now: start)
        #expect(race.handle(.failed(attempt: 0, .refused), now: start + .milliseconds(1)) == [.attempt(1)])
        #expect(race.nextDeadline == start + .milliseconds(251), "the stagger counts from the latest attempt")
        #expect(race.handle(.failed(attempt: 1, .unreachable), now: start + .milliseconds(2)) == [.attempt(2)])
        #expect(race.handle(.failed(attempt: 2, .refused), now: start + .milliseconds(3)) == [.failed(.refused)], "the last failure")
    }

    @Test func oneDeadlineForAllTheAddresses() {
        var race = race(2)
        _ = race.handle(.start, now: start)
        _ = race.handle(.deadlineReached, now: start + .milliseconds(250))
        #expect(race.handle(.failed(attempt: 0, .refused), now: start + .seconds(1)).isEmpty, "attempt 1 is still connecting")
        #expect(race.handle(.deadlineReached, now: start + .seconds(10)) == [.abandon(1), .failed(.timedOut)])
        var due = self.race(2)
        _ = due.handle(.start, now: start)
        #expect(due.handle(.failed(attempt: 0, .timedOut), now: start + .seconds(10)) == [.failed(.timedOut)],
                "an attempt's own timeout at the deadline starts no other")
    }

    @Test func theFamiliesTakeTurnsFromTheFirstAddresssFamily() {
        let v4 = (1...3).map { SocketAddress.v4(IPv4Address(10, 0, 0, UInt8($0)), port: 80) }
        let v6 = (1...2).map { SocketAddress.v6(bytes: [0xFD] + [UInt8](repeating: 0, count: 14) + [UInt8($0)], port: 80) }
        #expect(ConnectionRace.interleaved(v4 + v6) == [v4[0], v6[0], v4[1], v6[1], v4[2]])
        #expect(ConnectionRace.interleaved([v6[0]] + v4) == [v6[0], v4[0], v4[1], v4[2]])
    }
}
