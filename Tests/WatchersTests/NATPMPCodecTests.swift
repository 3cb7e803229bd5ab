import Reactor
import Testing
@testable import Watchers

@Suite struct NATPMPCodecTests {
    @Test func requestsAreLaidOutAsTheRFCSays() {
        #expect(NATPMP.externalAddressRequest() == [0, 0])
        #expect(NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 51413, lifetime: 60)
            == [0, 1, 0, 0, 0xC8, 0xD5, 0xC8, 0xD5, 0, 0, 0, 60])
        #expect(NATPMP.mappingRequest(.tcp, internalPort: 0, suggestedExternalPort: 1, lifetime: 7200)
            == [0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0x1C, 0x20])
    }

    @Test func mappingAndAddressRepliesDecode() throws {
        let tcp: [UInt8] = [0, 130, 0, 0, 0, 0x3C, 0xCE, 0xAC, 0xC8, 0xD5, 0x93, 0x44, 0, 0, 0, 60]
        #expect(try NATPMP.decode(tcp) == .mapping(.tcp, result: .success, epoch: 3_985_068, internalPort: 51413, externalPort: 37700, lifetime: 60))
        let address: [UInt8] = [0, 128, 0, 0, 0, 0, 1, 0, 198, 51, 100, 7]
        #expect(try NATPMP.decode(address) == .externalAddress(result: .success, epoch: 256, address: IPv4Address(198, 51, 100, 7)))
    }

    @Test(arguments: [(UInt16(1), NATPMP.ResultCode.unsupportedVersion), (2, .notAuthorized), (3, .networkFailure),
                      (4, .outOfResources), (5, .unsupportedOpcode), (99, .other(99))])
    func everyResultCodeIsNamed(code: UInt16, expected: NATPMP.ResultCode) throws {
        let reply: [UInt8] = [0, 129, UInt8(code >> 8), UInt8(code & 0xff), 0, 0, 0, 9, 0x1F, 0x90, 0, 0, 0, 0, 0, 0]
        #expect(try NATPMP.decode(reply) == .mapping(.udp, result: expected, epoch: 9, internalPort: 8080, externalPort: 0, lifetime: 0))
        #expect(!expected.description.isEmpty)
    }

    @Test func theUnsupportedVersionReplyWithEitherOpcode() throws {
        #expect(try NATPMP.decode([0, 128, 0, 1, 0, 0, 0, 5]) == .unsupportedVersion(epoch: 5))
        #expect(try NATPMP.decode([0, 0, 0, 1, 0, 0, 0, 5]) == .unsupportedVersion(epoch: 5), "erratum 3618: pre-errata gateways send opcode 0")
    }

    @Test(arguments: [
        ([], "short reply (0 bytes)"),
        ([0, 130, 0], "short reply (3 bytes)"),
        ([2, 130, 0, 0, 0, 0, 0, 0], "reply of version 2, not NAT-PMP (0)"),
        ([0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "not a response (opcode 2)"),
        ([0, 130, 0, 0, 0, 0, 0, 1, 0x1F, 0x90], "mapping reply of 10 bytes, not 16"),
        ([0, 130, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 60, 0], "mapping reply of 17 bytes, not 16"),
        ([0, 128, 0, 0, 0, 0, 0, 1], "external-address reply of 8 bytes, not 12"),
        ([0, 131, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "reply with unexpected opcode 131"),
    ] as [([UInt8], String)])
    func malformedRepliesAreErrors(bytes: [UInt8], message: String) {
        #expect(throws: NATPMP.DecodeError(message: message)) { try NATPMP.decode(bytes) }
    }

    @Test func randomBytesNeverCrashOrYieldAMappingByAccident() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0..<24, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if case .mapping? = try? NATPMP.decode(bytes) {
                #expect(bytes.count == 16 && bytes[0] == 0)
            }
        }
    }
}
