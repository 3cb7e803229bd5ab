import Domain
import Reactor

/// What the notifier tells the person about, with the values the message is made from (the
/// generic JSON preset sends them as they are).
public enum NotifyEvent: Equatable, Sendable {
    /// The clients were moved to another port, and what each of them made of it.
    case portChanged(PortMove)
    /// A client went from working to failing (unreachable, failing, its login refused).
    case clientFailing(ClientTrouble)
    /// Peers cannot reach the port any more, and why (the connectability verdict's words).
    case connectabilityLost(port: Port?, why: String)
    /// Peers can reach the port again.
    case connectabilityRecovered(port: Port?)

    /// The kinds `[notify] events` names.
    public enum Kind: String, CaseIterable, Sendable {
        case portChanged = "port-changed"
        case clientFailing = "client-failing"
        case connectabilityLost = "connectability-lost"
        case connectabilityRecovered = "connectability-recovered"
    }

    public var kind: Kind {
        switch self {
        case .portChanged: .portChanged
        case .clientFailing: .clientFailing
        case .connectabilityLost: .connectabilityLost
        case .connectabilityRecovered: .connectabilityRecovered
        }
    }

    /// A port handed to the clients, once every client answered for it (the history's record).
    public struct PortMove: Equatable, Sendable {
        /// The port before; nil at the first ever.
        public var previous: Port?
        public var port: Port
        /// The source's name (`natpmp`) and how it is called in words (`NAT-PMP`).
        public var source: String
        public var sourceTitle: String
        public var reason: ChangeReason
        public var clients: [ClientOutcome]
        /// How many changes this one stands for: more than one when a burst was folded into it.
        public var changes = 1

        public init(previous: Port?, port: Port, source: String, sourceTitle: String, reason: ChangeReason, clients: [ClientOutcome]) {
            self.previous = previous
            self.port = port
            self.source = source
            self.sourceTitle = sourceTitle
            self.reason = reason
            self.clients = clients
        }

        /// `later` folded into this one: from this one's previous port to the later one's port,
        /// with the later one's source, reason and clients.
        func folding(_ later: PortMove) -> PortMove {
            var folded = later
            folded.previous = previous
            folded.changes = changes + later.changes
            return folded
        }
    }

    /// What one client did about a port change.
    public struct ClientOutcome: Equatable, Sendable {
        public enum Result: String, Sendable {
            /// On the new port, read back.
            case verified
            /// Not on it: `detail` says why.
            case failed
            /// Another change came before this one was verified.
            case superseded
        }

        /// The configuration label (`qbittorrent`, `qbittorrent.tv`, `hook`) and the client in
        /// words (`qBittorrent v5.0.1`).
        public var label: String
        public var title: String
        public var result: Result
        public var detail: String?

        public init(label: String, title: String, result: Result, detail: String? = nil) {
            self.label = label
            self.title = title
            self.result = result
            self.detail = detail
        }
    }

    /// A client that stopped working, from its `SinkStatus`.
    public struct ClientTrouble: Equatable, Sendable {
        public enum Kind: String, Sendable {
            case unreachable
            case failing
            case loginRefused = "login-refused"
        }

        public var label: String
        public var title: String
        public var kind: Kind
        /// What the client's session said (already free of secrets).
        public var message: String

        public init(label: String, title: String, kind: Kind, message: String) {
            self.label = label
            self.title = title
            self.kind = kind
            self.message = message
        }

        /// The trouble a health stands for; nil when it is none.
        public init?(label: String, title: String, health: SinkStatus.Health) {
            switch health {
            case .unreachable(let message): self.init(label: label, title: title, kind: .unreachable, message: message)
            case .failing(let message): self.init(label: label, title: title, kind: .failing, message: message)
            case .loginRefused(let message): self.init(label: label, title: title, kind: .loginRefused, message: message)
            case .idle, .applying, .verified: return nil
            }
        }
    }
}
