import Reactor

/// The PCP wire format (RFC 6887) for the MAP opcode: requests built, responses decoded in the
/// order of §8.3 (short, not a response, an unsupported version, then the rest). A NAT-PMP
/// gateway's answer (version 0) is recognised as such, so that the client can fall back.
public enum PCP {
    public static let serverPort: UInt16 = 5351
    public static let version: UInt8 = 2
    public static let mapOpcode: UInt8 = 1
    /// §7: no PCP message is longer.
    public static let maximumLength = 1100

    public enum MappingProtocol: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        case tcp = 6
        case udp = 17

        public var description: String { self == .udp ? "UDP" : "TCP" }
    }

    /// §7.4, every code named; a code outside the registry is kept as a number.
    public enum ResultCode: Equatable, Sendable, CustomStringConvertible {
        case success
        case unsupportedVersion
        case notAuthorized
        case malformedRequest
        case unsupportedOpcode
        case unsupportedOption
        case malformedOption
        case networkFailure
        case noResources
        case unsupportedProtocol
        case userExceededQuota
        case cannotProvideExternal
        case addressMismatch
        case excessiveRemotePeers
        case other(UInt8)

        public init(_ code: UInt8) {
            switch code {
            case 0: self = .success
            case 1: self = .unsupportedVersion
            case 2: self = .notAuthorized
            case 3: self = .malformedRequest
            case 4: self = .unsupportedOpcode
            case 5: self = .unsupportedOption
            case 6: self = .malformedOption
            case 7: self = .networkFailure
            case 8: self = .noResources
            case 9: self = .unsupportedProtocol
            case 10: self = .userExceededQuota
            case 11: self = .cannotProvideExternal
            case 12: self = .addressMismatch
            case 13: self = .excessiveRemotePeers
            default: self = .other(code)
            }
        }

        /// The registry's name: `NOT_AUTHORIZED`.
        public var name: String {
            switch self {
            case .success: "SUCCESS"
            case .unsupportedVersion: "UNSUPP_VERSION"
            case .notAuthorized: "NOT_AUTHORIZED"
            case .malformedRequest: "MALFORMED_REQUEST"
            case .unsupportedOpcode: "UNSUPP_OPCODE"
            case .unsupportedOption: "UNSUPP_OPTION"
            case .malformedOption: "MALFORMED_OPTION"
            case .networkFailure: "NETWORK_FAILURE"
            case .noResources: "NO_RESOURCES"
            case .unsupportedProtocol: "UNSUPP_PROTOCOL"
            case .userExceededQuota: "USER_EX_QUOTA"
            case .cannotProvideExternal: "CANNOT_PROVIDE_EXTERNAL"
            case .addressMismatch: "ADDRESS_MISMATCH"
            case .excessiveRemotePeers: "EXCESSIVE_REMOTE_PEERS"
            case .other(let code): "result \(code)"
            }
        }

        public var description: String {
            switch self {
            case .success: "SUCCESS"
            case .unsupportedVersion: "UNSUPP_VERSION (1): the gateway does not speak PCP version 2"
            case .notAuthorized: "NOT_AUTHORIZED (2): the gateway refuses mappings for this host (port forwarding off, or a rule against it)"
            case .malformedRequest: "MALFORMED_REQUEST (3): the gateway could not parse the request"
            case .unsupportedOpcode: "UNSUPP_OPCODE (4): the gateway does not offer MAP"
            case .unsupportedOption: "UNSUPP_OPTION (5): the gateway does not know an option that was sent"
            case .malformedOption: "MALFORMED_OPTION (6): the gateway could not parse an option"
            case .networkFailure: "NETWORK_FAILURE (7): the gateway has no working uplink just now"
            case .noResources: "NO_RESOURCES (8): the gateway cannot make the mapping now (no free ports, or its firewall refused the rule)"
            case .unsupportedProtocol: "UNSUPP_PROTOCOL (9): the gateway does not map this protocol"
            case .userExceededQuota: "USER_EX_QUOTA (10): this host has as many mappings as the gateway allows"
            case .cannotProvideExternal: "CANNOT_PROVIDE_EXTERNAL (11): the gateway cannot give the suggested port"
            case .addressMismatch: "ADDRESS_MISMATCH (12): the request's client address is not the one the gateway sees (a NAT between them)"
            case .excessiveRemotePeers: "EXCESSIVE_REMOTE_PEERS (13): the gateway has too many remote peers for this mapping"
            case .other(let code): "unknown result code \(code)"
            }
        }

        /// §7.4's short-lived errors (a retry soon may work); the others are long-lived.
        public var isShortLived: Bool {
            switch self {
            case .networkFailure, .noResources, .userExceededQuota: true
            default: false
            }
        }
    }

    /// A MAP response (§11.1): the opcode data follows the common header.
    public struct MapResponse: Equatable, Sendable {
        public var result: ResultCode
        public var lifetime: UInt32
        public var epoch: UInt32
        public var nonce: [UInt8]
        public var protocolNumber: UInt8
        public var internalPort: UInt16
        public var externalPort: UInt16
        /// 16 bytes; an IPv4 address as IPv4-mapped IPv6.
        public var externalAddress: [UInt8]

        public var mappingProtocol: MappingProtocol? { MappingProtocol(rawValue: protocolNumber) }
        public var externalIPv4: IPv4Address? { PCP.ipv4(mapped: externalAddress) }
        /// The external address, IPv4 (mapped) or IPv6 (a firewall's: the internal one itself).
        public var external: IPAddress? { PCP.address(externalAddress) }
    }

    public enum Response: Equatable, Sendable, CustomStringConvertible {
        case map(MapResponse)
        /// UNSUPP_VERSION: `version` is the one the server speaks (0: NAT-PMP, §9, RFC 6886
        /// §1.1); the epoch when the reply carries one.
        case unsupportedVersion(version: UInt8, epoch: UInt32?)
        /// An error with no opcode data (a gateway may answer a request it could not parse
        /// with the header alone): it names no mapping.
        case headerOnly(opcode: UInt8, result: ResultCode, lifetime: UInt32, epoch: UInt32)

        public var epoch: UInt32? {
            switch self {
            case .map(let map): map.epoch
            case .unsupportedVersion(_, let epoch): epoch
            case .headerOnly(_, _, _, let epoch): epoch
            }
        }

        public var description: String {
            switch self {
            case .map(let map):
                "MAP \(map.mappingProtocol?.description ?? "protocol \(map.protocolNumber)"): \(map.result.name), internal \(map.internalPort), external \(PCP.hostPort(map.external, map.externalPort)), lifetime \(map.lifetime) s, epoch \(map.epoch)"
            case .unsupportedVersion(let version, let epoch):
                "UNSUPP_VERSION, the gateway speaks version \(version)\(version == 0 ? " (NAT-PMP)" : "")\(epoch.map { ", epoch \($0)" } ?? "")"
            case .headerOnly(let opcode, let result, let lifetime, let epoch):
                "opcode \(opcode): \(result.name), lifetime \(lifetime) s, epoch \(epoch), no opcode data"
            }
        }
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// `address` as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), as §5 writes every IPv4 address.
    public static func mapped(_ address: IPv4Address) -> [UInt8] {
        [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + address.octets
    }

    static func ipv4(mapped bytes: [UInt8]) -> IPv4Address? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return nil }
        return IPv4Address(bytes[12], bytes[13], bytes[14], bytes[15])
    }

    /// An address as a PCP field (§5): IPv4 as IPv4-mapped IPv6, IPv6 as it is.
    public static func field(_ address: IPAddress) -> [UInt8] {
        switch address {
        case .v4(let address): mapped(address)
        case .v6(let address): address.octets
        }
    }

    /// A PCP address field read back: IPv4-mapped is IPv4.
    public static func address(_ bytes: [UInt8]) -> IPAddress? {
        if let ipv4 = ipv4(mapped: bytes) { return .v4(ipv4) }
        return IPv6Address(octets: bytes).map { .v6($0) }
    }

    static func hostPort(_ address: IPAddress?, _ port: UInt16) -> String {
        switch address {
        case .v6(let address)?: "[\(address)]:\(port)"
        case .v4(let address)?: "\(address):\(port)"
        case nil: "?:\(port)"
        }
    }

    /// A MAP request (§7.1, §11.1): 60 bytes, no options. `client`: the socket's own address,
    /// IPv4 or IPv6 (then the mapping is of that IPv6 address: a firewall's pinhole).
    public static func mapRequest(_ mappingProtocol: MappingProtocol, nonce: [UInt8], internalPort: UInt16,
                                  suggestedExternalPort: UInt16, suggestedExternalAddress: IPAddress?, lifetime: UInt32,
                                  client: IPAddress) -> [UInt8] {
        precondition(nonce.count == 12, "a PCP nonce is 96 bits")
        var bytes: [UInt8] = [version, mapOpcode, 0, 0]
        bytes += bigEndian(lifetime)
        bytes += field(client)
        bytes += nonce
        bytes += [mappingProtocol.rawValue, 0, 0, 0]
        bytes += bigEndian(internalPort) + bigEndian(suggestedExternalPort)
        // No address suggested: the all-zeros address of the client's family (§11.1, erratum
        // 3621): ::ffff:0.0.0.0 asks for an IPv4 external address, `::` for an IPv6 one.
        if let suggestedExternalAddress {
            bytes += field(suggestedExternalAddress)
        } else if case .v6 = client {
            bytes += [UInt8](repeating: 0, count: 16)
        } else {
            bytes += mapped(IPv4Address(0, 0, 0, 0))
        }
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Response {
        guard bytes.count >= 4 else { throw DecodeError(message: "short reply (\(bytes.count) bytes)") }
        if bytes[0] == 0 {
            // A NAT-PMP gateway: its unsupported-version answer (result 1, 16 bits), with opcode
            // 128 (erratum 3618) or 0 (the original text), R bit or not.
            let result = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
            guard result == 1, bytes[1] == 128 || bytes[1] == 0 else {
                throw DecodeError(message: "a NAT-PMP reply (version 0) that is not UNSUPP_VERSION")
            }
            return .unsupportedVersion(version: 0, epoch: bytes.count >= 8 ? word(bytes, 4) : nil)
        }
        guard bytes[1] & 0x80 != 0 else { throw DecodeError(message: "not a response (R bit clear, opcode \(bytes[1]))") }
        if bytes[3] == 1 {
            return .unsupportedVersion(version: bytes[0], epoch: bytes.count >= 12 ? word(bytes, 8) : nil)
        }
        guard bytes.count >= 24 else { throw DecodeError(message: "reply of \(bytes.count) bytes, shorter than the 24-byte header") }
        guard bytes[0] == version else { throw DecodeError(message: "reply of version \(bytes[0]), not PCP (2)") }
        guard bytes.count <= maximumLength, bytes.count % 4 == 0 else {
            throw DecodeError(message: "reply of \(bytes.count) bytes, not a multiple of 4 up to 1100")
        }
        let opcode = bytes[1] & 0x7F
        let result = ResultCode(bytes[3])
        let lifetime = word(bytes, 4)
        let epoch = word(bytes, 8)
        guard opcode == mapOpcode else { throw DecodeError(message: "reply to opcode \(opcode), not MAP") }
        guard bytes.count >= 60 else {
            guard result != .success else { throw DecodeError(message: "MAP success of \(bytes.count) bytes, not at least 60") }
            return .headerOnly(opcode: opcode, result: result, lifetime: lifetime, epoch: epoch)
        }
        // Options after the opcode data (none are asked for) are not read.
        return .map(MapResponse(result: result, lifetime: lifetime, epoch: epoch, nonce: Array(bytes[24..<36]),
                                protocolNumber: bytes[36], internalPort: UInt16(bytes[40]) << 8 | UInt16(bytes[41]),
                                externalPort: UInt16(bytes[42]) << 8 | UInt16(bytes[43]), externalAddress: Array(bytes[44..<60])))
    }

    static func word(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
