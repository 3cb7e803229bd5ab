import CLinux
import Domain
import Glibc
import Reactor

/// The UDP socket of a gateway protocol that listens on port 5351 (NAT-PMP, PCP), in the loop.
/// It is bound to the tunnel's own address (so replies come back under policy routing, with no
/// privilege), kept on the tunnel interface (`IP_UNICAST_IF`, `IPV6_UNICAST_IF`: no request
/// can leave through the LAN, even while the routes change) and connected to the gateway (so
/// only the gateway's datagrams are read); an IPv6 link-local address gets the interface as
/// its scope. It is made anew for every tunnel, and again before a send whenever the
/// last `connect` or send failed: a socket in that state is never used. A failure is said once
/// per distinct error, not once per try.
final class GatewaySocket {
    /// Each datagram from the gateway, then `onRefused` when it answers "port unreachable".
    var onDatagram: ([UInt8]) -> Void = { _ in }
    var onRefused: () -> Void = {}
    /// A socket was made: its own address (what PCP names as the client's).
    var onOpened: (IPAddress) -> Void = { _ in }

    private let loop: EventLoop
    private let name: String
    private let receiveSize: Int
    /// Owned by its registration.
    private var socket: Registration?
    private var target: (local: IPAddress, gateway: IPAddress, interface: Int32)?
    private var lastError: String?

    init(loop: EventLoop, name: String, receiveSize: Int) {
        self.loop = loop
        self.name = name
        self.receiveSize = receiveSize
    }

    deinit { close() }

    /// Where it must lead from now on; the socket is made at once.
    func open(local: IPAddress, gateway: IPAddress, interface: Int32) {
        close()
        target = (local, gateway, interface)
        lastError = nil
        ensure()
    }

    /// Closes it and forgets where it led.
    func forget() {
        close()
        target = nil
    }

    func close() {
        socket?.cancel()
        socket = nil
    }

    /// Sends on the open socket, or on one made now for the target; a failure drops the socket
    /// (the retransmission tries again on a new one).
    func send(_ bytes: [UInt8]) {
        guard let socket = ensure() else { return }
        do {
            _ = try socket.send(bytes)
        } catch let error as SystemCallError where error.errno == .connectionRefused {
            onRefused()
        } catch {
            failed("send to the gateway: \(error)")
        }
    }

    /// Sends on the open socket if there is one, ignoring failure (the way out).
    func sendIfOpen(_ bytes: [UInt8]) -> Bool {
        guard let socket else { return false }
        _ = try? Socket(socket.fd).send(bytes)
        return true
    }

    /// Whether datagrams wake the loop (NAT-PMP reads a renewal's answers in one go later).
    func listen(_ on: Bool) {
        guard let socket else { return }
        do {
            try socket.setInterest(on ? .readable : [])
        } catch {
            failed("\(error)")
        }
    }

    /// Reads every datagram waiting.
    func drain() {
        guard let fd = socket?.fd else { return }
        var buffer = [UInt8](repeating: 0, count: receiveSize)
        while true {
            do {
                guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try fd.read(into: $0) }) else { break }
                onDatagram(Array(buffer[0..<count]))
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                onRefused()
                break
            } catch {
                loop.logger.debug(name, "recv: \(error)")
                break
            }
            if socket == nil { break }
        }
    }

    @discardableResult
    private func ensure() -> Socket? {
        if let socket { return Socket(socket.fd) }
        guard let target else { return nil }
        do {
            let fd = try Self.make(local: target.local, gateway: target.gateway, interface: target.interface)
            socket = try Registration(loop: loop, owning: fd, interest: .readable, name: name) { [unowned self] _ in self.drain() }
            lastError = nil
            switch try? Socket(fd).localAddress() {
            case .v4(let local, _)?: onOpened(.v4(local))
            case .v6(let bytes, _)?: if let local = IPv6Address(octets: bytes) { onOpened(.v6(local)) }
            case nil: break
            }
            return Socket(fd)
        } catch {
            failed("\(error)")
            return nil
        }
    }

    private func failed(_ message: String) {
        close()
        if message != lastError { loop.logger.warning(name, "\(message); trying again on a new socket") }
        lastError = message
    }

    /// A UDP socket bound to `local`, its unicast packets kept on `interface`, connected to
    /// `gateway`:5351.
    static func make(local: IPAddress, gateway: IPAddress, interface: Int32) throws -> FileDescriptor {
        // IP_UNICAST_IF and IPV6_UNICAST_IF take the index in network byte order; they need no
        // privilege.
        let index = Int32(bitPattern: UInt32(bitPattern: interface).bigEndian)
        let server = gateway.socketAddress(port: NATPMP.serverPort, scope: interface)
        if case .v6 = local {
            return try Socket(family: AF_INET6, kind: .datagram, name: "socket(AF_INET6, SOCK_DGRAM)") { socket in
                try socket.setOption(Int32(IPPROTO_IPV6), IPV6_UNICAST_IF, index, name: "IPV6_UNICAST_IF")
                try socket.bind(to: local.socketAddress(port: 0, scope: interface), name: "bind \(local)")
                try socket.connect(to: server, name: "connect [\(gateway)]:\(NATPMP.serverPort)")
            }.fd
        }
        return try Socket(family: AF_INET, kind: .datagram, name: "socket(AF_INET, SOCK_DGRAM)") { socket in
            try socket.setOption(Int32(IPPROTO_IP), IP_UNICAST_IF, index, name: "IP_UNICAST_IF")
            try socket.bind(to: local.socketAddress(port: 0, scope: interface), name: "bind \(local)")
            try socket.connect(to: server, name: "connect \(gateway):\(NATPMP.serverPort)")
        }.fd
    }
}
