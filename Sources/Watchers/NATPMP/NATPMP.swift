import Reactor

/// The NAT-PMP wire format (RFC 6886): requests built, responses decoded, strictly. A reply
/// that is short, of another version, not a response, or of the wrong size is an error and
/// never yields a port.
public enum NATPMP {
    public static let serverPort: UInt16 = 5351

    public enum MappingProtocol: UInt8, Sendable, CustomStringConvertible {
        case udp = 1
        case tcp = 2

        public var description: String { self == .udp ? "UDP" : "TCP" }
    }

    public enum ResultCode: Equatable, Sendable, CustomStringConvertible {
        case success
        case unsupportedVersion
        case notAuthorized
        case networkFailure
        case outOfResources
        case unsupportedOpcode
        case other(UInt16)

        init(_ code: UInt16) {
            switch code {
            case 0: self = .success
            case 1: self = .unsupportedVersion
            case 2: self = .notAuthorized
            case 3: self = .networkFailure
            case 4: self = .outOfResources
            case 5: self = .unsupportedOpcode
            default: self = .other(code)
            }
        }

        public var description: String {
            switch self {
            case .success: "success"
            case .unsupportedVersion: "unsupported version (1)"
            case .notAuthorized: "not authorized or refused (2): port forwarding is off (ProtonVPN: use a P2P server with port forwarding on), or the gateway refuses internal port 0"
            case .networkFailure: "network failure (3): the gateway has no working uplink"
            case .outOfResources: "out of resources (4): the gateway has no free ports"
            case .unsupportedOpcode: "unsupported opcode (5)"
            case .other(let code): "unknown result code \(code)"
            }
        }
    }

    public enum Response: Equatable, Sendable, CustomStringConvertible {
        case externalAddress(result: ResultCode, epoch: UInt32, address: IPv4Address)
        case mapping(MappingProtocol, result: ResultCode, epoch: UInt32, internalPort: UInt16, externalPort: UInt16, lifetime: UInt32)
        /// The 8-byte answer of a gateway that does not speak version 0.
        case unsupportedVersion(epoch: UInt32)

        public var epoch: UInt32 {
            switch self {
            case .externalAddress(_, let epoch, _), .mapping(_, _, let epoch, _, _, _), .unsupportedVersion(let epoch): epoch
            }
        }

        public var description: String {
            switch self {
            case .mapping(let mappingProtocol, let result, let epoch, let internalPort, let external, let lifetime):
                "\(mappingProtocol) mapping: \(result), internal \(internalPort), external \(external), lifetime \(lifetime) s, epoch \(epoch)"
            case .externalAddress(let result, let epoch, let address):
                "external address \(address): \(result), epoch \(epoch)"
            case .unsupportedVersion(let epoch):
                "unsupported version, epoch \(epoch)"
            }
        }
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public static func externalAddressRequest() -> [UInt8] { [0, 0] }

    public static func mappingRequest(_ mappingProtocol: MappingProtocol, internalPort: UInt16, suggestedExternalPort: UInt16,
                                      lifetime: UInt32) -> [UInt8] {
        [0, mappingProtocol.rawValue, 0, 0] + bigEndian(internalPort) + bigEndian(suggestedExternalPort) + bigEndian(lifetime)
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Response {
        guard bytes.count >= 4 else { throw DecodeError(message: "short reply (\(bytes.count) bytes)") }
        guard bytes[0] == 0 else { throw DecodeError(message: "reply of version \(bytes[0]), not NAT-PMP (0)") }
        let result = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        // Erratum 3618: the unsupported-version answer carries opcode 128, or 0 from gateways
        // built to the original text.
        if result == 1 && bytes.count == 8 && (bytes[1] == 0 || bytes[1] == 128) {
            return .unsupportedVersion(epoch: word(bytes, 4))
        }
        guard bytes[1] >= 128 else { throw DecodeError(message: "not a response (opcode \(bytes[1]))") }
        switch bytes[1] {
        case 128:
            guard bytes.count == 12 else { throw DecodeError(message: "external-address reply of \(bytes.count) bytes, not 12") }
            return .externalAddress(result: ResultCode(result), epoch: word(bytes, 4),
                                    address: IPv4Address(bytes[8], bytes[9], bytes[10], bytes[11]))
        case 129, 130:
            guard bytes.count == 16 else { throw DecodeError(message: "mapping reply of \(bytes.count) bytes, not 16") }
            return .mapping(bytes[1] == 129 ? .udp : .tcp, result: ResultCode(result), epoch: word(bytes, 4),
                            internalPort: UInt16(bytes[8]) << 8 | UInt16(bytes[9]),
                            externalPort: UInt16(bytes[10]) << 8 | UInt16(bytes[11]), lifetime: word(bytes, 12))
        default:
            throw DecodeError(message: "reply with unexpected opcode \(bytes[1])")
        }
    }

    static func word(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
