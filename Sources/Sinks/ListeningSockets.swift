import CLinux
import Glibc
import Reactor

/// The TCP sockets that listen on a port (and the UDP sockets bound to one), from the kernel's socket diagnostics
/// (`NETLINK_SOCK_DIAG`, what `ss -tl` reads; no privilege needed), with the interface each is
/// bound to. A listener bound to an interface index that no longer exists is deaf: qBittorrent
/// bound to the tunnel keeps such a socket after the tunnel is recreated (a new index), and it
/// refuses every connection although it is listed as listening.
public enum ListeningSockets {
    public struct Listener: Equatable, Sendable, CustomStringConvertible {
        public var address: String
        /// `SO_BINDTODEVICE`'s interface index; 0: not bound to one.
        public var interfaceIndex: UInt32
        /// An IPv6 socket that takes no IPv4 connections (`IPV6_V6ONLY`, which libtorrent sets).
        public var v6Only = false
        /// The other end, for a connected socket (`connections(port:)`).
        public var peer: String? = nil

        public init(address: String, interfaceIndex: UInt32, v6Only: Bool = false, peer: String? = nil) {
            self.address = address
            self.interfaceIndex = interfaceIndex
            self.v6Only = v6Only
            self.peer = peer
        }

        public var description: String { interfaceIndex == 0 ? address : "\(address)%\(interfaceIndex)" }
    }

    /// What the socket table says about the listeners on one port.
    public enum Check: Equatable, Sendable, CustomStringConvertible {
        case listening
        case absent
        /// Listed, but bound to an interface that is gone: a reassert makes a new socket.
        case stale(Listener)
        /// The table could not be read; nothing to conclude.
        case unknown(String)

        public var description: String {
            switch self {
            case .listening: "listening"
            case .absent: "no listener"
            case .stale(let listener): "only a listener on \(listener), an interface that is gone"
            case .unknown(let why): "unknown (\(why))"
            }
        }
    }

    /// Looks at IPv4 and IPv6. `interfaceExists` is asked for each bound listener.
    public static func check(port: UInt16, interfaceExists: (UInt32) -> Bool = Self.interfaceExists) -> Check {
        let listeners: [Listener]
        do {
            listeners = try query(port: port)
        } catch {
            return .unknown("\(error)")
        }
        if listeners.isEmpty { return .absent }
        if let stale = listeners.first(where: { $0.interfaceIndex != 0 && !interfaceExists($0.interfaceIndex) }) { return .stale(stale) }
        return .listening
    }

    public static func interfaceExists(_ index: UInt32) -> Bool {
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        return if_indextoname(index, &name) != nil
    }

    /// The kernel's socket states asked for: TCP_LISTEN, and TCP_CLOSE (what a bound,
    /// unconnected UDP socket reports).
    public static let tcpListenState: UInt8 = 10
    public static let udpBoundState: UInt8 = 7
    /// A TCP connection's states from its handshake's end to its last (`include/net/tcp_states.h`):
    /// ESTABLISHED, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING. A peer that
    /// completed a handshake shows for a minute after the client dropped it (TIME_WAIT).
    public static let tcpConnectionStates: [UInt8] = [1, 4, 5, 6, 8, 9, 11]
    /// `INET_DIAG_SKV6ONLY`: the kernel adds it to every listening IPv6 socket it lists.
    static let v6OnlyAttribute: UInt16 = 11

    /// The TCP connections on local port `port`, open or lately closed (what `ss -tan sport =
    /// :port` lists), each with its `peer`: a client that does not bind its outgoing connections
    /// to its listening port (none does by default) has these only from peers that dialled in.
    public static func connections(port: UInt16) throws -> [Listener] {
        try query(port: port, states: tcpConnectionStates)
    }

    /// The UDP sockets bound to `port` (what `ss -ul` lists): a BitTorrent client binds one
    /// beside its TCP listener (µTP, UDP trackers, DHT); a web server never does.
    public static func udpSockets(port: UInt16) throws -> [Listener] {
        try query(port: port, protocol: UInt8(IPPROTO_UDP), state: udpBoundState)
    }

    /// Two dumps (AF_INET, AF_INET6) of TCP sockets in LISTEN on `port` (or of `protocol`'s in
    /// `state`). The kernel writes the first part of a dump while `sendto` runs and the rest as
    /// `recv` reads it, so reading at once never blocks.
    public static func query(port: UInt16, protocol: UInt8 = UInt8(IPPROTO_TCP), state: UInt8 = tcpListenState) throws -> [Listener] {
        try query(port: port, protocol: `protocol`, states: [state])
    }

    static func query(port: UInt16, protocol: UInt8 = UInt8(IPPROTO_TCP), states: [UInt8]) throws -> [Listener] {
        let fd = try Netlink.socket(NETLINK_SOCK_DIAG)
        defer { fd.close() }
        var listeners: [Listener] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        for (sequence, family) in [(UInt32(1), UInt8(AF_INET)), (2, UInt8(AF_INET6))] {
            try Netlink.send(request(family: family, protocol: `protocol`, states: states, port: port, sequence: sequence), on: fd)
            var done = false
            while !done {
                guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try fd.read(into: $0) }), count > 0 else {
                    throw SystemCallError(call: "recv(NETLINK_SOCK_DIAG)", errno: .wouldBlock)
                }
                let answer = parse(Array(buffer[0..<count]), port: port, states: states, sequence: sequence)
                listeners += answer.listeners
                done = answer.done
            }
        }
        return listeners
    }

    /// `inet_diag_req_v2` (56 bytes): family, protocol, no extensions, the states (TCP_LISTEN
    /// by default), the source port in the socket id (the kernel filters sockets by it).
    static func request(family: UInt8, protocol: UInt8 = UInt8(IPPROTO_TCP), states: [UInt8] = [tcpListenState], port: UInt16, sequence: UInt32) -> [UInt8] {
        var body: [UInt8] = [family, `protocol`, 0, 0]
        body += Netlink.littleEndian(states.reduce(UInt32(0)) { $0 | UInt32(1) << $1 })
        body += [UInt8(port >> 8), UInt8(port & 0xff)]
        body += [UInt8](repeating: 0, count: 56 - body.count)
        return Netlink.message(type: CLINUX_SOCK_DIAG_BY_FAMILY, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), sequence: sequence, body: body)
    }

    /// `inet_diag_msg`: family, state, timer, retrans, then the socket id (source port big
    /// endian at 4, source address at 8, interface at 40), …; 72 bytes in all.
    static func parse(_ bytes: [UInt8], port: UInt16, states: [UInt8] = [tcpListenState], sequence: UInt32) -> (listeners: [Listener], done: Bool) {
        var listeners: [Listener] = []
        for message in Netlink.messages(in: bytes) where message.sequence == sequence {
            switch Int32(message.type) {
            case Int32(NLMSG_DONE), Int32(NLMSG_ERROR):
                return (listeners, true)
            case Int32(CLINUX_SOCK_DIAG_BY_FAMILY):
                let body = message.body
                guard body.count >= 72, states.contains(body[1]), UInt16(body[4]) << 8 | UInt16(body[5]) == port else { continue }
                let family = Int32(body[0])
                let size = family == AF_INET ? 4 : 16
                var listener = Listener(address: text(Array(body[8..<8 + size]), family: family), interfaceIndex: Netlink.u32(body, 40))
                if body[1] != tcpListenState && body[1] != udpBoundState { listener.peer = text(Array(body[24..<24 + size]), family: family) }
                listener.v6Only = family == AF_INET6 && attribute(v6OnlyAttribute, in: body, from: 72)?.first == 1
                listeners.append(listener)
            default:
                continue
            }
        }
        return (listeners, false)
    }

    /// The payload of the first netlink attribute of `type` after `offset` (4-byte aligned).
    static func attribute(_ type: UInt16, in bytes: [UInt8], from offset: Int) -> ArraySlice<UInt8>? {
        var at = offset
        while at + 4 <= bytes.count {
            let length = Int(UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)
            let kind = UInt16(bytes[at + 2]) | UInt16(bytes[at + 3]) << 8
            guard length >= 4, at + length <= bytes.count else { return nil }
            if kind & 0x3fff == type { return bytes[(at + 4)..<(at + length)] }
            at += (length + 3) & ~3
        }
        return nil
    }

    static func text(_ address: [UInt8], family: Int32) -> String {
        if family == AF_INET { return address.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard address.withUnsafeBytes({ inet_ntop(AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }) != nil else { return "?" }
        return "[" + String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "]"
    }
}
