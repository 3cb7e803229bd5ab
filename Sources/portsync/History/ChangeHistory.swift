import Domain
import HTTP
import Reactor

/// One change in the history: when, from which port to which, from which source and why, what
/// each client did, and how long until every client was verified on the new port.
struct ChangeRecord: Equatable {
    /// What one client did about the change, by its label.
    struct Outcome: Equatable {
        enum Result: String {
            /// Written and read back.
            case set
            /// It had the port already.
            case already
            /// Set back after a drift, or made to re-open its sockets.
            case repaired
            /// The client kept its port (the source had none to give).
            case kept
            /// It was not verified: `detail` says why.
            case failed
            /// Another change came before this one was verified.
            case superseded
        }

        let label: String
        let result: Result
        /// For `failed`: the client's trouble in words (already free of secrets).
        var detail: String? = nil
    }

    /// Unix seconds.
    let time: Int64
    let previous: Port?
    /// nil: the source stopped naming a port (`sourceEmptied`, `leaseLapsed`).
    let port: Port?
    let source: String
    let reason: ChangeReason
    var clients: [Outcome] = []
    /// From the hand-off until every client was verified on the port.
    var verifiedAfterMilliseconds: Int? = nil

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "time": .number(Double(time)), "source": .string(source), "reason": .string(reason.rawValue),
            "clients": .object(Dictionary(clients.map { outcome in
                var member: [String: JSONValue] = ["result": .string(outcome.result.rawValue)]
                if let detail = outcome.detail { member["detail"] = .string(detail) }
                return (outcome.label, JSONValue.object(member))
            }, uniquingKeysWith: { first, _ in first })),
        ]
        if let previous { members["previous"] = .number(Double(previous.value)) }
        if let port { members["port"] = .number(Double(port.value)) }
        if let verifiedAfterMilliseconds { members["verified_after_ms"] = .number(Double(verifiedAfterMilliseconds)) }
        return .object(members)
    }

    /// A record as `jsonValue` wrote it; nil for anything else (a hand-edited or cut line).
    init?(_ value: JSONValue) {
        guard let time = value["time"]?.integer, let source = value["source"]?.string,
              let reason = value["reason"]?.string.flatMap(ChangeReason.init(rawValue:)) else { return nil }
        func port(_ key: String) -> Port?? {
            guard let member = value[key] else { return .some(nil) }
            guard let number = member.integer, let port = Port(number) else { return nil }
            return .some(port)
        }
        guard let previous = port("previous"), let current = port("port") else { return nil }
        var clients: [Outcome] = []
        if case .object(let members)? = value["clients"] {
            for (label, member) in members.sorted(by: { $0.key < $1.key }) {
                guard let result = member["result"]?.string.flatMap(Outcome.Result.init(rawValue:)) else { return nil }
                clients.append(Outcome(label: label, result: result, detail: member["detail"]?.string))
            }
        }
        let after = value["verified_after_ms"]?.integer
        self.init(time: Int64(time), previous: previous, port: current, source: source, reason: reason, clients: clients,
                  verifiedAfterMilliseconds: after)
    }

    init(time: Int64, previous: Port?, port: Port?, source: String, reason: ChangeReason, clients: [Outcome] = [],
         verifiedAfterMilliseconds: Int? = nil) {
        self.time = time
        self.previous = previous
        self.port = port
        self.source = source
        self.reason = reason
        self.clients = clients
        self.verifiedAfterMilliseconds = verifiedAfterMilliseconds
    }

    /// "2026-12-07 03:00:12  51413 → 40213  natpmp  gateway-restarted  qbittorrent set; verified in 41 ms"
    var text: String {
        let ports = "\(previous.map { "\($0)" } ?? "none") → \(port.map { "\($0)" } ?? "none")"
        let outcomes = clients.map { "\($0.label.oneLine(limit: 40)) \($0.result.rawValue)\($0.detail.map { " (\($0.oneLine()))" } ?? "")" }
        var line = "\(WallClock.text(time))  \(ports)  \(source.oneLine(limit: 40))  \(reason.rawValue)"
        if !outcomes.isEmpty { line += "  \(outcomes.joined(separator: ", "))" }
        if let verifiedAfterMilliseconds { line += "; verified in \(verifiedAfterMilliseconds) ms" }
        return line
    }
}

/// The last changes, oldest first, at most `limit`, with the connectability verdicts reached
/// between them: kept in a file of JSON lines beside the state file, one entry per line
/// (`HistoryRecorder` appends them, and cuts the file back to the last `limit` when it holds
/// twice as many). A line that is neither is left out with a warning; the others stand.
struct ChangeHistory: Equatable {
    /// One line of the file.
    enum Entry: Equatable {
        case change(ChangeRecord)
        /// A new connectability verdict, or what portsync did about one.
        case connectability(ConnectabilityRecord)

        var jsonValue: JSONValue {
            switch self {
            case .change(let record): record.jsonValue
            case .connectability(let record): .object(["time": .number(Double(record.checked)), "connectable": record.jsonValue])
            }
        }

        init?(_ value: JSONValue) {
            if let member = value["connectable"] {
                guard let record = ConnectabilityRecord(member) else { return nil }
                self = .connectability(record)
            } else {
                guard let record = ChangeRecord(value) else { return nil }
                self = .change(record)
            }
        }

        /// "2026-12-07 03:00:14  not connectable (qbittorrent does not listen on port 40213); re-opened qbittorrent's listener"
        var text: String {
            switch self {
            case .change(let record): record.text
            case .connectability(let record):
                "\(WallClock.text(record.checked))  \(record.summary.oneLine(limit: 200))\(record.action.map { "; \($0)" } ?? "")"
            }
        }
    }

    static let limit = 500
    /// More than the file can hold: 2 × `limit` lines of well under 2 KiB each.
    static let maxBytes = 4 << 20
    private(set) var entries: [Entry] = []

    init(entries: [Entry] = []) {
        self.entries = Array(entries.suffix(Self.limit))
    }

    init(records: [ChangeRecord]) {
        self.init(entries: records.map(Entry.change))
    }

    /// The changes alone.
    var records: [ChangeRecord] {
        entries.compactMap { if case .change(let record) = $0 { record } else { nil } }
    }

    var verdicts: [ConnectabilityRecord] {
        entries.compactMap { if case .connectability(let record) = $0 { record } else { nil } }
    }

    mutating func append(_ record: ChangeRecord) {
        append(.change(record))
    }

    mutating func append(_ entry: Entry) {
        entries.append(entry)
        if entries.count > Self.limit { entries.removeFirst(entries.count - Self.limit) }
    }

    /// The port the clients were last moved to (a withdrawal moves nothing).
    var lastPort: Port? { records.last { $0.port != nil && !$0.reason.isRepair }?.port }

    var jsonLines: String { entries.map { $0.jsonValue.serialized + "\n" }.joined() }

    /// The entries of a file; `skipped`: the numbers of the lines that were neither kind.
    static func parse(_ bytes: [UInt8]) -> (history: ChangeHistory, skipped: [Int]) {
        var entries: [Entry] = []
        var skipped: [Int] = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            if let value = try? JSONValue.parse(Array(line)), let entry = Entry(value) {
                entries.append(entry)
            } else {
                skipped.append(index + 1)
            }
        }
        return (ChangeHistory(entries: entries), skipped)
    }

    /// Beside the state file: `history.jsonl` in its directory.
    static func path(besideStateFile stateFile: String) -> String {
        FileContents.directory(of: stateFile) + "/history.jsonl"
    }

    /// The file's history; nil when there is none yet.
    static func load(path: String) throws -> (history: ChangeHistory, skipped: [Int])? {
        try contents(path: path).map(parse)
    }

    /// The file's bytes; nil when there is none yet.
    static func contents(path: String) throws -> [UInt8]? {
        do {
            return try FileContents.read(atPath: path, maxBytes: maxBytes)
        } catch let error as SystemCallError where error.errno == .noSuchFileOrDirectory {
            return nil
        }
    }

    func save(path: String) throws {
        try FileContents.writeAtomically(Array(jsonLines.utf8), toPath: path, mode: 0o600)
    }
}
