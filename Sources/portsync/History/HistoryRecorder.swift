import Domain
import Reactor
import Sinks

/// The daemon's side of the change history. A port handed to the clients becomes a record once
/// every client has answered for it (verified, or failed), with what each did and how long it
/// took: the file is written after the read-backs, never between a change and its clients. A
/// client that repairs itself (a drift set back, a dead listener re-opened) is a record of its
/// own, seen in its counters. A hand-off that leaves the port where the history has it (a start
/// on the port of the last run, a port named again) is no change and no record.
///
/// Only the last record is kept in memory: a record is appended to the file as one line, and
/// the file is cut back to the last `ChangeHistory.limit` once it holds twice as many (one
/// rewrite per 500 changes), so memory stays flat however many changes come.
final class HistoryRecorder {
    private(set) var path: String
    private(set) var last: ChangeRecord?
    /// The port the clients were last moved to (a withdrawal moves nothing).
    private(set) var lastPort: Port?
    /// Entries in the file (its lines), as far as this recorder knows.
    private(set) var lines = 0
    /// Changes in the file (connectability verdicts are lines too), as far as this recorder knows.
    private(set) var changes = 0
    /// The file ends in a line cut short (a crash mid-write): the next record starts a line.
    private var endsCut = false
    /// Records made since the start, by reason, for /metrics.
    private(set) var counts: [ChangeReason: Int] = [:]
    private let logger: Logger
    private var pending: Pending?
    /// Each client's repair counters as last seen, by label.
    private var repairsSeen: [String: (drift: Int, listener: Int)] = [:]
    /// Repairs seen while another change was in hand, recorded after it.
    private var repairs: [(label: String, port: Port, reason: ChangeReason)] = []
    /// The last write failed: said once, until one succeeds.
    private var writeFailed = false
    /// A record was made (whether or not the file took it): the notifier hears of changes here.
    var onRecord: (ChangeRecord) -> Void = { _ in }

    private struct Pending {
        var record: ChangeRecord
        let startedAt: Instant
        /// Each client's writes when the change was handed off, by label: more later means it was set.
        let applies: [String: Int]
        /// For a repair: the client that repaired itself, the only one the record is about.
        let repaired: String?
    }

    init(stateFile: String, logger: Logger) {
        path = ChangeHistory.path(besideStateFile: stateFile)
        self.logger = logger
    }

    func load() {
        last = nil
        lastPort = nil
        lines = 0
        changes = 0
        endsCut = false
        do {
            guard let bytes = try ChangeHistory.contents(path: path) else { return }
            endsCut = bytes.last.map { $0 != UInt8(ascii: "\n") } ?? false
            let (loaded, skipped) = ChangeHistory.parse(bytes)
            last = loaded.records.last
            lastPort = loaded.lastPort
            lines = loaded.entries.count + skipped.count
            changes = loaded.records.count
            if !skipped.isEmpty {
                logger.warning("portsync", "history \(path): line(s) \(skipped.map(String.init).joined(separator: ", ")) are not change records; left out")
            }
        } catch {
            logger.warning("portsync", "history \(path): \(error); starting a new one")
        }
    }

    /// A reloaded configuration names another state file: the history goes beside it.
    func move(toStateFile stateFile: String) {
        let fresh = ChangeHistory.path(besideStateFile: stateFile)
        guard fresh != path else { return }
        path = fresh
        load()
    }

    func handedOff(_ change: PortChange, clients: [DaemonSnapshot.Client], now: Instant) {
        // A change still in hand for another port is overtaken (the same port again stays in hand).
        if let pending, pending.record.port != change.port { finish(clients, now, superseded: true) }
        let previous = lastPort
        guard pending == nil, change.port != previous else { return }
        let record = ChangeRecord(time: WallClock.now, previous: previous, port: change.port, source: change.source, reason: change.reason)
        pending = Pending(record: record, startedAt: now, applies: Dictionary(clients.map { ($0.label, $0.counters.applies) }, uniquingKeysWith: max),
                          repaired: nil)
    }

    /// The winning source named no port any more: the clients keep theirs.
    func withdrawn(source: String, reason: ChangeReason, clients: [DaemonSnapshot.Client]) {
        guard let port = lastPort else { return }
        append(ChangeRecord(time: WallClock.now, previous: port, port: nil, source: source, reason: reason,
                            clients: clients.map { ChangeRecord.Outcome(label: $0.label, result: .kept) }))
    }

    /// After every outcome: a repair a client just began, and the change in hand once every
    /// client has answered for it.
    func observe(_ clients: [DaemonSnapshot.Client], now: Instant) {
        for client in clients {
            let counters = (drift: client.counters.driftRepairs, listener: client.counters.listenerRepairs)
            defer { repairsSeen[client.label] = counters }
            // A client seen first, or made anew by a reload (its counters start again): no repair.
            guard let seen = repairsSeen[client.label], seen.drift <= counters.drift, seen.listener <= counters.listener,
                  let port = client.wanted else { continue }
            if counters.drift > seen.drift { repairs.append((client.label, port, .clientDrifted)) }
            if counters.listener > seen.listener { repairs.append((client.label, port, .staleListener)) }
        }
        let settled = !clients.contains { $0.status.health.isPending }
        while true {
            if pending == nil, !repairs.isEmpty {
                let repair = repairs.removeFirst()
                let record = ChangeRecord(time: WallClock.now, previous: repair.port, port: repair.port, source: repair.label, reason: repair.reason)
                pending = Pending(record: record, startedAt: now, applies: [:], repaired: repair.label)
            }
            guard pending != nil, settled else { return }
            finish(clients, now, superseded: false)
        }
    }

    /// The change in hand, recorded now with what each client did so far (`once` at its
    /// deadline: a client still waiting counts as failed).
    func flush(_ clients: [DaemonSnapshot.Client], now: Instant) {
        finish(clients, now, superseded: false)
    }

    /// Each client's part in the change in hand, and the record written.
    private func finish(_ clients: [DaemonSnapshot.Client], _ now: Instant, superseded: Bool) {
        guard var pending else { return }
        self.pending = nil
        let involved = clients.filter { pending.repaired == nil || $0.label == pending.repaired }
        pending.record.clients = involved.map { client in
            let status = client.status
            switch status.health {
            case .verified where status.verifiedPort == client.wanted:
                if pending.repaired != nil { return ChangeRecord.Outcome(label: client.label, result: .repaired) }
                let wrote = client.counters.applies > pending.applies[client.label, default: client.counters.applies]
                return ChangeRecord.Outcome(label: client.label, result: wrote ? .set : .already)
            case .unreachable(let why), .failing(let why), .loginRefused(let why):
                return ChangeRecord.Outcome(label: client.label, result: .failed, detail: why)
            default:
                return ChangeRecord.Outcome(label: client.label, result: superseded ? .superseded : .failed, detail: "not on port \(client.wanted.map { "\($0)" } ?? "?")")
            }
        }
        if pending.record.clients.allSatisfy({ [.set, .already, .repaired].contains($0.result) }) {
            pending.record.verifiedAfterMilliseconds = Int((now - pending.startedAt).nanoseconds / 1_000_000)
        }
        append(pending.record)
    }

    /// A new connectability verdict, or what was done about one: a line of its own.
    func connectability(_ record: ConnectabilityRecord) {
        write(.connectability(record))
    }

    private func append(_ record: ChangeRecord) {
        last = record
        // A repair is on one client's port (its port_index may pick another): not the port all moved to.
        if let port = record.port, !record.reason.isRepair { lastPort = port }
        counts[record.reason, default: 0] += 1
        changes += 1
        write(.change(record))
        onRecord(record)
    }

    private func write(_ entry: ChangeHistory.Entry) {
        do {
            if lines + 1 > 2 * ChangeHistory.limit {
                var kept = (try ChangeHistory.load(path: path))?.history ?? ChangeHistory()
                kept.append(entry)
                try kept.save(path: path)
                lines = kept.entries.count
                changes = kept.records.count
            } else {
                try FileContents.append(Array(((endsCut ? "\n" : "") + entry.jsonValue.serialized + "\n").utf8), toPath: path)
                endsCut = false
                lines += 1
            }
            if writeFailed { logger.info("portsync", "history \(path) written again") }
            writeFailed = false
        } catch {
            if !writeFailed { logger.error("portsync", "cannot write the history \(path): \(error)") }
            writeFailed = true
        }
    }
}
