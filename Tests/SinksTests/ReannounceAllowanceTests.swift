import Domain
import Reactor
@testable import Sinks
import Testing

/// The once-a-minute rule applies to the same port only: a new port is told at once.
struct ReannounceAllowanceTests {
    let start = Instant(nanoseconds: 1_000_000_000)

    @Test func aNewPortIsDueAtOnceTheSamePortWhenTheIntervalEnds() {
        var allowance = ReannounceAllowance(enabled: true, interval: .seconds(60))
        let first = allowance.due(Port(51413)!, start)
        allowance.reannounced(Port(51413)!, start)
        let newPort = allowance.due(Port(40000)!, start + .seconds(5))
        let samePort = allowance.due(Port(51413)!, start + .seconds(10))
        #expect(first && newPort, "a new port: at once")
        #expect(!samePort, "the port the trackers were last told of, within the minute")
        #expect(allowance.dueAt == start + .seconds(60))
        let early = allowance.deadlineReached(start + .seconds(59))
        let onTime = allowance.deadlineReached(start + .seconds(60))
        #expect(!early && onTime && allowance.dueAt == nil)
        allowance.enabled = false
        let off = allowance.due(Port(40000)!, start + .seconds(90))
        #expect(!off)
    }
}
