import Domain
import Reactor
import Watchers

/// The daemon's side of the state file: the last state is read at the start, and the state is
/// written when something in it changed, but never while a port is being applied: a change
/// goes to the clients with no fsync in its way, and is written once, after their read-back.
final class StateRecorder {
    private(set) var store: StateStore
    private(set) var state: DaemonState?
    /// Writes so far: one per change of port.
    private(set) var writes = 0
    private let logger: Logger
    /// The last state that could not be written: not tried again (nor said again) unchanged.
    private var unwritten: DaemonState?

    init(path: String, logger: Logger) {
        store = StateStore(path: path)
        self.logger = logger
    }

    func load() {
        if let warning = store.directoryWarning() { logger.warning("portsync", warning) }
        do {
            state = try store.load()
            if let state, let port = state.port {
                logger.info("portsync", "last applied port \(port) (\(state.source ?? "?")) \(state.appliedAt.map { WallClock.age($0) } ?? "")")
            }
        } catch {
            logger.warning("portsync", "state file \(store.path): \(error); starting without it")
        }
    }

    /// A reloaded configuration names another file: the next change goes there.
    func move(to path: String) {
        store = StateStore(path: path)
    }

    /// `verifiedPort`: the port the verified clients agree on (`SinkSet`). Nothing is written
    /// while a port is on its way to a client: the write waits for the read-back.
    func record(_ snapshot: DaemonSnapshot, desired: Port?, verifiedPort: Port?, sources: SourceSet?) {
        if case .applying = snapshot.health { return }
        guard !snapshot.clients.contains(where: { $0.status.health == .applying }) else { return }
        var next = state ?? DaemonState(health: snapshot.health, pid: ProcessEnvironment.processID, updatedAt: 0)
        next.pid = ProcessEnvironment.processID
        next.health = snapshot.health
        for client in snapshot.clients { next.clientVersions[client.label] = client.status.version ?? next.clientVersions[client.label] }
        // Only the clients configured now: a client dropped by a reload leaves the state file.
        let labels = Set(snapshot.clients.map(\.label))
        next.clientVersions = next.clientVersions.filter { labels.contains($0.key) }
        next.clientHealth = Dictionary(uniqueKeysWithValues: snapshot.clients.map { ($0.label, $0.health.description) })
        next.hook = snapshot.hook
        next.connectable = snapshot.connectability ?? next.connectable
        if let sources {
            // Only the sources configured now, each with what it last said of itself.
            next.sources = Dictionary(uniqueKeysWithValues: sources.statuses.map { source, status in
                (source.rawValue, (next.sources[source.rawValue] ?? SourceRecord()).updated(source, status))
            })
        }
        if let port = verifiedPort, port == desired {
            if next.port != port { next.appliedAt = WallClock.now }
            next.port = port
            next.source = snapshot.source
        }
        guard next != state, next != unwritten else { return }
        unwritten = next
        next.updatedAt = WallClock.now
        do {
            try store.save(next)
            state = next
            unwritten = nil
            writes += 1
        } catch {
            logger.error("portsync", "cannot write the state file: \(error)")
        }
    }
}
