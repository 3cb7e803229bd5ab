import Domain
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
    /// The clients were reached at start (`connect`): one added by a reload before any port is too.
    private var connected = false

    init(loop: EventLoop, settings: [any PortSinkSettings]) {
        self.loop = loop
        update(settings)
    }

    /// Settings from a reloaded configuration: a client with the same label keeps its sink (and
    /// its session), told only when its settings changed and when the sink takes them (and given
    /// its port again when its `port_index` changed); the others are made anew, and given the
    /// current port, or dropped. One client's change never touches another's session.
    func update(_ fresh: [any PortSinkSettings]) {
        let old = zip(sinks, settings).map { (label: $0.label, sink: $0.sink, settings: $1) }
        sinks = fresh.map { entry in
            if let kept = old.first(where: { $0.label == entry.label }),
               Self.same(entry, kept.settings) || kept.sink.update(entry) {
                if let lastChange, entry.portIndex != kept.settings.portIndex {
                    hand(lastChange, to: kept.sink, label: entry.label, portIndex: entry.portIndex)
                }
                return (entry.label, kept.sink)
            }
            let sink = entry.makeSink(loop: loop)
            sink.onStatusChange = { [unowned self] status in self.onStatusChange(status) }
            if let lastChange {
                hand(lastChange, to: sink, label: entry.label, portIndex: entry.portIndex)
            } else if connected {
                sink.connect()
            }
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

    /// Reaches every client now, before any port: a wrong URL or password shows at start, not
    /// when the VPN first forwards a port.
    func connect() {
        connected = true
        if lastChange == nil { sinks.forEach { $0.sink.connect() } }
    }

    /// Hands the change to every client at once, each the port its `port_index` picks.
    func apply(_ change: PortChange) {
        lastChange = change
        for (index, entry) in sinks.enumerated() { hand(change, to: entry.sink, label: entry.label, portIndex: settings[index].portIndex) }
    }

    private func hand(_ change: PortChange, to sink: any PortSink, label: String, portIndex: Int?) {
        guard let selected = change.selecting(portIndex) else {
            return loop.logger.warning("\(label).http", "\(Self.outOfRange(portIndex, change)); this client's port stays")
        }
        sink.apply(selected)
    }

    private static func outOfRange(_ portIndex: Int?, _ change: PortChange) -> String {
        "port_index \(portIndex ?? 0): \(change.source) forwards \(change.ports.count) port(s)"
    }

    func interfacesChanged() {
        sinks.forEach { $0.sink.interfacesChanged() }
    }

    /// Asks every client that says anything of its own connectability to say it again.
    func observeConnections() {
        sinks.forEach { $0.sink.observeConnection() }
    }

    /// Makes the client with `label` re-open its listener.
    func reassert(_ label: String) {
        sinks.first { $0.label == label }?.sink.reassert()
    }

    var statuses: [SinkStatus] { clients.map(\.status) }

    /// The port handed to the clients, once every client that does not fail is verified on its
    /// own (`wanted`); a client that fails does not count (its trouble is in the health), so one
    /// client down does not keep the others' port out of the state file. Nil while a client is
    /// still on its way.
    var verifiedPort: Port? {
        guard let change = lastChange else { return nil }
        let clients = self.clients
        guard !clients.contains(where: { $0.status.health.isPending }) else { return nil }
        let verified = clients.filter { $0.status.health == .verified }
        return !verified.isEmpty && verified.allSatisfy({ $0.status.verifiedPort == $0.wanted }) ? change.port : nil
    }

    /// The command hook's last run and totals, when there is a hook and it has run.
    var hookRecord: HookRecord? {
        sinks.lazy.compactMap { $0.sink as? HookSink }.first.flatMap { hook in hook.lastRun.map { HookRecord($0, hook.counters) } }
    }

    /// Each client as the daemon reports it; one whose `port_index` the source does not forward
    /// is failing, whatever its session says.
    var clients: [DaemonSnapshot.Client] {
        sinks.indices.map { index in
            let (label, sink) = sinks[index]
            var status = sink.status
            let portIndex = settings[index].portIndex
            if let change = lastChange, change.selecting(portIndex) == nil {
                status.health = .failing(Self.outOfRange(portIndex, change))
            }
            return DaemonSnapshot.Client(label: label, title: sink.title, status: status, counters: sink.counters,
                                         wanted: lastChange?.selecting(portIndex)?.port, isTorrentClient: !(sink is HookSink),
                                         listenerVisible: settings[index].listenerVisible, canReopenListener: sink.canReopenListener)
        }
    }
}
