import CLinux
import Domain
import Glibc
import Reactor

/// The PCP client in the loop: the shell around `PCPSession`, on a `GatewaySocket` as NAT-PMP's
/// (bound to the tunnel's own address, kept on the interface with IP_UNICAST_IF, connected to
/// the gateway's port 5351, which PCP shares); the socket's own address (getsockname) is what
/// each request names as the client's. `pcp6.udp` is the one over IPv6.
public final class PCPClient {
    public let name: String
    public var onFailure: ((Int) -> Void)?
    /// The gateway does not speak PCP: the owner asks with NAT-PMP instead.
    public var onFallBack: ((String) -> Void)?

    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var runner: MachineRunner<PCPSession>!
    private var session: PCPSession { runner.machine }
    private let socket: GatewaySocket

    /// `ipv6`: the client over IPv6 (`pathChanged`), else over IPv4 (`tunnelChanged`).
    public init(loop: EventLoop, settings: PCPSettings, ipv6: Bool = false, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
        name = ipv6 ? "pcp6.udp" : "pcp.udp"
        socket = GatewaySocket(loop: loop, name: name, receiveSize: PCP.maximumLength + 4)
        runner = MachineRunner(loop: loop, name: ipv6 ? "pcp6.timer" : "pcp.timer", machine: PCPSession(settings: settings),
                               deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        socket.onDatagram = { [unowned self] datagram in
            self.loop.logger.trace(self.name, "← \(Self.describe(response: datagram))")
            self.runner.send(.datagramReceived(datagram))
        }
        socket.onRefused = { [unowned self] in self.runner.send(.refused) }
        socket.onOpened = { [unowned self] local in self.runner.send(.socketOpened(local: local)) }
    }

    deinit {
        runner.stop()
        socket.close()
    }

    public var port: Port? { session.port }
    public var gateway: IPAddress? { session.gateway }
    public var externalAddress: IPAddress? { session.externalAddress }
    /// The way it asks on, while it has one.
    public var path: GatewayPath? { session.tunnel }
    public var requestsSent: Int { session.requestsSent }
    public var mappingsGranted: Int { session.mappingsGranted }
    public var leaseExpiry: Instant? { session.leaseExpiry }
    public var failureStreak: Int { session.failureStreak }
    public var lastProblem: String? { session.lastProblem }
    public var lastResult: PCP.ResultCode? { session.lastResult }
    public var fellBack: Bool { session.fellBack }

    public func tunnelChanged(_ state: TunnelTracker.State) {
        switch state {
        case .usable(let tunnel): runner.send(.tunnelUp(GatewayPath(tunnel)))
        case .awaitingRoute, .unusable: runner.send(.linkDown("\(state)"))
        }
    }

    /// The IPv6 way to the gateway, or none (`TunnelTracker.ipv6`).
    public func pathChanged(_ path: GatewayPath?) {
        runner.send(path.map { .tunnelUp($0) } ?? .linkDown("no IPv6 way to the gateway"))
    }

    public func prefer(_ port: Port) {
        runner.send(.preferredPort(port))
    }

    /// Tells the gateway to drop the mappings held now (lifetime 0), once: best effort, the
    /// lease ends anyway.
    public func deleteMappings() {
        let requests = session.deleteRequests()
        requests.forEach { loop.logger.trace(name, "→ \(Self.describe(request: $0))") }
        if requests.map(socket.sendIfOpen).contains(true) {
            loop.logger.info(name, "asked the gateway to delete the mappings")
        }
    }

    /// Stops; with `deleteMappings`, first tells the gateway to drop them.
    public func stop(deleteMappings: Bool) {
        if deleteMappings { self.deleteMappings() }
        runner.stop()
        socket.close()
    }

    private func perform(_ effect: PCPSession.Effect) {
        switch effect {
        case .openSocket(let local, let gateway, let interface):
            socket.open(local: local, gateway: gateway, interface: interface)
        case .closeSocket:
            socket.forget()
        case .send(let bytes):
            loop.logger.trace(name, "→ \(Self.describe(request: bytes))")
            socket.send(bytes)
        case .mapped(let port, let expiry, let reason):
            handler(PortObservation(source: .pcp, port: port, time: loop.now, expiry: expiry, reason: reason))
        case .unmapped(_, let reason):
            handler(PortObservation(source: .pcp, port: nil, time: loop.now, reason: reason))
        case .failed(let streak):
            onFailure?(streak)
        case .fallBack(let reason):
            onFallBack?(reason)
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    static func describe(request bytes: [UInt8]) -> String {
        guard bytes.count == 60 else { return "\(bytes.count)-byte request" }
        let protocolName = PCP.MappingProtocol(rawValue: bytes[36])?.description ?? "protocol \(bytes[36])"
        return "MAP \(protocolName): internal port \(UInt16(bytes[40]) << 8 | UInt16(bytes[41])), suggested \(UInt16(bytes[42]) << 8 | UInt16(bytes[43])), lifetime \(PCP.word(bytes, 4)) s, client \(PCP.address(Array(bytes[8..<24]))?.description ?? "?")"
    }

    static func describe(response bytes: [UInt8]) -> String {
        do {
            return try PCP.decode(bytes).description
        } catch {
            return "\(bytes.count) bytes: \(error)"
        }
    }
}

extension PCPSession: LoopStateMachine {}
