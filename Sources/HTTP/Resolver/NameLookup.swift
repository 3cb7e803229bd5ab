import Reactor

/// Looking one name up over UDP, the pure machine: A and AAAA asked together of one name server
/// at a time; no answer in time, a refusal or a server failure moves on to the next (round
/// robin, `attempts` rounds). The candidates (the name with resolv.conf's search domains) are
/// tried in turn: "no such name" or no address moves on to the next. IPv4 addresses come first.
/// An answer counts only when its ID is a pending query's and its question is that query's
/// (name, type and class); every query gets an ID of its own, drawn at random. A truncated
/// answer (TC) has its query asked again of the same server over TCP, once, with a fresh
/// timeout.
struct NameLookup: LoopStateMachine {
    enum Input {
        case start
        /// A message from the server: a datagram, or one read off the TCP stream.
        case answerReceived([UInt8])
        /// The server's port is closed (ICMP port unreachable on the connected socket).
        case refused
        /// The query could not be sent, or the socket reported another error (no route, a
        /// firewall's drop): what the system said.
        case sendFailed(String)
        /// The TCP connection to the server failed or closed.
        case streamFailed
        case deadlineReached
    }

    enum Effect: Equatable {
        /// Open a socket to `server` (closing the previous one) and send each query.
        case ask(server: SocketAddress, queries: [[UInt8]])
        /// Send `query` to `server` over TCP (one connection for the round, opened at the first).
        case askOverTCP(server: SocketAddress, query: [UInt8])
        case finished(Result<[SocketAddress], Failure>)
    }

    struct Failure: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// The names to try, in order (`NameServers.candidates(for:)`), and the one being asked.
    let names: [String]
    private var candidate = 0
    var name: String { names[candidate] }
    let port: UInt16
    let nameServers: ResolverConfiguration.NameServers
    /// Draws each query's ID: the shell's draws come from the kernel's random source.
    private let drawID: () -> UInt16
    /// Servers asked for the current name.
    private var tries = 0
    /// Names the servers said do not exist.
    private var unknown: [String] = []
    private var pending: [UInt16: DNSMessage.RecordType] = [:]
    /// The pending queries asked again over TCP.
    private var askedOverTCP: Set<UInt16> = []
    private var found: [DNSMessage.RecordType: [SocketAddress]] = [:]
    /// The server asked last, and what went wrong with the last one that failed.
    private var server: SocketAddress?
    private var lastProblem: String?
    private var roundFailed = false
    private(set) var nextDeadline: Instant?
    private(set) var isFinished = false

    init(names: [String], port: UInt16, nameServers: ResolverConfiguration.NameServers, drawID: @escaping () -> UInt16) {
        precondition(!names.isEmpty, "a lookup needs a name")
        self.names = names
        self.port = port
        self.nameServers = nameServers
        self.drawID = drawID
    }

    mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        guard !isFinished else { return [] }
        switch input {
        case .start:
            return askNext(now)
        case .refused:
            lastProblem = "\(server?.hostText ?? "the name server") refused (nothing listens on its port 53)"
            return askNext(now)
        case .sendFailed(let reason):
            lastProblem = "\(server?.hostText ?? "the name server") could not be asked: \(reason)"
            return askNext(now)
        case .deadlineReached:
            guard let nextDeadline, now >= nextDeadline else { return [] }
            lastProblem = nil
            return askNext(now)
        case .streamFailed:
            guard askedOverTCP.contains(where: { pending[$0] != nil }) else { return [] }  // its answers had come
            lastProblem = "\(server?.hostText ?? "the name server") truncated its answer, and TCP to it failed"
            return askNext(now)
        case .answerReceived(let bytes):
            guard bytes.count >= 2, let type = pending[UInt16(bytes[0]) << 8 | UInt16(bytes[1])],
                  let answer = try? DNSMessage.parse(bytes, name: name, type: type) else { return [] }  // not ours: ignored
            if answer.truncated, !askedOverTCP.contains(answer.id), let server,
               let query = DNSMessage.query(id: answer.id, name: name, type: type) {
                askedOverTCP.insert(answer.id)
                nextDeadline = now + nameServers.timeout
                return [.askOverTCP(server: server, query: query)]
            }
            pending[answer.id] = nil
            switch answer.responseCode {
            case 0:
                found[type] = answer.addresses.compactMap { Self.address($0, port: port) }
            case 3:
                unknown.append(name)
                return nextName(now) ?? finish(.failure(Failure(description: "no such host name (\(server?.hostText ?? "the name server") answered NXDOMAIN"
                    + (names.count == 1 ? ")" : " for \(unknown.joined(separator: ", ")))"))))
            default:
                // Some servers refuse one type and answer the other: only both failing moves on.
                let code = [2: "SERVFAIL", 5: "REFUSED"][answer.responseCode] ?? "response code \(answer.responseCode)"
                lastProblem = "\(server?.hostText ?? "the name server") answered \(code)"
                roundFailed = true
            }
            guard pending.isEmpty else { return [] }
            let all = (found[.a] ?? []) + (found[.aaaa] ?? [])
            if !all.isEmpty { return finish(.success(all)) }
            if roundFailed { return askNext(now) }
            let failure = Failure(description: "\(name) has no IPv4 or IPv6 address (none in \(server?.hostText ?? "the name server")'s answer)")
            return nextName(now) ?? finish(.failure(failure))
        }
    }

    /// The next candidate name, from the first server again; nil when none is left.
    private mutating func nextName(_ now: Instant) -> [Effect]? {
        guard candidate + 1 < names.count else { return nil }
        candidate += 1
        tries = 0
        lastProblem = nil
        return askNext(now)
    }

    private mutating func askNext(_ now: Instant) -> [Effect] {
        let servers = nameServers.servers
        guard tries < servers.count * nameServers.attempts else {
            let list = servers.map(\.hostText).joined(separator: ", ")
            return finish(.failure(Failure(description: lastProblem ?? "no answer in time from the name server\(servers.count == 1 ? "" : "s") \(list)")))
        }
        let server = servers[tries % servers.count]
        self.server = server
        let first = drawID()
        var second = drawID()
        while second == first { second = drawID() }
        let ids = (first, second)
        tries += 1
        guard let queryA = DNSMessage.query(id: ids.0, name: name, type: .a),
              let queryAAAA = DNSMessage.query(id: ids.1, name: name, type: .aaaa) else {
            return finish(.failure(Failure(description: "\"\(name)\" is not a valid host name")))
        }
        pending = [ids.0: .a, ids.1: .aaaa]
        askedOverTCP = []
        found = [:]
        roundFailed = false
        nextDeadline = now + nameServers.timeout
        return [.ask(server: server, queries: [queryA, queryAAAA])]
    }

    private mutating func finish(_ result: Result<[SocketAddress], Failure>) -> [Effect] {
        isFinished = true
        nextDeadline = nil
        pending = [:]
        return [.finished(result)]
    }

    static func address(_ bytes: [UInt8], port: UInt16) -> SocketAddress? {
        switch bytes.count {
        case 4: .v4(IPv4Address(bytes[0], bytes[1], bytes[2], bytes[3]), port: port)
        case 16: .v6(bytes: bytes, port: port)
        default: nil
        }
    }
}
