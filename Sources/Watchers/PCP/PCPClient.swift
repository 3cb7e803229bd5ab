import CLinux
import Domain
import Glibc
import Reactor

/// The PCP client in the loop: the shell around `PCPSession`. Its socket is made as NAT-PMP's
/// (`NATPMPClient.openSocket`: bound to the tunnel's own address, kept on the interface with
/// IP_UNICAST_IF, connected to the gateway's port 5351, which PCP shares), and its own address
/// (getsockname) is what each request names as the client's.
public final class PCPClient {
    public let name = "pcp.udp"
    public var onFailure: ((Int) -> Void)?
    /// The gateway does not speak PCP: the owner asks with NAT-PMP instead.
    public var onFallBack: ((String) -> Void)?

    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var runner: MachineRunner<PCPSession>!
    private var session: PCPSession { runner.machine }
    private var socket: Registration?
    private var target: (local: IPv4Address, gateway: IPv4Address, interface: Int32)?
    private var lastSocketError: String?

    public init(loop: EventLoop, settings: PCPSettings, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
        runner = MachineRunner(loop: loop, name: "pcp.timer", machine: PCPSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit {
        runner.stop()
        closeSocket()
    }

    public var port: Port? { session.port }
    public var gateway: IPv4Address? { session.gateway }
    public var externalAddress: IPv4Address? { session.externalAddress }
    public var requestsSent: Int { session.requestsSent }
    public var mappingsGranted: Int { session.mappingsGranted }
    public var leaseExpiry: Instant? { session.leaseExpiry }
    public var failureStreak: Int { session.failureStreak }
    public var lastProblem: String? { session.lastProblem }
    public var lastResult: PCP.ResultCode? { session.lastResult }
    public var fellBack: Bool { session.fellBack }

    public func tunnelChanged(_ state: TunnelTracker.State) {
        switch state {
        case .usable(let tunnel): runner.send(.tunnelUp(tunnel))
        case .awaitingRoute, .unusable: runner.send(.linkDown("\(state)"))
        }
    }

    public func prefer(_ port: Port) {
        runner.send(.preferredPort(port))
    }

    public func stop() {
        runner.stop()
        closeSocket()
    }

    private func perform(_ effect: PCPSession.Effect) {
        switch effect {
        case .openSocket(let local, let gateway, let interface):
            closeSocket()
            target = (local, gateway, interface)
            lastSocketError = nil
            ensureSocket()
        case .closeSocket:
            closeSocket()
            target = nil
        case .send(let bytes):
            loop.logger.trace(name, "→ \(Self.describe(request: bytes))")
            guard let socket = ensureSocket() else { return }
            do {
                _ = try socket.send(bytes)
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                runner.send(.refused)
            } catch {
                socketFailed("send to the gateway: \(error)")
            }
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

    @discardableResult
    private func ensureSocket() -> Socket? {
        if let socket { return Socket(socket.fd) }
        guard let target else { return nil }
        do {
            let fd = try NATPMPClient.openSocket(local: target.local, gateway: target.gateway, interface: target.interface)
            socket = try Registration(loop: loop, owning: fd, interest: .readable, name: name) { [unowned self] _ in self.drain() }
            lastSocketError = nil
            guard case .v4(let local, _)? = try Socket(fd).localAddress() else {
                throw PCP.DecodeError(message: "getsockname: the socket has no IPv4 address")
            }
            runner.send(.socketOpened(local: local))
            return Socket(fd)
        } catch {
            socketFailed("\(error)")
            return nil
        }
    }

    private func socketFailed(_ message: String) {
        closeSocket()
        if message != lastSocketError { loop.logger.warning(name, "\(message); trying again on a new socket") }
        lastSocketError = message
    }

    private func closeSocket() {
        socket?.cancel()
        socket = nil
    }

    private func drain() {
        guard let socketFD = socket?.fd else { return }
        var buffer = [UInt8](repeating: 0, count: PCP.maximumLength + 4)
        while true {
            do {
                guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try socketFD.read(into: $0) }) else { break }
                let datagram = Array(buffer[0..<count])
                loop.logger.trace(name, "← \(Self.describe(response: datagram))")
                runner.send(.datagramReceived(datagram))
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                runner.send(.refused)
                break
            } catch {
                loop.logger.debug(name, "recv: \(error)")
                break
            }
            if socket == nil { break }
        }
    }

    static func describe(request bytes: [UInt8]) -> String {
        guard bytes.count == 60 else { return "\(bytes.count)-byte request" }
        let protocolName = PCP.MappingProtocol(rawValue: bytes[36])?.description ?? "protocol \(bytes[36])"
        return "MAP \(protocolName): internal port \(UInt16(bytes[40]) << 8 | UInt16(bytes[41])), suggested \(UInt16(bytes[42]) << 8 | UInt16(bytes[43])), lifetime \(PCP.word(bytes, 4)) s, client \(PCP.ipv4(mapped: Array(bytes[8..<24]))?.description ?? "?")"
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
