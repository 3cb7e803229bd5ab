import Testing
@testable import Reactor
import TestSupport

@Suite struct TimerQueueTests {
    let base = Instant(nanoseconds: 1_000)

    @Test func popsDueOwnersEarliestFirst() {
        var queue = TimerQueue()
        queue.schedule(3, at: base + .seconds(3))
        queue.schedule(1, at: base + .seconds(1))
        queue.schedule(2, at: base + .seconds(2))
        #expect(queue.nextDeadline == base + .seconds(1))
        #expect(queue.popDue(at: base + .seconds(2)) == [1, 2])
        #expect(queue.nextDeadline == base + .seconds(3))
        #expect(queue.popDue(at: base + .seconds(2)) == [])
    }

    @Test func reschedulingReplacesTheOwnersDeadline() {
        var queue = TimerQueue()
        queue.schedule(1, at: base + .seconds(1))
        queue.schedule(1, at: base + .seconds(10))
        #expect(queue.popDue(at: base + .seconds(5)) == [])
        #expect(queue.deadline(of: 1) == base + .seconds(10))
        #expect(queue.popDue(at: base + .seconds(10)) == [1])
        #expect(queue.isEmpty)
    }

    @Test func tiesFireInSchedulingOrder() {
        var queue = TimerQueue()
        queue.schedule(9, at: base)
        queue.schedule(4, at: base)
        queue.schedule(7, at: base)
        #expect(queue.popDue(at: base) == [9, 4, 7])
    }

    @Test func cancelRemoves() {
        var queue = TimerQueue()
        queue.schedule(1, at: base)
        queue.cancel(1)
        #expect(queue.nextDeadline == nil)
        #expect(queue.popDue(at: base + .seconds(1)) == [])
    }
}
