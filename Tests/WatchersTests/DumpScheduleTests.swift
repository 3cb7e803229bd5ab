import CLinux
import Reactor
import Testing
@testable import Watchers

/// When the tunnel watcher reads the kernel's state again, without a socket or root: the three
/// dumps one at a time, all again after lost events, an interrupted dump or an overrun, and
/// lost events in the middle of a dump handled when it ends.
@Suite struct DumpScheduleTests {
    let link = UInt16(RTM_GETLINK), address = UInt16(RTM_GETADDR), route = UInt16(RTM_GETROUTE)

    /// Ends every dump in turn; the types sent, in order.
    func finish(_ schedule: inout DumpSchedule, from effects: [DumpSchedule.Effect]) -> [UInt16] {
        var sent: [UInt16] = []
        var effects = effects
        while case .sendDump(let type, let sequence)? = effects.last {
            sent.append(type)
            effects = schedule.dumpEnded(sequence: sequence, interrupted: false)
        }
        #expect(schedule.isSettled)
        return sent
    }

    @Test func theThreeDumpsGoOneAtATimeThenTheStateIsSettled() {
        var schedule = DumpSchedule()
        let effects = schedule.start()
        #expect(effects.first == .resetTracker && !schedule.isSettled)
        #expect(finish(&schedule, from: effects) == [link, address, route])
        #expect(schedule.resyncs == 0)
    }

    @Test func lostEventsWhileSettledReadEverythingAgainAndSaySo() {
        var schedule = DumpSchedule()
        _ = finish(&schedule, from: schedule.start())
        let effects = schedule.eventsLost(interface: "wg0")
        #expect(effects.prefix(2) == [.log(.warning, "netlink events were lost (ENOBUFS); reading the state of wg0 again"), .resetTracker])
        #expect(finish(&schedule, from: effects) == [link, address, route] && schedule.resyncs == 1)
    }

    @Test func lostEventsDuringADumpRedoTheDumpsWhenItEnds() {
        var schedule = DumpSchedule()
        guard case .sendDump(_, let first)? = schedule.start().last else { Issue.record("no dump"); return }
        #expect(schedule.eventsLost(interface: "wg0") == [], "not in the middle of a dump")
        let after = schedule.dumpEnded(sequence: first, interrupted: false)
        #expect(after.first == .resetTracker, "the picture is redone from the start")
        #expect(finish(&schedule, from: after) == [link, address, route])
    }

    @Test func anInterruptedDumpOrAnOverrunStartsOverAndAStrangersDoneIsIgnored() {
        var schedule = DumpSchedule()
        guard case .sendDump(_, let first)? = schedule.start().last else { Issue.record("no dump"); return }
        #expect(schedule.dumpEnded(sequence: first &+ 7, interrupted: false) == [], "another sequence's end")
        let interrupted = schedule.dumpEnded(sequence: first, interrupted: true)
        #expect(interrupted.first == .resetTracker)
        guard case .sendDump(let type, let again)? = interrupted.last else { Issue.record("no dump"); return }
        #expect(type == link && again != first, "a fresh sequence number")
        #expect(schedule.overrun().first == .resetTracker)
        let lookup = schedule.nextSequence()
        #expect(schedule.inFlight != lookup, "a route lookup has a number of its own")
    }
}
