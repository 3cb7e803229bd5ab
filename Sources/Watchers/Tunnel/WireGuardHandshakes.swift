import CLinux
import Glibc
import Reactor

/// When each WireGuard peer of an interface last completed a handshake, from the kernel's
/// generic netlink family "wireguard" (what `wg show latest-handshakes` reads: the family's id
/// from the controller, then `WG_CMD_GET_DEVICE`). It needs CAP_NET_ADMIN: the system service
/// has it, a user service does not. Answered at once (the kernel writes the dump while it is
/// asked), so reading never blocks.
public enum WireGuardHandshakes {
    public enum Reading: Equatable, Sendable {
        /// Per peer, the Unix seconds of its last handshake, nil for none yet.
        case peers([Int64?])
        /// No WireGuard here: the kernel has no such family, or the interface is another kind.
        case notWireGuard
        /// Reading it needs CAP_NET_ADMIN.
        case notPermitted
        case failed(String)
    }

    static let controller: UInt16 = 0x10  // GENL_ID_CTRL
    static let getFamily: UInt8 = 3  // CTRL_CMD_GETFAMILY
    static let familyNameAttribute: UInt16 = 2  // CTRL_ATTR_FAMILY_NAME
    static let familyIDAttribute: UInt16 = 1  // CTRL_ATTR_FAMILY_ID
    static let getDevice: UInt8 = 0  // WG_CMD_GET_DEVICE
    static let version: UInt8 = 1  // WG_GENL_VERSION
    static let interfaceNameAttribute: UInt16 = 2  // WGDEVICE_A_IFNAME
    static let peersAttribute: UInt16 = 8  // WGDEVICE_A_PEERS
    static let lastHandshakeAttribute: UInt16 = 6  // WGPEER_A_LAST_HANDSHAKE_TIME: struct __kernel_timespec

    public static func read(interface: String) -> Reading {
        let fd: FileDescriptor
        do {
            fd = try Netlink.socket(Int32(NETLINK_GENERIC))
        } catch {
            return .failed("\(error)")
        }
        defer { fd.close() }
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        func answer() throws -> [UInt8] {
            guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try fd.read(into: $0) }), count > 0 else {
                throw SystemCallError(call: "recv(NETLINK_GENERIC)", errno: .wouldBlock)
            }
            return Array(buffer[0..<count])
        }
        do {
            try Netlink.send(familyRequest(sequence: 1), on: fd)
            let family: UInt16
            switch familyAnswer(try answer(), sequence: 1) {
            case .value(let id): family = id
            case .stop(let reading): return reading
            }
            try Netlink.send(deviceRequest(family: family, interface: interface, sequence: 2), on: fd)
            var handshakes: [Int64?] = []
            while true {
                switch deviceAnswer(try answer(), family: family, sequence: 2) {
                case .stop(let reading): return reading
                case .value(let part):
                    handshakes += part.handshakes
                    if part.done { return .peers(handshakes) }
                }
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// `CTRL_CMD_GETFAMILY` for "wireguard".
    static func familyRequest(sequence: UInt32) -> [UInt8] {
        Netlink.message(type: controller, flags: UInt16(NLM_F_REQUEST), sequence: sequence,
                        body: [getFamily, 1, 0, 0] + Netlink.attribute(familyNameAttribute, Array("wireguard".utf8) + [0]))
    }

    /// `WG_CMD_GET_DEVICE` for `interface`, as a dump (a device with many peers spans messages).
    static func deviceRequest(family: UInt16, interface: String, sequence: UInt32) -> [UInt8] {
        Netlink.message(type: family, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), sequence: sequence,
                        body: [getDevice, version, 0, 0] + Netlink.attribute(interfaceNameAttribute, Array(interface.utf8) + [0]))
    }

    /// What an answer gave, or the reading it ends with.
    enum Answer<Value> {
        case value(Value)
        case stop(Reading)
    }

    /// The family's id, or what the kernel's refusal means.
    static func familyAnswer(_ bytes: [UInt8], sequence: UInt32) -> Answer<UInt16> {
        for message in Netlink.messages(in: bytes) where message.sequence == sequence {
            if let refusal = refusal(message) { return .stop(refusal) }
            guard message.type == controller, message.body.count >= 4 else { continue }
            var id: UInt16?
            Netlink.forEachAttribute(message.body, from: 4) { type, value in
                if type == familyIDAttribute, value.count >= 2 { id = Netlink.u16(value, 0) }
            }
            if let id { return .value(id) }
        }
        return .stop(.failed("the controller's answer names no family id"))
    }

    /// The handshakes of the peers in one datagram of the dump, and whether the dump ended.
    static func deviceAnswer(_ bytes: [UInt8], family: UInt16, sequence: UInt32) -> Answer<(handshakes: [Int64?], done: Bool)> {
        var handshakes: [Int64?] = []
        for message in Netlink.messages(in: bytes) where message.sequence == sequence {
            if Int32(message.type) == NLMSG_DONE { return .value((handshakes, true)) }
            if let refusal = refusal(message) { return .stop(refusal) }
            guard message.type == family, message.body.count >= 4 else { continue }
            Netlink.forEachAttribute(message.body, from: 4) { type, peers in
                guard type == peersAttribute else { return }
                Netlink.forEachAttribute(peers, from: 0) { _, peer in
                    var seconds: Int64?
                    Netlink.forEachAttribute(peer, from: 0) { type, value in
                        guard type == lastHandshakeAttribute, value.count >= 16 else { return }
                        let low = UInt64(Netlink.u32(value, 0)), high = UInt64(Netlink.u32(value, 4))
                        let unix = Int64(bitPattern: high << 32 | low)
                        seconds = unix == 0 ? nil : unix
                    }
                    handshakes.append(seconds)
                }
            }
        }
        return .value((handshakes, false))
    }

    /// An `NLMSG_ERROR` with an error: what it means here. nil for anything else (an ack).
    static func refusal(_ message: Netlink.Message) -> Reading? {
        guard Int32(message.type) == NLMSG_ERROR, message.body.count >= 4 else { return nil }
        let code = 0 &- Int32(bitPattern: Netlink.u32(message.body, 0))  // never traps on Int32.min
        switch code {
        case 0: return nil
        case ENOENT, ENODEV, EOPNOTSUPP, EINVAL: return .notWireGuard
        case EPERM, EACCES: return .notPermitted
        default: return .failed("\(SystemCallError(call: "WG_CMD_GET_DEVICE", errno: Errno(rawValue: code)))")
        }
    }
}
