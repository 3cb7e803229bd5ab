import Reactor
import Sinks

/// The clients whose port is kept, each behind `PortSink`, by their configuration label. The
/// daemon hands every port to all of them and reads their status through here.
final class SinkSet {
    /// A client's status changed (from the loop).
    var onStatusChange: (SinkStatus) -> Void = { _ in }

    private let loop: EventLoop
    private(set) var sinks: [(label: String, sink: any PortSink)] = []
    private var settings: [any PortSinkSettings] = []
    /// The last port handed over: a client added by a reload gets it at once.
    private var lastChange: PortChange?

    init(loop: EventLoop, settings: [any PortSinkSettings]) {
        self.loop = loop
        update(settings)
    }

    /// Settings from a reloaded configuration: a client with the same label keeps its sink (and
    /// its session), told only when its settings changed and when the sink takes them; the
    /// others are made anew, and given the current port, or dropped. One client's change never
    /// touches another's session.
    func update(_ fresh: [any PortSinkSettings]) {
        let old = zip(sinks, settings).map { (label: $0.label, sink: $0.sink, settings: $1) }
        sinks = fresh.map { entry in
            if let kept = old.first(where: { $0.label == entry.label }) {
                if Self.same(entry, kept.settings) || kept.sink.update(entry) { return (entry.label, kept.sink) }
            }
            let sink = entry.makeSink(loop: loop)
            sink.onStatusChange = { [unowned self] status in self.onStatusChange(status) }
            if let lastChange { sink.apply(lastChange) }
            return (entry.label, sink)
        }
        settings = fresh
    }

    private static func same(_ fresh: any PortSinkSettings, _ old: any PortSinkSettings) -> Bool {
        guard let fresh = fresh as? any Equatable else { return false }
        return equal(fresh, old)
    }

    private static func equal<T: Equatable>(_ fresh: T, _ old: any PortSinkSettings) -> Bool {
        (old as? T) == fresh
    }

    func apply(_ change: PortChange) {
        lastChange = change
        sinks.forEach { $0.sink.apply(change) }
    }

    func interfacesChanged() {
        sinks.forEach { $0.sink.interfacesChanged() }
    }

    var statuses: [SinkStatus] { sinks.map(\.sink.status) }

    /// The port the verified clients agree on; a client that fails does not count (its trouble
    /// is in the health), so one client down does not keep the others' port out of the state
    /// file. Nil while a client is still on its way, or when they disagree.
    var verifiedPort: Port? {
        guard !statuses.contains(where: \.health.isPending) else { return nil }
        let ports = Set(statuses.compactMap { $0.health == .verified ? $0.verifiedPort : nil })
        return ports.count == 1 ? ports.first : nil
    }

    var clients: [DaemonSnapshot.Client] {
        sinks.map { DaemonSnapshot.Client(label: $0.label, title: $0.sink.title, status: $0.sink.status, counters: $0.sink.counters) }
    }
}
