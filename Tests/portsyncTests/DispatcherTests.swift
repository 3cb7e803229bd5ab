import Domain
import Reactor
import Sinks
import TestSupport
import Testing
import Watchers
@testable import portsync

/// A client that only records what it was asked, and says at once that it has the port.
final class RecordingSink: PortSink {
    let name = "recording.sink"
    var title: String { "recorder" }
    private(set) var status = SinkStatus()
    private(set) var counters = SinkCounters()
    var onStatusChange: ((SinkStatus) -> Void)?
    private(set) var applied: [Port] = []

    private(set) var changes: [PortChange] = []

    func apply(_ change: PortChange) {
        let port = change.port
        changes.append(change)
        applied.append(port)
        counters.applies += 1
        status.health = .verified
        status.verifiedPort = port
        onStatusChange?(status)
    }

    func connect() {}
    func inspect() {}
    func reassert() {}
    func interfacesChanged() {}
    func update(_ settings: any PortSinkSettings) -> Bool { settings is RecordingSinkSettings }
}

struct RecordingSinkSettings: PortSinkSettings {
    let label: String
    var portIndex: Int? = nil
    var summary: String { "a recorder" }
    func makeSink(loop: EventLoop) -> any PortSink { RecordingSink() }
}

/// The coordinator's shell in a loop with a clock that moves only when told: exact counts of
/// hand-offs, no sleeping.
@Suite struct DispatcherTests {
    let clock = ManualClock()
    let loop: EventLoop
    let sinks: SinkSet
    let dispatcher: Dispatcher

    init() throws {
        loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        sinks = SinkSet(loop: loop, settings: [RecordingSinkSettings(label: "one"), RecordingSinkSettings(label: "two")])
        dispatcher = Dispatcher(loop: loop, sinks: sinks)
    }

    var recorded: [[Port]] { sinks.sinks.map { ($0.sink as! RecordingSink).applied } }

    func file(_ port: Int) -> PortObservation {
        PortObservation(source: .protonFile, port: Port(port), time: loop.now)
    }

    /// Moves the clock and lets the loop run what is due.
    func advance(_ duration: Duration) throws {
        clock.advance(by: duration)
        try loop.runOnce(timeout: .zero)
    }

    @Test func aBurstIsHandedToEveryClientOnceWhenItSettles() throws {
        try loop.runOnce(timeout: .zero)
        dispatcher.observed(file(40000))
        #expect(recorded == [[Port(40000)!], [Port(40000)!]], "a lone change goes at once, to every client")
        for step in 1...50 {
            try advance(.milliseconds(1))
            dispatcher.observed(file(40000 + step))
        }
        #expect(recorded.map(\.count) == [1, 1], "the burst waits")
        try advance(.milliseconds(24))
        #expect(recorded.map(\.count) == [1, 1], "not yet 25 ms of quiet")
        try advance(.milliseconds(1))
        #expect(recorded == [[Port(40000)!, Port(40050)!], [Port(40000)!, Port(40050)!]], "one hand-off of the last value")
        #expect(dispatcher.portChanges == 51)
        #expect(sinks.verifiedPort == Port(40050))
    }

    @Test func anExpiredMappingHandsTheFilePortOverAtItsExpiry() throws {
        try loop.runOnce(timeout: .zero)
        dispatcher.observed(file(40000))
        try advance(.seconds(1))
        dispatcher.observed(PortObservation(source: .natpmp, port: Port(41000), time: loop.now, expiry: loop.now + .seconds(60)))
        #expect(recorded[0] == [Port(40000)!, Port(41000)!])
        try advance(.seconds(59))
        #expect(recorded[0].count == 2)
        try advance(.seconds(1))
        #expect(recorded[0] == [Port(40000)!, Port(41000)!, Port(40000)!], "the file's port again, exactly at the expiry")
    }

    /// The outranked file port is logged once per pair of ports, and traced every time after.
    @Test func anOutrankedFilePortIsLoggedOnceAndTracedEachTime() throws {
        let log = LogCapture(level: .info, trace: true)
        let loop = try EventLoop(clock: clock, logger: log.logger)
        let sinks = SinkSet(loop: loop, settings: [RecordingSinkSettings(label: "one")])
        let dispatcher = Dispatcher(loop: loop, sinks: sinks)
        dispatcher.observed(PortObservation(source: .natpmp, port: Port(51413), time: loop.now, expiry: loop.now + .seconds(60)))
        for _ in 1...3 { dispatcher.observed(PortObservation(source: .protonFile, port: Port(40000), time: loop.now)) }
        let line = "portsync: the ProtonVPN file says 40000; the live mapping 51413 from NAT-PMP outranks it"
        #expect(log.lines.filter { $0.contains("info    " + line) }.count == 1, "\(log.text)")
        #expect(log.lines.filter { $0.contains("trace   " + line) }.count == 2, "\(log.text)")
        #expect((sinks.sinks[0].sink as! RecordingSink).applied == [Port(51413)!])
    }

    /// Gluetun forwarding several ports: a client with a `port_index` of its own takes that one,
    /// a change among the other ports alone is handed off too, and an index the source does not
    /// forward leaves that client's port alone and says so in its health.
    @Test func eachClientTakesThePortItsPortIndexPicks() throws {
        let sinks = SinkSet(loop: loop, settings: [RecordingSinkSettings(label: "main"), RecordingSinkSettings(label: "tv", portIndex: 1)])
        let dispatcher = Dispatcher(loop: loop, sinks: sinks)
        let recorded = { sinks.sinks.map { ($0.sink as! RecordingSink).applied } }
        func gluetun(_ ports: [Int]) -> PortObservation {
            let ports = ports.compactMap(Port.init)
            return PortObservation(source: .gluetun, port: ports.first, time: loop.now, ports: ports)
        }
        dispatcher.observed(gluetun([40000, 40001]))
        #expect(recorded() == [[Port(40000)!], [Port(40001)!]])
        #expect(sinks.verifiedPort == Port(40000))
        #expect(sinks.clients.map(\.wanted) == [Port(40000), Port(40001)])
        try advance(.seconds(1))
        dispatcher.observed(gluetun([40000, 40002]))
        #expect(recorded()[1] == [Port(40001)!, Port(40002)!], "the second port alone changed")
        #expect(dispatcher.portChanges == 1, "the desired port did not")
        try advance(.seconds(1))
        dispatcher.observed(gluetun([40003]))
        #expect(recorded() == [[Port(40000)!, Port(40000)!, Port(40003)!], [Port(40001)!, Port(40002)!]])
        #expect(sinks.clients[1].status.health == .failing("port_index 1: gluetun forwards 1 port(s)"))
        #expect(sinks.verifiedPort == Port(40003), "a failing client does not hold the others back")

        // A reload that changes a kept client's port_index, or adds one with its own, hands each its port.
        try advance(.seconds(1))
        dispatcher.observed(gluetun([40004, 40005]))
        sinks.update([RecordingSinkSettings(label: "main", portIndex: 1), RecordingSinkSettings(label: "tv", portIndex: 1),
                      RecordingSinkSettings(label: "new", portIndex: 0)])
        #expect(recorded().map(\.last) == [Port(40005), Port(40005), Port(40004)])
    }

    @Test func aReloadKeepsAClientWithTheSameLabelAndDropsTheOthers() throws {
        let kept = sinks.sinks[0].sink
        sinks.update([RecordingSinkSettings(label: "one"), RecordingSinkSettings(label: "three")])
        #expect(sinks.sinks.map(\.label) == ["one", "three"])
        #expect(sinks.sinks[0].sink === kept)
    }
}
