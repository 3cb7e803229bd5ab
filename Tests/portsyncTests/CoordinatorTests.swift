import Reactor
import Testing
import Watchers
@testable import portsync

@Suite struct CoordinatorTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    func observation(_ source: PortObservation.Source, _ port: Int?, at seconds: Int, expiry: Int? = nil) -> PortObservation {
        PortObservation(source: source, port: port.flatMap { Port($0) }, time: start + .seconds(seconds),
                        expiry: expiry.map { start + .seconds($0) })
    }

    @Test func aNATPMPMappingOutranksTheFileAndNewerOutranksOlder() {
        var coordinator = Coordinator()
        #expect(coordinator.observe(observation(.protonFile, 40000, at: 0), now: start)?.port == Port(40000))
        #expect(coordinator.observe(observation(.natpmp, 41000, at: 1, expiry: 61), now: start + .seconds(1))?.port == Port(41000))
        #expect(coordinator.observe(observation(.protonFile, 42000, at: 2), now: start + .seconds(2)) == nil,
                "a newer file hint does not beat a live mapping")
        #expect(coordinator.desiredSource == .natpmp)
        #expect(coordinator.observe(observation(.natpmp, 43000, at: 3, expiry: 63), now: start + .seconds(3))?.previous == Port(41000))
    }

    @Test func anExpiredMappingGivesWayToTheFile() {
        var coordinator = Coordinator()
        _ = coordinator.observe(observation(.protonFile, 40000, at: 0), now: start)
        _ = coordinator.observe(observation(.natpmp, 41000, at: 1, expiry: 61), now: start + .seconds(1))
        #expect(coordinator.nextExpiry(after: start + .seconds(1)) == start + .seconds(61))
        #expect(coordinator.decide(now: start + .seconds(61))?.port == Port(40000))
    }

    @Test func noPortNeverBecomesAPort() {
        var coordinator = Coordinator()
        _ = coordinator.observe(observation(.protonFile, 40000, at: 0), now: start)
        #expect(coordinator.observe(observation(.protonFile, nil, at: 1), now: start + .seconds(1)) == nil)
        #expect(coordinator.desired == Port(40000), "the last desired port stands")
        #expect(!coordinator.hasLivePort(now: start + .seconds(1)))
    }

    /// Gluetun's "down" recipe and the ProtonVPN app on disconnect: the source has no port for
    /// a while (and the client may be set to 0 meanwhile), then names the same port again.
    /// That is a decision too, so the client is looked at; a renewal is not.
    @Test func theSamePortNamedAgainAfterNoneIsADecision() {
        var coordinator = Coordinator()
        _ = coordinator.observe(observation(.protonFile, 40000, at: 0), now: start)
        #expect(coordinator.observe(observation(.protonFile, 40000, at: 1), now: start + .seconds(1)) == nil, "nothing lapsed")
        _ = coordinator.observe(observation(.protonFile, nil, at: 2), now: start + .seconds(2))
        let again = coordinator.observe(observation(.protonFile, 40000, at: 3), now: start + .seconds(3))
        #expect(again?.port == Port(40000) && again?.again == true)
        #expect(coordinator.observe(observation(.protonFile, 40000, at: 4), now: start + .seconds(4)) == nil)
        _ = coordinator.observe(observation(.natpmp, 40000, at: 5, expiry: 65), now: start + .seconds(5))
        #expect(coordinator.observe(observation(.natpmp, 40000, at: 50, expiry: 110), now: start + .seconds(50)) == nil,
                "a renewal of the same mapping")
    }

    @Test func aLoneChangeGoesAtOnceAndABurstEndsWithOneHandOff() {
        var gate = BurstGate(window: .milliseconds(50), longest: .seconds(1))
        #expect(gate.changed(at: start) == nil, "the first change: at once")
        #expect(gate.changed(at: start + .seconds(5)) == nil, "a change long after: at once")
        let burst = start + .seconds(5)
        var last: Instant?
        for step in 1...100 {
            last = gate.changed(at: burst + .milliseconds(step))
            #expect(last != nil)
        }
        #expect(last == burst + .milliseconds(150), "50 ms after the last change")
        gate.handedOff(at: last!)
        #expect(gate.changed(at: last! + .seconds(1)) == nil)
    }

    @Test func anEndlessBurstIsStillAppliedEverySecond() {
        var gate = BurstGate(window: .milliseconds(50), longest: .seconds(1))
        _ = gate.changed(at: start)
        var latest = start
        for step in 1...2000 { latest = gate.changed(at: start + .milliseconds(step)) ?? latest }
        #expect(latest == start + .milliseconds(1) + .seconds(1), "capped at 1 s after the first change that waited")
    }
}
