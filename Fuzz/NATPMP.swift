import Reactor
@testable import Watchers

/// NATPMP.decode: a datagram from the gateway (RFC 6886 §3.2, §3.3, §3.5).
///
/// Properties: only a version-0 answer of exactly the size its opcode calls for decodes (8 for
/// the unsupported-version answer, 12 external address, 16 mapping); encoding what it decoded
/// gives the datagram back byte for byte; result codes known by name never come back as
/// `.other`. The requests it builds are 12 bytes with their fields in place.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATPMP(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let bytes = input.bytes
    if let response = try? NATPMP.decode(bytes) {
        require(bytes[0] == 0, "decoded a datagram of version \(bytes[0])")
        require(encode(response, opcode: bytes[1]) == bytes, "\(response) encodes to other bytes than \(bytes)")
    }

    let internalPort = input.uint16(), external = input.uint16(), lifetime = input.uint32()
    for mappingProtocol in [NATPMP.MappingProtocol.udp, .tcp] {
        let request = NATPMP.mappingRequest(mappingProtocol, internalPort: internalPort, suggestedExternalPort: external, lifetime: lifetime)
        require(request == [0, mappingProtocol.rawValue, 0, 0] + bigEndian(internalPort) + bigEndian(external) + bigEndian(lifetime),
                "mapping request \(request)")
    }
    return 0
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

func code(_ result: NATPMP.ResultCode) -> UInt16 {
    switch result {
    case .success: return 0
    case .unsupportedVersion: return 1
    case .notAuthorized: return 2
    case .networkFailure: return 3
    case .outOfResources: return 4
    case .unsupportedOpcode: return 5
    case .other(let value):
        require(value > 5, "result \(value) decoded as .other")
        return value
    }
}

/// The datagram of a response; `opcode`: the unsupported-version answer carries 0 or 128.
func encode(_ response: NATPMP.Response, opcode: UInt8) -> [UInt8] {
    switch response {
    case .unsupportedVersion(let epoch):
        return [0, opcode] + bigEndian(UInt16(1)) + bigEndian(epoch)
    case .externalAddress(let result, let epoch, let address):
        return [0, 128] + bigEndian(code(result)) + bigEndian(epoch) + address.octets
    case .mapping(let mappingProtocol, let result, let epoch, let internalPort, let externalPort, let lifetime):
        return [0, 128 + mappingProtocol.rawValue] + bigEndian(code(result)) + bigEndian(epoch)
            + bigEndian(internalPort) + bigEndian(externalPort) + bigEndian(lifetime)
    }
}
