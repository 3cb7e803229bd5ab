import Domain
import HTTP
import Reactor

/// `portsync history`: the last changes of port, oldest first, each with its time, ports,
/// source, reason and what each client did, then what the reasons seen mean; or, with `--json`,
/// one object with every record. Exit 0, or 4 when there is no history yet (as `status`).
struct HistoryCommand {
    let loaded: LoadedConfiguration
    let json: Bool

    func run() -> ExitCode {
        let stateFile = StatusCommand.stateFile(loaded.configuration, userID: ProcessEnvironment.userID).path
        let path = ChangeHistory.path(besideStateFile: stateFile)
        let history: ChangeHistory
        let skipped: [Int]
        do {
            guard let loaded = try ChangeHistory.load(path: path) else {
                return report("no history yet: portsync has not changed a port here (no \(path))", path)
            }
            (history, skipped) = loaded
        } catch {
            return report("history \(path): \(error)", path)
        }
        if !skipped.isEmpty {
            ProcessEnvironment.printToStandardError("portsync: history \(path): line(s) \(skipped.map(String.init).joined(separator: ", ")) are not change records; left out\n")
        }
        if json {
            let value = JSONValue.object(["history_file": .string(path), "changes": .array(history.records.map(\.jsonValue)),
                                          "connectability": .array(history.verdicts.map(\.jsonValue))])
            ProcessEnvironment.printToStandardOutput(value.serialized + "\n")
            return .success
        }
        var lines = history.entries.map(\.text)
        if lines.isEmpty { lines.append("no changes recorded in \(path)") }
        var seen: [ChangeReason] = []
        for record in history.records where !seen.contains(record.reason) { seen.append(record.reason) }
        if !seen.isEmpty { lines.append("") }
        lines += seen.map { "\($0.rawValue): \($0.explanation)" }
        ProcessEnvironment.printToStandardOutput(lines.joined(separator: "\n") + "\n")
        return .success
    }

    private func report(_ text: String, _ path: String) -> ExitCode {
        if json {
            ProcessEnvironment.printToStandardOutput(JSONValue.object(["history_file": .string(path), "error": .string(text)]).serialized + "\n")
        } else {
            ProcessEnvironment.printToStandardError("portsync: \(text)\n")
        }
        return .noState
    }
}
