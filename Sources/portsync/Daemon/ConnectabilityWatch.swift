import Coordination
import Domain
import Reactor
import Sinks
import Watchers

/// The daemon's side of the connectability verdict: it runs `ConnectabilityMonitor`, gathers
/// the facts it asks for (`gather`, from the daemon's snapshot and the kernel's socket table),
/// carries out its heals, and keeps the last verdict for `status`, `/healthz`, `/metrics` and
/// the history.
final class ConnectabilityWatch {
    static let name = "connectability"

    /// The facts now; nil while a change is on its way to the clients.
    var gather: () -> Connectability.Facts? = { nil }
    /// Re-open the listener of the client with this label.
    var reopen: (String) -> Void = { _ in }
    /// A new verdict or evidence, and what was done about it (the record is ready to keep).
    var onChange: () -> Void = {}
    /// A verdict of another name or cause, or something done about one: for the history.
    var onRecord: (ConnectabilityRecord, _ verdictChanged: Bool) -> Void = { _, _ in }
    /// A heal did not mend `cause`: the recovery command's turn.
    var onHealFailed: (Connectability.Cause) -> Void = { _ in }
    /// Ask the source for its mapping again, now.
    var remap: () -> Void = {}

    private let loop: EventLoop
    private var runner: MachineRunner<ConnectabilityMonitor>!
    private let outside: OutsideCheck?
    private(set) var record: ConnectabilityRecord?

    init(loop: EventLoop, settings: ConnectabilityMonitor.Settings, outside: OutsideCheck? = nil) {
        self.loop = loop
        self.outside = outside
        runner = MachineRunner(loop: loop, name: "\(Self.name).timer", machine: ConnectabilityMonitor(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        outside?.onAnswer = { [unowned self] in self.runner.send(.factsChanged) }
    }

    deinit {
        runner.stop()
        outside?.close()
    }

    /// Something changed: look now.
    func look() {
        runner.send(.look)
    }

    func stop() {
        runner.stop()
        outside?.close()
    }

    private func perform(_ effect: ConnectabilityMonitor.Effect) {
        switch effect {
        case .gather:
            var facts = gather()
            if let known = facts, let port = known.forwarded, let outside {
                facts?.outside = outside.answer(port: port, tunnel: known.tunnelAddress, publicAddress: known.publicAddress)
            }
            if let facts { loop.logger.trace(Self.name, "facts: \(facts.clients.map { "\($0.label) \($0.listener), incoming \($0.incoming.map { "\($0)" } ?? "unseen")" }.joined(separator: ", "))") }
            runner.send(.gathered(facts))
        case .judged(let judgement, let verdictChanged):
            let record = ConnectabilityRecord(judgement, checked: WallClock.now)
            self.record = record
            if verdictChanged {
                let level: LogLevel = switch judgement.verdict {
                case .connectable: .notice
                case .notConnectable: .warning
                case .unknown: .info
                }
                loop.logger.log(level, Self.name, record.summary)
                onRecord(record, true)
            }
            onChange()
        case .heal(let client, let cause):
            loop.logger.warning(Self.name, "\(cause): re-opening \(client)'s listener (its port moved away and back)")
            reopen(client)
            done("re-opened \(client)'s listener")
        case .remap(let cause):
            loop.logger.warning(Self.name, "\(cause): asking the source for its mapping again")
            outside?.forget()
            remap()
            done("asked the source for its mapping again")
        case .healFailed(let cause):
            loop.logger.error(Self.name, "\(cause), even after \(cause.wantsRemap ? "mapping it again" : "re-opening the listener")")
            onHealFailed(cause)
        }
    }
}

extension ConnectabilityWatch {
    /// What was done about the verdict in force: in its record, for the state and the history.
    private func done(_ action: String) {
        guard var record else { return }
        record.action = action
        self.record = record
        onRecord(record, false)
        onChange()
    }
}

/// Where the facts about sockets come from: the kernel's socket table, or a test's.
struct SocketTable {
    var listeners: (UInt16) throws -> [ListeningSockets.Listener] = { try ListeningSockets.query(port: $0) }
    var connections: (UInt16) throws -> [ListeningSockets.Listener] = { try ListeningSockets.connections(port: $0) }
    var interfaceExists: (UInt32) -> Bool = ListeningSockets.interfaceExists

    /// One client's listener on `port`, as seen from the tunnel (`tunnel`: its address and
    /// interface, when the source runs on one).
    func listener(on port: Port, tunnel: Tunnel?) -> Connectability.ClientFacts.Listener {
        let all: [ListeningSockets.Listener]
        do {
            all = try listeners(port.value)
        } catch {
            return .unseen("cannot read the socket table: \(error)")
        }
        guard let first = all.first else { return .absent }
        let live = all.filter { $0.interfaceIndex == 0 || interfaceExists($0.interfaceIndex) }
        guard !live.isEmpty else { return .deaf(first.description) }
        let reachable = live.filter { Self.takes($0, tunnel) }
        if reachable.isEmpty {
            let named = live.map { $0.v6Only ? "\($0.description) (IPv6 only)" : $0.description }
            return tunnel != nil && live.allSatisfy({ $0.address.hasPrefix("[") }) ? .onlyIPv6(named) : .elsewhere(named)
        }
        return .reachable(reachable.map(\.description))
    }

    /// The peers connected to `port` through the tunnel (from outside: not from this machine).
    /// A connection bound to another interface than the tunnel's came through an earlier one
    /// (recreated since: a reconnect), and says nothing of this one.
    func incoming(on port: Port, tunnel: Tunnel?) -> [String]? {
        guard let all = try? connections(port.value) else { return nil }
        return all.filter { connection in
            guard let peer = connection.peer, !Self.isLoopback(peer) else { return false }
            guard let tunnel else { return !Self.isLoopback(connection.address) }
            return connection.address == "\(tunnel.address)" && (connection.interfaceIndex == 0 || Int32(connection.interfaceIndex) == tunnel.index)
        }.compactMap(\.peer)
    }

    /// A listener takes connections to the tunnel's address: a wildcard that takes IPv4, or
    /// that address, and not bound to another interface. With no tunnel: any address but loopback.
    static func takes(_ listener: ListeningSockets.Listener, _ tunnel: Tunnel?) -> Bool {
        guard let tunnel else { return !isLoopback(listener.address) }
        if listener.interfaceIndex != 0 && Int32(listener.interfaceIndex) != tunnel.index { return false }
        return listener.address == "0.0.0.0" || (listener.address == "[::]" && !listener.v6Only) || listener.address == "\(tunnel.address)"
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "[::1]" || address.hasPrefix("[::ffff:127.")
    }
}
