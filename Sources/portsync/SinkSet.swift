import Reactor
import Sinks

/// The clients whose port is kept, each behind `PortSink`, by their configuration label. The
/// daemon hands every port to all of them and reads their status through here.
final class SinkSet {
    /// A client's status changed (from the loop).
    var onStatusChange: (SinkStatus) -> Void = { _ in }

    private let loop: EventLoop
    private(set) var sinks: [(label: String, sink: any PortSink)] = []

    init(loop: EventLoop, settings: [any PortSinkSettings]) {
        self.loop = loop
        update(settings)
    }

    /// Settings from a reloaded configuration: a client with the same label keeps its sink (and
    /// its session) when the sink takes them; the others are made anew or dropped.
    func update(_ settings: [any PortSinkSettings]) {
        let old = sinks
        sinks = settings.map { entry in
            if let kept = old.first(where: { $0.label == entry.label })?.sink, kept.update(entry) { return (entry.label, kept) }
            let sink = entry.makeSink(loop: loop)
            sink.onStatusChange = { [unowned self] status in self.onStatusChange(status) }
            return (entry.label, sink)
        }
    }

    func apply(_ change: PortChange) {
        sinks.forEach { $0.sink.apply(change) }
    }

    func interfacesChanged() {
        sinks.forEach { $0.sink.interfacesChanged() }
    }

    var statuses: [SinkStatus] { sinks.map(\.sink.status) }

    /// The port every client is verified on, when they agree.
    var verifiedPort: Port? {
        let ports = Set(statuses.map { $0.health == .verified ? $0.verifiedPort : nil })
        return ports.count == 1 ? ports.first! : nil
    }

    /// The command hook's last run and totals, when there is a hook and it has run.
    var hookRecord: HookRecord? {
        sinks.lazy.compactMap { $0.sink as? HookSink }.first.flatMap { hook in hook.lastRun.map { HookRecord($0, hook.counters) } }
    }

    var clients: [DaemonSnapshot.Client] {
        sinks.map { DaemonSnapshot.Client(label: $0.label, title: $0.sink.title, status: $0.sink.status, counters: $0.sink.counters) }
    }
}
