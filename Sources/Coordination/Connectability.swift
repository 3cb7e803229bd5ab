import Domain
import Reactor

/// Whether peers can reach the clients on their ports: a verdict from what can be seen here,
/// the cheapest evidence first: a forwarded port, each client's listener on the tunnel's
/// address (the kernel's socket table), incoming connections that came through the tunnel,
/// what the client itself reports, and the address the port is forwarded on against the one
/// traffic leaves from. Pure: the daemon gathers the facts, this judges them.
public enum Connectability {
    /// What one client looks like from here, on the port it should listen on.
    public struct ClientFacts: Equatable, Sendable {
        public enum Listener: Equatable, Sendable {
            /// Listeners that take connections to the tunnel's address: a wildcard, or that address.
            case reachable([String])
            case absent
            /// Only a socket bound to an interface that is gone: listed, but deaf.
            case deaf(String)
            /// Only on IPv4 addresses that are not the tunnel's (loopback, a LAN address): the
            /// client is set to bind there.
            case elsewhere([String])
            /// Only IPv6 sockets that take no IPv4, on a tunnel of IPv4: the IPv4 listener did
            /// not open (its bind failed: the port was taken at the time).
            case onlyIPv6([String])
            /// Cannot be seen from here (a client on another machine, an unreadable table): why.
            case unseen(String)
        }

        public typealias Report = ConnectionStatus

        public var label: String
        /// "qBittorrent v4.5.2"
        public var title: String
        public var port: Port
        public var listener: Listener
        /// The remote addresses of the connections that came to the port through the tunnel,
        /// open or closed within the last minute (the kernel keeps them that long), nil when
        /// they cannot be seen.
        public var incoming: [String]?
        public var report: Report?
        /// The address the client says its traffic leaves from (qBittorrent 5.1+'s
        /// `last_external_address_v4`), when it says one.
        public var leavesFrom: IPv4Address?
        /// portsync can make the client re-open its listener (qBittorrent: its port moved away
        /// and back).
        public var canReopen: Bool

        public init(label: String, title: String, port: Port, listener: Listener, incoming: [String]? = nil,
                    report: Report? = nil, leavesFrom: IPv4Address? = nil, canReopen: Bool = false) {
            self.label = label
            self.title = title
            self.port = port
            self.listener = listener
            self.incoming = incoming
            self.report = report
            self.leavesFrom = leavesFrom
            self.canReopen = canReopen
        }
    }

    /// Everything known at one moment.
    public struct Facts: Equatable, Sendable {
        /// The port the source forwards and who forwards it ("NAT-PMP"); nil with `problem`.
        public var forwarded: Port?
        public var source: String?
        /// Why there is no forwarded port, in words.
        public var problem: String?
        /// The address the port is forwarded on, when the gateway says it.
        public var publicAddress: IPv4Address?
        /// The tunnel's own address, when the source runs on a tunnel.
        public var tunnelAddress: IPv4Address?
        public var clients: [ClientFacts]
        /// What the configured outside check answered for `forwarded`, when it was asked.
        public var outside: Outside?
        /// The WireGuard tunnel's last handshake, where it can be read.
        public var handshake: Handshake?

        public init(forwarded: Port?, source: String?, problem: String? = nil, publicAddress: IPv4Address? = nil,
                    tunnelAddress: IPv4Address? = nil, clients: [ClientFacts], outside: Outside? = nil) {
            self.forwarded = forwarded
            self.source = source
            self.problem = problem
            self.publicAddress = publicAddress
            self.tunnelAddress = tunnelAddress
            self.clients = clients
            self.outside = outside
        }
    }

    /// The newest handshake of the tunnel's WireGuard peers.
    public enum Handshake: Equatable, Sendable {
        case ago(seconds: Int64)
        case never
        /// Why it cannot be read (a user service lacks CAP_NET_ADMIN).
        case unreadable(String)
    }

    /// WireGuard renews its session every 2 minutes while packets flow (and portsync's own
    /// renewals are packets): a peer silent for longer than `REJECT_AFTER_TIME` is gone.
    public static let handshakeLimit: Int64 = 180

    /// The answer of `[connectability] check_url`, a third party that dials the port from outside.
    public enum Outside: Equatable, Sendable, CustomStringConvertible {
        case open
        case closed
        /// Asked; no answer yet.
        case asking
        /// No answer, or one that says neither: why.
        case failed(String)

        public var description: String {
            switch self {
            case .open: "open"
            case .closed: "closed"
            case .asking: "asking"
            case .failed(let why): "no answer (\(why))"
            }
        }
    }

    /// Why peers cannot connect, or why that is not known.
    public enum Cause: Equatable, Hashable, Sendable, CustomStringConvertible {
        case noForwardedPort(String)
        case notListening(label: String, port: Port)
        /// Nothing listens yet, within the time a client takes to open its listener after it
        /// takes a port (qBittorrent answers the write before libtorrent opens its sockets).
        case listenerOpening(label: String, port: Port)
        case deafListener(label: String, port: Port, listener: String)
        case listeningElsewhere(label: String, port: Port, on: [String], tunnel: IPv4Address?)
        case clientDisconnected(label: String)
        case addressMismatch(forwardedOn: IPv4Address, leavesFrom: IPv4Address)
        /// The outside check found the port closed while everything here looks right: the
        /// mapping may be gone at the gateway.
        case closedFromOutside(port: Port)
        /// The WireGuard peer has not completed a handshake for this long: the tunnel is dead.
        case tunnelSilent(seconds: Int64)
        /// Everything looks right, but no peer has connected yet.
        case noIncomingYet
        /// Nothing here can see whether peers connect: why.
        case cannotSee(String)

        /// A stable name for JSON and metrics: "not-listening".
        public var code: String {
            switch self {
            case .noForwardedPort: "no-forwarded-port"
            case .notListening: "not-listening"
            case .listenerOpening: "listener-opening"
            case .deafListener: "deaf-listener"
            case .listeningElsewhere: "listening-elsewhere"
            case .clientDisconnected: "client-disconnected"
            case .addressMismatch: "address-mismatch"
            case .closedFromOutside: "closed-from-outside"
            case .tunnelSilent: "tunnel-silent"
            case .noIncomingYet: "no-incoming-yet"
            case .cannotSee: "cannot-see"
            }
        }

        /// The client whose listener re-opened on its port would mend this: a listener that did
        /// not open. (A deaf one is its session's to mend, at the interface change that makes it.)
        public var healableClient: String? {
            switch self {
            case .notListening(let label, _): label
            case .noForwardedPort, .listenerOpening, .deafListener, .listeningElsewhere, .clientDisconnected, .addressMismatch,
                 .closedFromOutside, .tunnelSilent, .noIncomingYet, .cannotSee: nil
            }
        }

        /// Asking the source for its mapping again would mend this (a silent tunnel: packets
        /// through it make WireGuard try a handshake).
        public var wantsRemap: Bool {
            switch self {
            case .closedFromOutside, .tunnelSilent: true
            default: false
            }
        }

        public var description: String {
            switch self {
            case .noForwardedPort(let why): "no forwarded port: \(why)"
            case .notListening(let label, let port): "\(label) does not listen on port \(port)"
            case .listenerOpening(let label, let port): "\(label) took port \(port) and is opening its listener"
            case .deafListener(let label, let port, let listener):
                "\(label)'s only listener on port \(port) is on \(listener), an interface that is gone"
            case .listeningElsewhere(let label, let port, let addresses, let tunnel):
                "\(label) listens on port \(port) only on \(addresses.joined(separator: ", "))\(tunnel.map { ", not on the tunnel's \($0)" } ?? ""): check the client's network interface and the address it binds to"
            case .clientDisconnected(let label): "\(label) says it is not listening (disconnected)"
            case .addressMismatch(let forwardedOn, let leavesFrom):
                "this server forwards on \(forwardedOn) but your traffic leaves from \(leavesFrom): choose another server"
            case .closedFromOutside(let port): "the outside check found port \(port) closed"
            case .tunnelSilent(let seconds): "the WireGuard peer has not answered a handshake for \(seconds) s: the tunnel is down"
            case .noIncomingYet: "everything looks right, but no peer has connected yet"
            case .cannotSee(let why): why
            }
        }
    }

    public enum Verdict: Equatable, Sendable, CustomStringConvertible {
        case connectable
        case notConnectable(Cause)
        case unknown(Cause)

        /// The verdict without its cause.
        public enum Kind: String, CaseIterable, Sendable {
            case connectable
            case notConnectable = "not connectable"
            case unknown
        }

        public var kind: Kind {
            switch self {
            case .connectable: .connectable
            case .notConnectable: .notConnectable
            case .unknown: .unknown
            }
        }

        /// "connectable", "not connectable", "unknown": for JSON, metrics and `status`.
        public var name: String { kind.rawValue }

        public var cause: Cause? {
            switch self {
            case .connectable: nil
            case .notConnectable(let cause), .unknown(let cause): cause
            }
        }

        public var description: String { cause.map { "\(name) (\($0))" } ?? name }
    }

    /// One thing looked at, and what it showed: `ok` true for good, false for bad, nil for
    /// neither (nothing to see, or not yet).
    public struct Evidence: Equatable, Sendable {
        /// What was looked at: "forwarded", "listener", "incoming", "client", "address".
        public var kind: String
        public var ok: Bool?
        public var text: String
        /// What it found wrong, when it did (not shown: for the monitor).
        public var cause: Cause?

        public init(kind: String, ok: Bool?, text: String, cause: Cause? = nil) {
            self.kind = kind
            self.ok = ok
            self.text = text
            self.cause = cause
        }
    }

    public struct Judgement: Equatable, Sendable {
        public var verdict: Verdict
        public var evidence: [Evidence]
        /// Everything found wrong, in the order found: the verdict names the first; a heal
        /// may mend others (another client's listener).
        public var causes: [Cause]

        public init(verdict: Verdict, evidence: [Evidence], causes: [Cause] = []) {
            self.verdict = verdict
            self.evidence = evidence
            self.causes = causes
        }
    }

    /// The first thing wrong decides "not connectable"; proof of a peer having connected (to
    /// every client) decides "connectable"; anything else is "unknown", with why.
    public static func judge(_ facts: Facts) -> Judgement {
        var evidence: [Evidence] = []
        var causes: [Cause] = []
        func fail(_ cause: Cause) { if !causes.contains(cause) { causes.append(cause) } }

        guard let port = facts.forwarded else {
            let why = facts.problem ?? "the source has none"
            evidence.append(Evidence(kind: "forwarded", ok: false, text: "no forwarded port: \(why)"))
            return Judgement(verdict: .notConnectable(.noForwardedPort(why)), evidence: evidence, causes: [.noForwardedPort(why)])
        }
        let on = facts.publicAddress.map { " on \($0)" } ?? ""
        evidence.append(Evidence(kind: "forwarded", ok: true, text: "port \(port) forwarded by \(facts.source ?? "the source")\(on)"))

        switch facts.handshake {
        case .ago(let seconds)? where seconds <= handshakeLimit:
            evidence.append(Evidence(kind: "tunnel", ok: true, text: "the WireGuard peer's last handshake was \(seconds) s ago"))
        case .ago(let seconds)?:
            evidence.append(Evidence(kind: "tunnel", ok: false, text: "no WireGuard handshake for \(seconds) s"))
            fail(.tunnelSilent(seconds: seconds))
        case .never?:
            evidence.append(Evidence(kind: "tunnel", ok: nil, text: "the WireGuard peer has had no handshake yet"))
        case .unreadable(let why)?:
            evidence.append(Evidence(kind: "tunnel", ok: nil, text: "the WireGuard handshake cannot be read: \(why)"))
        case nil:
            break
        }

        var proven = !facts.clients.isEmpty
        var seen = false
        for client in facts.clients {
            let name = client.label
            switch client.listener {
            case .reachable(let listeners):
                seen = true
                evidence.append(Evidence(kind: "listener", ok: true, text: "\(name) listens on \(listeners.map { "\($0):\(client.port)" }.joined(separator: ", "))"))
            case .absent:
                seen = true
                let cause = Cause.notListening(label: name, port: client.port)
                evidence.append(Evidence(kind: "listener", ok: false, text: "nothing listens on port \(client.port)", cause: cause))
                fail(cause)
            case .deaf(let listener):
                seen = true
                evidence.append(Evidence(kind: "listener", ok: false, text: "the only listener on port \(client.port) is on \(listener), an interface that is gone"))
                fail(.deafListener(label: name, port: client.port, listener: listener))
            case .onlyIPv6(let sockets):
                seen = true
                let cause = Cause.notListening(label: name, port: client.port)
                evidence.append(Evidence(kind: "listener", ok: false, text: "nothing listens on port \(client.port) over IPv4 (only on \(sockets.joined(separator: ", ")))",
                                         cause: cause))
                fail(cause)
            case .elsewhere(let addresses):
                seen = true
                let tunnel = facts.tunnelAddress.map { ", not on the tunnel's \($0)" } ?? ""
                evidence.append(Evidence(kind: "listener", ok: false, text: "\(name) listens on port \(client.port) only on \(addresses.joined(separator: ", "))\(tunnel)"))
                fail(.listeningElsewhere(label: name, port: client.port, on: addresses, tunnel: facts.tunnelAddress))
            case .unseen(let why):
                evidence.append(Evidence(kind: "listener", ok: nil, text: "\(name)'s listener cannot be seen: \(why)"))
            }
            var connected = false
            if let incoming = client.incoming {
                seen = true
                if let first = incoming.first {
                    connected = true
                    let others = incoming.count > 1 ? " and \(incoming.count - 1) more" : ""
                    evidence.append(Evidence(kind: "incoming", ok: true, text: "a peer (\(first)\(others)) reached \(name) on port \(client.port) through the tunnel"))
                } else {
                    evidence.append(Evidence(kind: "incoming", ok: nil, text: "no peer reached port \(client.port) in the last minute"))
                }
            }
            if let report = client.report {
                seen = true
                switch report {
                case .connected:
                    connected = true
                    evidence.append(Evidence(kind: "client", ok: true, text: "\(client.title) says connected: an incoming connection arrived"))
                case .firewalled:
                    evidence.append(Evidence(kind: "client", ok: nil, text: "\(client.title) says firewalled: no incoming connection yet"))
                case .disconnected:
                    if case .reachable = client.listener {
                        // The socket table is the better witness: libtorrent says so while it
                        // re-opens its sockets.
                        evidence.append(Evidence(kind: "client", ok: nil, text: "\(client.title) says disconnected, yet its listener is there"))
                    } else {
                        evidence.append(Evidence(kind: "client", ok: false, text: "\(client.title) says disconnected: it is not listening"))
                        fail(.clientDisconnected(label: name))
                    }
                }
            }
            if let leaves = client.leavesFrom, let forwardedOn = facts.publicAddress {
                if leaves == forwardedOn {
                    evidence.append(Evidence(kind: "address", ok: true, text: "traffic leaves from \(leaves), the address the port is forwarded on"))
                } else {
                    evidence.append(Evidence(kind: "address", ok: false, text: "the port is forwarded on \(forwardedOn) but \(name)'s traffic leaves from \(leaves)"))
                    fail(.addressMismatch(forwardedOn: forwardedOn, leavesFrom: leaves))
                }
            }
            if !connected { proven = false }
        }
        switch facts.outside {
        case .open?:
            evidence.append(Evidence(kind: "outside", ok: true, text: "the outside check reached port \(port): open"))
            proven = true
        case .closed?:
            evidence.append(Evidence(kind: "outside", ok: false, text: "the outside check found port \(port) closed"))
            fail(.closedFromOutside(port: port))
        case .failed(let why)?:
            evidence.append(Evidence(kind: "outside", ok: nil, text: "the outside check did not say: \(why)"))
        case .asking?:
            evidence.append(Evidence(kind: "outside", ok: nil, text: "the outside check is being asked about port \(port)"))
        case nil:
            break
        }
        let verdict: Verdict
        if let wrong = causes.first {
            verdict = .notConnectable(wrong)
        } else if proven {
            verdict = .connectable
        } else if seen {
            verdict = .unknown(.noIncomingYet)
        } else {
            verdict = .unknown(.cannotSee(facts.clients.isEmpty
                ? "no client to look at"
                : "the clients are not on this machine and report nothing of their connections"))
        }
        return Judgement(verdict: verdict, evidence: evidence, causes: causes)
    }
}
