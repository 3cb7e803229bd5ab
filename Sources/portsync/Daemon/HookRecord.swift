import Domain
import HTTP
import Reactor
import Sinks

/// The command hook's last run and its totals, as the state file keeps them for `status`.
struct HookRecord: Equatable {
    var port: Port
    /// "exited with 0", "was still running after 30 s and was killed".
    var outcome: String
    var succeeded: Bool
    /// The first line of its stderr.
    var errorLine: String?
    var runs: Int
    var failures: Int
}

extension HookRecord {
    init(_ run: HookRun, _ counters: SinkCounters) {
        self.init(port: run.port, outcome: "\(run.outcome)", succeeded: run.outcome.succeeded, errorLine: run.errorLine,
                  runs: counters.applies, failures: counters.failedApplies)
    }

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "port": .number(Double(port.value)), "outcome": .string(outcome), "succeeded": .bool(succeeded),
            "runs": .number(Double(runs)), "failures": .number(Double(failures)),
        ]
        if let errorLine { members["stderr"] = .string(errorLine) }
        return .object(members)
    }

    /// From the state file; nil when it is not a hook record.
    init?(_ value: JSONValue) {
        guard let number = value["port"]?.integer, let port = Port(number), let outcome = value["outcome"]?.string,
              let succeeded = value["succeeded"]?.bool else { return nil }
        self.init(port: port, outcome: outcome, succeeded: succeeded, errorLine: value["stderr"]?.string,
                  runs: value["runs"]?.integer ?? 0, failures: value["failures"]?.integer ?? 0)
    }

    /// "hook: port 51413 exited with 1: iptables: Permission denied (3 runs, 1 failed)".
    var text: String {
        let stderr = errorLine.map { ": \($0.oneLine())" } ?? ""
        return "hook: port \(port) \(outcome.oneLine())\(stderr) (\(runs) run\(runs == 1 ? "" : "s"), \(failures) failed)"
    }
}
