import CLinux
import Domain
import Glibc
import Reactor

/// The NAT-PMP client in the loop: the shell around `NATPMPSession`. Its UDP socket is bound
/// to the tunnel's own address (so replies come back under policy routing, with no privilege),
/// kept on the tunnel interface (`IP_UNICAST_IF`: no request can leave through the LAN, even
/// while the routes change) and connected to the gateway (so only the gateway's datagrams are
/// read). It is made anew for every tunnel, and again before a try whenever the last `connect`
/// or send failed: a socket in that state is never used.
public final class NATPMPClient {
    public let name = "natpmp.udp"
    /// Called with `streak` consecutive failed cycles while the tunnel is up.
    public var onFailure: ((Int) -> Void)?

    private let loop: EventLoop
    private let handler: (PortObservation) -> Void
    private var runner: MachineRunner<NATPMPSession>!
    private var session: NATPMPSession { runner.machine }
    /// The socket, owned by its registration.
    private var socket: Registration?
    /// Where the socket must lead: set by the session's `.openSocket`.
    private var target: (local: IPv4Address, gateway: IPv4Address, interface: Int32)?
    private var lastSocketError: String?

    public init(loop: EventLoop, settings: NATPMPSettings, handler: @escaping (PortObservation) -> Void) {
        self.loop = loop
        self.handler = handler
        runner = MachineRunner(loop: loop, name: "natpmp.timer", machine: NATPMPSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit {
        runner.stop()
        closeSocket()
    }

    public var port: Port? { session.port }
    public var gateway: IPv4Address? { session.gateway }
    public var requestsSent: Int { session.requestsSent }
    public var mappingsGranted: Int { session.mappingsGranted }
    public var leaseExpiry: Instant? { session.leaseExpiry }
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

    /// The internal port an earlier run used (see `NATPMPSession.Input.previousInternalPort`).
    public func restore(internalPort: UInt16) {
        handle(.previousInternalPort(internalPort))
    }

    /// The internal port of the mappings, once chosen.
    public var internalPort: UInt16? { session.sessionInternalPort }

    /// Stops; with `deleteMappings`, first tells the gateway to drop them (lifetime 0), once.
    public func stop(deleteMappings: Bool) {
        if deleteMappings, let socket {
            for request in session.deleteRequests() {
                _ = try? Socket(socket.fd).send(request)  // best effort on the way out: the lease ends anyway
            }
            loop.logger.info(name, "asked the gateway to delete the mappings")
        }
        runner.stop()
        closeSocket()
    }

    private func handle(_ input: NATPMPSession.Input) {
        runner.send(input)
    }

    private func perform(_ effect: NATPMPSession.Effect) {
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
                // The way to the gateway went away under us: the retransmission tries again,
                // on a socket made anew.
                socketFailed("send to the gateway: \(error)")
            }
        case .listen(let on):
            guard let socket else { return }
            do {
                try socket.setInterest(on ? .readable : [])
            } catch {
                socketFailed("\(error)")
            }
        case .collectAnswers:
            drain()
            runner.send(.answersCollected)
        case .mapped(let port, let expiry, let reason):
            handler(PortObservation(source: .natpmp, port: port, time: loop.now, expiry: expiry, reason: reason))
        case .unmapped(_, let reason):
            handler(PortObservation(source: .natpmp, port: nil, time: loop.now, reason: reason))
        case .failed(let streak):
            onFailure?(streak)
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        }
    }

    /// The socket to send on: the open one, or one made now for the target.
    @discardableResult
    private func ensureSocket() -> Socket? {
        if let socket { return Socket(socket.fd) }
        guard let target else { return nil }
        do {
            let fd = try Self.openSocket(local: target.local, gateway: target.gateway, interface: target.interface)
            socket = try Registration(loop: loop, owning: fd, interest: .readable, name: name) { [unowned self] _ in self.drain() }
            lastSocketError = nil
            return Socket(fd)
        } catch {
            socketFailed("\(error)")
            return nil
        }
    }

    /// Said once per distinct error, not once per try; the socket is dropped.
    private func socketFailed(_ message: String) {
        closeSocket()
        if message != lastSocketError { loop.logger.warning(name, "\(message); trying again on a new socket") }
        lastSocketError = message
    }

    /// A UDP socket bound to `local`, its unicast packets kept on `interface`, connected to
    /// `gateway`:5351.
    public static func openSocket(local: IPv4Address, gateway: IPv4Address, interface: Int32) throws -> FileDescriptor {
        try Socket(family: AF_INET, kind: .datagram, name: "socket(AF_INET, SOCK_DGRAM)") { socket in
            // IP_UNICAST_IF takes the index in network byte order; it needs no privilege.
            try socket.setOption(Int32(IPPROTO_IP), IP_UNICAST_IF, Int32(bitPattern: UInt32(bitPattern: interface).bigEndian),
                                 name: "IP_UNICAST_IF")
            try socket.bind(to: SocketAddress.v4(local, port: 0), name: "bind \(local)")
            try socket.connect(to: SocketAddress.v4(gateway, port: NATPMP.serverPort), name: "connect \(gateway):\(NATPMP.serverPort)")
        }.fd
    }

    private func closeSocket() {
        socket?.cancel()
        socket = nil
    }

    private func drain() {
        guard let socketFD = socket?.fd else { return }
        var buffer = [UInt8](repeating: 0, count: 1100)
        while true {
            do {
                guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try socketFD.read(into: $0) }) else { break }
                let datagram = Array(buffer[0..<count])
                loop.logger.trace(name, "← \(Self.describe(response: datagram))")
                handle(.datagramReceived(datagram))
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                handle(.refused)
                break
            } catch {
                loop.logger.debug(name, "recv: \(error)")
                break
            }
            if socket == nil { break }
        }
    }

    static func describe(request bytes: [UInt8]) -> String {
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
