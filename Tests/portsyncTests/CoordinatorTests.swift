@testable import Coordination
import Domain
import Reactor
import Sinks
import Testing
import Watchers
@testable import portsync

@Suite struct CoordinatorTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    func observation(_ source: PortObservation.Source, _ port: Int?, at seconds: Int, expiry: Int? = nil) -> PortObservation {
        PortObservation(source: source, port: port.flatMap { Port($0) }, time: start + .seconds(seconds),
                        expiry: expiry.map { start + .seconds($0) })
    }

    /// The port handed to the clients, if any.
    func applied(_ effects: [Coordinator.Effect]) -> Port? {
        let ports = effects.compactMap { if case .apply(let change) = $0 { change.port } else { nil } }
        #expect(ports.count <= 1, "one hand-off at a time: \(effects)")
        return ports.first
    }

    func observe(_ coordinator: inout Coordinator, _ observation: PortObservation, at now: Instant? = nil) -> Port? {
        applied(coordinator.handle(.observed(observation), now: now ?? observation.time))
    }

    @Test func aNATPMPMappingOutranksTheFileAndNewerOutranksOlder() {
        var coordinator = Coordinator()
        #expect(observe(&coordinator, observation(.protonFile, 40000, at: 0)) == Port(40000))
        #expect(observe(&coordinator, observation(.natpmp, 41000, at: 1, expiry: 61)) == Port(41000))
        #expect(observe(&coordinator, observation(.protonFile, 42000, at: 2)) == nil, "a newer file hint does not beat a live mapping")
        #expect(coordinator.desiredSource == .natpmp)
        let effects = coordinator.handle(.observed(observation(.natpmp, 43000, at: 3, expiry: 63)), now: start + .seconds(3))
        #expect(effects.contains(.log(.notice, "port 43000 from natpmp (was 41000)")) && effects.contains(.desiredPortChanged(Port(43000)!)))
    }

    /// A source the coordinator has never heard of is ranked by its data alone: a new lease
    /// outranks every hint and ties with NAT-PMP, where the newer wins.
    @Test func aNewSourceIsRankedByItsDataAlone() {
        let pcp = PortObservation.Source("pcp", rank: .lease, title: "PCP", spokenName: "PCP")
        var coordinator = Coordinator()
        #expect(observe(&coordinator, observation(.gluetun, 40000, at: 0)) == Port(40000))
        #expect(observe(&coordinator, observation(pcp, 41000, at: 1, expiry: 61)) == Port(41000))
        #expect(observe(&coordinator, observation(.staticPort, 42000, at: 2)) == nil, "a hint does not beat a lease")
        #expect(observe(&coordinator, observation(.natpmp, 43000, at: 3, expiry: 63)) == Port(43000), "among leases the newer wins")
        #expect(observe(&coordinator, observation(pcp, 44000, at: 4, expiry: 64)) == Port(44000))
        #expect(coordinator.desiredSource == pcp)
        let effects = coordinator.handle(.observed(observation(.protonFile, 45000, at: 5)), now: start + .seconds(5))
        #expect(effects.contains { if case .outranked(let outranking) = $0 { outranking.winnerSource == pcp && outranking.hint == Port(45000) } else { false } })
    }

    /// "Why didn't my port change?": a file's port a live mapping outranks is reported with both
    /// ports, as new the first time for each pair in a row, and again on every decision after.
    @Test func aFilePortALiveMappingOutranksIsReportedWithBothPorts() {
        var coordinator = Coordinator()
        func outrankings(_ effects: [Coordinator.Effect]) -> [Coordinator.Outranking] {
            effects.compactMap { if case .outranked(let outranking) = $0 { outranking } else { nil } }
        }
        func outranking(_ hint: Int, _ winner: Int, isNew: Bool) -> Coordinator.Outranking {
            Coordinator.Outranking(hint: Port(hint)!, hintSource: .protonFile, winner: Port(winner)!, winnerSource: .natpmp, isNew: isNew)
        }
        func observe(_ observation: PortObservation) -> [Coordinator.Outranking] {
            outrankings(coordinator.handle(.observed(observation), now: observation.time))
        }
        #expect(observe(observation(.natpmp, 51413, at: 0, expiry: 60)) == [])
        #expect(observe(observation(.protonFile, 40000, at: 1)) == [outranking(40000, 51413, isNew: true)])
        #expect(observe(observation(.protonFile, 40000, at: 2)) == [outranking(40000, 51413, isNew: false)], "the same pair: trace only")
        #expect(observe(observation(.natpmp, 51413, at: 30, expiry: 90)) == [outranking(40000, 51413, isNew: false)], "a renewal")
        #expect(observe(observation(.protonFile, 40001, at: 31)) == [outranking(40001, 51413, isNew: true)], "another pair")
        #expect(observe(observation(.protonFile, 51413, at: 32)) == [], "the file agrees: the episode ends")
        #expect(observe(observation(.protonFile, 40001, at: 33)) == [outranking(40001, 51413, isNew: true)], "a new episode")
        #expect(outrankings(coordinator.handle(.deadlineReached, now: start + .seconds(90))) == [], "the mapping expired: the file's port wins")
        #expect(coordinator.desired == Port(40001))
        #expect(outranking(40000, 51413, isNew: true).description
                == "the ProtonVPN file says 40000; the live mapping 51413 from NAT-PMP outranks it")
    }

    @Test func anExpiredMappingGivesWayToTheFile() {
        var coordinator = Coordinator()
        _ = observe(&coordinator, observation(.protonFile, 40000, at: 0))
        _ = observe(&coordinator, observation(.natpmp, 41000, at: 1, expiry: 61))
        #expect(coordinator.nextDeadline == start + .seconds(61))
        let effects = coordinator.handle(.deadlineReached, now: start + .seconds(61))
        #expect(applied(effects) == Port(40000))
        #expect(effects.contains(.log(.notice, "port 40000 from proton-file (was 41000) (an observation expired)")))
        #expect(coordinator.nextDeadline == nil)
    }

    @Test func noPortNeverBecomesAPort() {
        var coordinator = Coordinator()
        _ = observe(&coordinator, observation(.protonFile, 40000, at: 0))
        #expect(coordinator.handle(.observed(observation(.protonFile, nil, at: 1)), now: start + .seconds(1))
                == [.withdrawn(source: .protonFile, reason: .sourceEmptied)], "said, and nothing handed off")
        #expect(coordinator.desired == Port(40000), "the last desired port stands")
        #expect(!coordinator.hasLivePort(now: start + .seconds(1)))
    }

    /// Gluetun's "down" recipe and the ProtonVPN app on disconnect: the source has no port for
    /// a while (and the client may be set to 0 meanwhile), then names the same port again.
    /// That is handed off too, so the client is looked at; a renewal is not.
    @Test func theSamePortNamedAgainAfterNoneIsHandedOffAgain() {
        var coordinator = Coordinator()
        _ = observe(&coordinator, observation(.protonFile, 40000, at: 0))
        #expect(observe(&coordinator, observation(.protonFile, 40000, at: 1)) == nil, "nothing lapsed")
        _ = observe(&coordinator, observation(.protonFile, nil, at: 2))
        let again = coordinator.handle(.observed(observation(.protonFile, 40000, at: 3)), now: start + .seconds(3))
        #expect(again == [.log(.notice, "port 40000 from proton-file (again)"), .apply(PortChange(port: Port(40000)!, previous: Port(40000)!, source: "proton-file", reason: .sourceChanged))],
                "not a change of port; the hook is told the port it had and where it came from")
        #expect(observe(&coordinator, observation(.protonFile, 40000, at: 4)) == nil)
        _ = observe(&coordinator, observation(.natpmp, 40000, at: 5, expiry: 65))
        #expect(observe(&coordinator, observation(.natpmp, 40000, at: 50, expiry: 110)) == nil, "a renewal of the same mapping")
    }

    @Test func aLoneChangeGoesAtOnceAndABurstEndsWithOneHandOff() {
        var coordinator = Coordinator(window: .milliseconds(50), longest: .seconds(1))
        #expect(observe(&coordinator, observation(.protonFile, 40000, at: 0)) == Port(40000), "the first change: at once")
        #expect(observe(&coordinator, observation(.protonFile, 40001, at: 5)) == Port(40001), "a change long after: at once")
        let burst = start + .seconds(5)
        var handOffs = 0
        for step in 1...100 {
            let change = PortObservation(source: .protonFile, port: Port(40001 + step), time: burst + .milliseconds(Int64(step)))
            if observe(&coordinator, change) != nil { handOffs += 1 }
        }
        #expect(handOffs == 0)
        #expect(coordinator.holdsBackAChange && coordinator.desired == Port(40101), "decided, not yet handed off")
        #expect(coordinator.nextDeadline == burst + .milliseconds(150), "50 ms after the last change")
        #expect(applied(coordinator.handle(.deadlineReached, now: burst + .milliseconds(150))) == Port(40101), "the last value, once")
        #expect(coordinator.nextDeadline == nil)
        #expect(!coordinator.holdsBackAChange)
        #expect(observe(&coordinator, observation(.protonFile, 40200, at: 7)) == Port(40200))
    }

    @Test func anEndlessBurstIsStillAppliedEverySecond() {
        var coordinator = Coordinator(window: .milliseconds(50), longest: .seconds(1))
        _ = observe(&coordinator, observation(.protonFile, 40000, at: 0))
        for step in 1...2000 {
            let now = start + .milliseconds(Int64(step))
            if let deadline = coordinator.nextDeadline, deadline <= now {
                #expect(deadline == start + .milliseconds(1) + .seconds(1), "capped at 1 s after the first change that waited")
                #expect(applied(coordinator.handle(.deadlineReached, now: deadline)) != nil)
                return
            }
            _ = observe(&coordinator, PortObservation(source: .protonFile, port: Port(40000 + step), time: now))
        }
        Issue.record("the burst was never handed off")
    }

    /// The reasons of the hand-offs: the first of a run (or of a reload), then the source's, and
    /// the third new port within ten minutes a rapid rotation, warned of once; past the window a
    /// new port is ordinary again. A source that stops naming a port says so for an emptied file
    /// and a lapsed lease, not for a tunnel that went down.
    @Test(arguments: [ChangeReason.started, .reload])
    func eachHandOffCarriesItsReason(first: ChangeReason) {
        var coordinator = Coordinator(firstReason: first)
        var now = start
        func handOff(_ port: Int, _ reason: ChangeReason, after seconds: Int) -> (reason: ChangeReason?, warned: Bool) {
            now = now + .seconds(seconds)
            let effects = coordinator.handle(.observed(PortObservation(source: .natpmp, port: Port(port), time: now, reason: reason)), now: now)
            let change = effects.compactMap { if case .apply(let change) = $0 { change } else { nil } }.first
            let warned = effects.contains { if case .log(.warning, let text) = $0 { text.contains("share one WireGuard key") } else { false } }
            return (change?.reason, warned)
        }
        #expect(handOff(40000, .renewedToNewPort, after: 0) == (first, false), "the first port of the run")
        #expect(handOff(40001, .renewedToNewPort, after: 60) == (.renewedToNewPort, false))
        #expect(handOff(40001, .renewedToNewPort, after: 45) == (nil, false), "the same port is no hand-off")
        #expect(handOff(40002, .gatewayRestarted, after: 60) == (.gatewayRestarted, false))
        #expect(handOff(40003, .renewedToNewPort, after: 60) == (.rapidRotation, true), "three new ports in under ten minutes")
        #expect(handOff(40004, .renewedToNewPort, after: 60) == (.rapidRotation, false), "warned once per rotation")
        #expect(handOff(40005, .tunnelRecreated, after: 601) == (.tunnelRecreated, false), "past the window")

        func withdrawal(_ observation: PortObservation) -> [Coordinator.Effect] {
            coordinator.handle(.observed(observation), now: observation.time).filter { if case .withdrawn = $0 { true } else { false } }
        }
        now = now + .seconds(1)
        #expect(withdrawal(PortObservation(source: .natpmp, port: nil, time: now, reason: .tunnelRecreated)).isEmpty, "a tunnel down is not said")
        #expect(handOff(40005, .tunnelRecreated, after: 1).reason == .tunnelRecreated, "the same port again after none")
        #expect(withdrawal(PortObservation(source: .natpmp, port: nil, time: now, reason: .leaseLapsed))
                == [.withdrawn(source: .natpmp, reason: .leaseLapsed)])
        #expect(withdrawal(PortObservation(source: .natpmp, port: nil, time: now, reason: .leaseLapsed)).isEmpty, "said once")
        var file = Coordinator()
        _ = file.handle(.observed(PortObservation(source: .protonFile, port: Port(40000), time: start)), now: start)
        #expect(file.handle(.observed(PortObservation(source: .protonFile, port: nil, time: start)), now: start)
                .contains(.withdrawn(source: .protonFile, reason: .sourceEmptied)))
        var expiring = Coordinator()
        _ = expiring.handle(.observed(PortObservation(source: .natpmp, port: Port(40000), time: start, expiry: start + .seconds(4))), now: start)
        #expect(expiring.handle(.deadlineReached, now: start + .seconds(4)).contains(.withdrawn(source: .natpmp, reason: .leaseLapsed)),
                "a lease that ran out unrenewed")
    }
}
