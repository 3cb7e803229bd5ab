import Domain
import HTTP
import Reactor

/// What one notification says, made from its event: a short title, one plain line of text
/// ("portsync: port 51413 → 61527 (NAT-PMP: the gateway gave a new port on renewal);
/// qBittorrent v5.0.1 verified"), whether it is bad news, and the event's values for the
/// generic JSON preset. Every text from outside (a client's words) is one printable line, and
/// the whole is bounded: it fits in a header, a Discord message and a phone's screen.
public struct NotifyMessage: Equatable, Sendable {
    public let event: NotifyEvent
    public let title: String
    public let text: String

    /// At most this many characters of text (Discord takes 2000).
    static let textLimit = 1000

    public init(_ event: NotifyEvent) {
        self.event = event
        switch event {
        case .portChanged(let move):
            title = "portsync: port changed"
            let ports = move.previous.map { "\($0) → \(move.port)" } ?? "\(move.port)"
            let burst = move.changes > 1 ? " after \(move.changes) changes" : ""
            var text = "portsync: port \(ports)\(burst) (\(move.sourceTitle): \(move.reason.explanation))"
            if !move.clients.isEmpty { text += "; " + move.clients.map(Self.outcome).joined(separator: ", ") }
            self.text = text.oneLine(limit: Self.textLimit)
        case .clientFailing(let trouble):
            let name = Self.name(trouble.label, trouble.title)
            let what = switch trouble.kind {
            case .unreachable: ("unreachable", "is unreachable")
            case .failing: ("failing", "is failing")
            case .loginRefused: ("login refused", "refused the login")
            }
            title = "portsync: \(name) \(what.0)".oneLine(limit: 100)
            text = "portsync: \(name) \(what.1): \(trouble.message)".oneLine(limit: Self.textLimit)
        case .connectabilityLost(let port, let why):
            title = "portsync: not connectable"
            text = "portsync: \(port.map { "port \($0) is not connectable" } ?? "not connectable"): \(why)".oneLine(limit: Self.textLimit)
        case .connectabilityRecovered(let port):
            title = "portsync: connectable again"
            text = "portsync: \(port.map { "port \($0) is connectable again" } ?? "connectable again")"
        }
    }

    /// Bad news: a client failing, the port not connectable (a higher priority where the
    /// service has one).
    public var isUrgent: Bool {
        event.kind == .clientFailing || event.kind == .connectabilityLost
    }

    /// "qBittorrent v5.0.1 verified", "qbittorrent.tv failed: connection refused".
    private static func outcome(_ client: NotifyEvent.ClientOutcome) -> String {
        let name = name(client.label, client.title)
        switch client.result {
        case .verified: return "\(name) verified"
        case .failed: return "\(name) failed\(client.detail.map { ": \($0)" } ?? "")"
        case .superseded: return "\(name) not verified (another change came first)"
        }
    }

    /// A client by its title (`qBittorrent v5.0.1`), or by its label when the table is named
    /// (`qbittorrent.tv`): two clients of one kind have the same title.
    private static func name(_ label: String, _ title: String) -> String {
        (label.contains(".") ? label : title).oneLine(limit: 60)
    }

    /// The event's values, with its kind, title and text: the generic preset's body.
    public var json: JSONValue {
        var members: [String: JSONValue] = [
            "event": .string(event.kind.rawValue), "title": .string(title), "message": .string(text),
        ]
        func number(_ port: Port?) -> JSONValue { port.map { .number(Double($0.value)) } ?? .null }
        switch event {
        case .portChanged(let move):
            members["port"] = number(move.port)
            members["previous_port"] = number(move.previous)
            members["source"] = .string(move.source)
            members["reason"] = .string(move.reason.rawValue)
            members["changes"] = .number(Double(move.changes))
            members["clients"] = .array(move.clients.map { client in
                var fields: [String: JSONValue] = ["client": .string(client.label), "title": .string(client.title),
                                                   "result": .string(client.result.rawValue)]
                if let detail = client.detail { fields["detail"] = .string(detail) }
                return .object(fields)
            })
        case .clientFailing(let trouble):
            members["client"] = .string(trouble.label)
            members["client_title"] = .string(trouble.title)
            members["trouble"] = .string(trouble.kind.rawValue)
            members["detail"] = .string(trouble.message)
        case .connectabilityLost(let port, let why):
            members["port"] = number(port)
            members["why"] = .string(why)
        case .connectabilityRecovered(let port):
            members["port"] = number(port)
        }
        return .object(members)
    }
}
