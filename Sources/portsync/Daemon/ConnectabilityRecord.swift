import Coordination
import HTTP

/// A connectability verdict as the state file, `status --json` and the history keep it: the
/// verdict, why, the evidence and when it was reached, and what portsync did about it.
struct ConnectabilityRecord: Equatable {
    struct Evidence: Equatable {
        var kind: String
        var ok: Bool?
        var text: String
    }

    /// "connectable", "not connectable", "unknown".
    var verdict: String
    /// The cause's code ("not-listening"), and the cause in words.
    var why: String? = nil
    var detail: String? = nil
    var evidence: [Evidence] = []
    /// Unix seconds.
    var checked: Int64
    /// What portsync did about it, in words: "re-opened qbittorrent's listener".
    var action: String? = nil

    init(_ judgement: Connectability.Judgement, checked: Int64, action: String? = nil) {
        verdict = judgement.verdict.name
        why = judgement.verdict.cause?.code
        detail = judgement.verdict.cause?.description
        evidence = judgement.evidence.map { Evidence(kind: $0.kind, ok: $0.ok, text: $0.text) }
        self.checked = checked
        self.action = action
    }

    var kind: Connectability.Verdict.Kind? { Connectability.Verdict.Kind(rawValue: verdict) }

    /// "connectable", "not connectable (qbittorrent does not listen on port 61527)"
    var summary: String { detail.map { "\(verdict) (\($0))" } ?? verdict }

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "verdict": .string(verdict), "checked": .number(Double(checked)),
            "evidence": .array(evidence.map { item in
                var member: [String: JSONValue] = ["kind": .string(item.kind), "text": .string(item.text)]
                member["ok"] = item.ok.map { .bool($0) } ?? .null
                return .object(member)
            }),
        ]
        if let why { members["why"] = .string(why) }
        if let detail { members["detail"] = .string(detail) }
        if let action { members["action"] = .string(action) }
        return .object(members)
    }

    /// A record as `jsonValue` wrote it; nil for anything else.
    init?(_ value: JSONValue) {
        guard let verdict = value["verdict"]?.string, let checked = value["checked"]?.integer else { return nil }
        self.verdict = verdict
        self.checked = Int64(checked)
        why = value["why"]?.string
        detail = value["detail"]?.string
        action = value["action"]?.string
        if case .array(let items)? = value["evidence"] {
            evidence = items.compactMap { item in
                guard let kind = item["kind"]?.string, let text = item["text"]?.string else { return nil }
                return Evidence(kind: kind, ok: item["ok"]?.bool, text: text)
            }
        }
    }
}
