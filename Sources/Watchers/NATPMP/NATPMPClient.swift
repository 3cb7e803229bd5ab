import CLinux
import Domain
import Glibc
import Reactor

/// The NAT-PMP client in the loop: the shell around `NATPMPSession`, on a `GatewaySocket`
/// (bound to the tunnel's address, kept on the tunnel, connected to the gateway).
public final class NATPMPClient {
    public let name = "natpmp.udp"
    /// Called with `streak` consecutive failed cycles while the tunnel is up.
    public var onFailure: ((Int) -> Void)?
    /// The gateway said its public address (`publicAddress`).
    public var onPublicAddress: (() -> Void)?

    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var runner: MachineRunner<NATPMPSession>!
    private var session: NATPMPSession { runner.machine }
    private let socket: GatewaySocket

    public init(loop: EventLoop, settings: NATPMPSettings, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
        socket = GatewaySocket(loop: loop, name: name, receiveSize: 1100)
        runner = MachineRunner(loop: loop, name: "natpmp.timer", machine: NATPMPSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        socket.onDatagram = { [unowned self] datagram in
            self.loop.logger.trace(self.name, "← \(Self.describe(response: datagram))")
            self.handle(.datagramReceived(datagram))
        }
        socket.onRefused = { [unowned self] in self.handle(.refused) }
    }

    deinit {
        runner.stop()
        socket.close()
    }

    public var port: Port? { session.port }
    public var gateway: IPv4Address? { session.gateway }
    public var requestsSent: Int { session.requestsSent }
    public var mappingsGranted: Int { session.mappingsGranted }
    public var leaseExpiry: Instant? { session.leaseExpiry }
    public var publicAddress: IPv4Address? { session.publicAddress }
    public var failureStreak: Int { session.failureStreak }
    public var lastProblem: String? { session.lastProblem }
    public var settings: NATPMPSettings { session.settings }

    public func tunnelChanged(_ state: TunnelTracker.State) {
        switch state {
        case .usable(let tunnel): handle(.tunnelUp(tunnel))
        case .awaitingRoute, .unusable: handle(.linkDown("\(state)"))
        }
    }

    public func prefer(_ port: Port) {
        handle(.preferredPort(port))
    }

    /// Asks for the mappings again now, as a renewal does.
    public func remap() {
        handle(.remapNow)
    }

    /// The internal port an earlier run used (see `NATPMPSession.Input.previousInternalPort`).
    public func restore(internalPort: UInt16) {
        handle(.previousInternalPort(internalPort))
    }

    /// The internal port of the mappings, once chosen.
    public var internalPort: UInt16? { session.sessionInternalPort }

    /// Stops; with `deleteMappings`, first tells the gateway to drop them (lifetime 0), once.
    public func stop(deleteMappings: Bool) {
        if deleteMappings {
            // Best effort on the way out: the lease ends anyway.
            if session.deleteRequests().map(socket.sendIfOpen).contains(true) {
                loop.logger.info(name, "asked the gateway to delete the mappings")
            }
        }
        runner.stop()
        socket.close()
    }

    private func handle(_ input: NATPMPSession.Input) {
        runner.send(input)
    }

    private func perform(_ effect: NATPMPSession.Effect) {
        switch effect {
        case .openSocket(let local, let gateway, let interface):
            socket.open(local: .v4(local), gateway: .v4(gateway), interface: interface)
        case .closeSocket:
            socket.forget()
        case .send(let bytes):
            loop.logger.trace(name, "→ \(Self.describe(request: bytes))")
            socket.send(bytes)
        case .listen(let on):
            socket.listen(on)
        case .collectAnswers:
            socket.drain()
            runner.send(.answersCollected)
        case .mapped(let port, let expiry, let reason):
            handler(PortObservation(source: .natpmp, port: port, time: loop.now, expiry: expiry, reason: reason))
        case .unmapped(_, let reason):
            handler(PortObservation(source: .natpmp, port: nil, time: loop.now, reason: reason))
        case .publicAddress:
            onPublicAddress?()
        case .failed(let streak):
            onFailure?(streak)
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    static func describe(request bytes: [UInt8]) -> String {
        if bytes == NATPMP.externalAddressRequest() { return "external address" }
        guard bytes.count == 12 else { return "\(bytes.count)-byte request" }
        let protocolName = bytes[1] == 1 ? "UDP" : "TCP"
        return "map \(protocolName): internal port \(UInt16(bytes[4]) << 8 | UInt16(bytes[5])), suggested \(UInt16(bytes[6]) << 8 | UInt16(bytes[7])), lifetime \(NATPMP.word(bytes, 8)) s"
    }

    static func describe(response bytes: [UInt8]) -> String {
        do {
            return try NATPMP.decode(bytes).description
        } catch {
            return "\(bytes.count) bytes: \(error)"
        }
    }
}

extension NATPMPSession: LoopStateMachine {}
