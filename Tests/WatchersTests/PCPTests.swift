import Domain
import Reactor
import Testing
@testable import Watchers

@Suite struct PCPCodecTests {
    let nonce: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]

    @Test func aMapRequestIsLaidOutAsTheRFCSays() {
        let request = PCP.mapRequest(.tcp, nonce: nonce, internalPort: 51413, suggestedExternalPort: 51414, suggestedExternalAddress: nil,
                                     lifetime: 7200, client: .v4(IPv4Address(10, 2, 0, 2)))
        #expect(request.count == 60)
        #expect(Array(request[0..<8]) == [2, 1, 0, 0, 0, 0, 0x1C, 0x20])
        #expect(Array(request[8..<24]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 10, 2, 0, 2], "the client as IPv4-mapped IPv6")
        #expect(Array(request[24..<36]) == nonce)
        #expect(Array(request[36..<40]) == [6, 0, 0, 0])
        #expect(Array(request[40..<44]) == [0xC8, 0xD5, 0xC8, 0xD6])
        #expect(Array(request[44..<60]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 0])
        let udp = PCP.mapRequest(.udp, nonce: nonce, internalPort: 1, suggestedExternalPort: 1, suggestedExternalAddress: .v4(IPv4Address(5, 5, 5, 1)),
                                 lifetime: 1, client: .v4(IPv4Address(10, 2, 0, 2)))
        #expect(udp[36] == 17)
        #expect(Array(udp[56..<60]) == [5, 5, 5, 1])
    }

    /// What miniupnpd 2.3.1 answered in the namespace lab (result 0, lifetime 7200, epoch 1).
    @Test func miniupnpdsAnswerDecodes() throws {
        let bytes = hex("0281000000001c2000000001000000000000000000000000a682570ff589b5491c3f3c42060000009c409c4000000000000000000000ffff05050501")
        guard case .map(let map) = try PCP.decode(bytes) else { Issue.record("not a MAP answer"); return }
        #expect(map.result == .success)
        #expect(map.lifetime == 7200)
        #expect(map.epoch == 1)
        #expect(map.nonce == hex("a682570ff589b5491c3f3c42"))
        #expect(map.mappingProtocol == .tcp)
        #expect(map.internalPort == 40000 && map.externalPort == 40000)
        #expect(map.externalIPv4 == IPv4Address(5, 5, 5, 1))
    }

    /// Over IPv6 the client is the IPv6 address as it is (not IPv4-mapped) and no suggested
    /// address is `::`, which asks for an IPv6 external address (erratum 3621).
    @Test func anIPv6MapRequestNamesTheIPv6AddressItself() {
        let client = IPv6Address("fd00:2::2")!
        let request = PCP.mapRequest(.udp, nonce: nonce, internalPort: 42000, suggestedExternalPort: 42000, suggestedExternalAddress: nil,
                                     lifetime: 7200, client: .v6(client))
        #expect(request.count == 60)
        #expect(Array(request[8..<24]) == client.octets)
        #expect(Array(request[44..<60]) == [UInt8](repeating: 0, count: 16))
    }

    /// What miniupnpd 2.3.1 answered over IPv6 in the namespace lab: a pinhole, its external
    /// address the internal one.
    @Test func miniupnpdsIPv6AnswerDecodes() throws {
        let bytes = hex("0281000000001c2000000001000000000000000000000000069e74b39ee548639472409c11000000a410a410fd000002000000000000000000000002")
        guard case .map(let map) = try PCP.decode(bytes) else { Issue.record("not a MAP answer"); return }
        #expect(map.result == .success && map.mappingProtocol == .udp)
        #expect(map.internalPort == 42000 && map.externalPort == 42000)
        #expect(map.external == .v6(IPv6Address("fd00:2::2")!) && map.externalIPv4 == nil)
        #expect(PCP.Response.map(map).description == "MAP UDP: SUCCESS, internal 42000, external [fd00:2::2]:42000, lifetime 7200 s, epoch 1")
    }

    @Test(arguments: [(UInt8(2), PCP.ResultCode.notAuthorized, "NOT_AUTHORIZED"), (3, .malformedRequest, "MALFORMED_REQUEST"),
                      (4, .unsupportedOpcode, "UNSUPP_OPCODE"), (5, .unsupportedOption, "UNSUPP_OPTION"), (6, .malformedOption, "MALFORMED_OPTION"),
                      (7, .networkFailure, "NETWORK_FAILURE"), (8, .noResources, "NO_RESOURCES"), (9, .unsupportedProtocol, "UNSUPP_PROTOCOL"),
                      (10, .userExceededQuota, "USER_EX_QUOTA"), (11, .cannotProvideExternal, "CANNOT_PROVIDE_EXTERNAL"),
                      (12, .addressMismatch, "ADDRESS_MISMATCH"), (13, .excessiveRemotePeers, "EXCESSIVE_REMOTE_PEERS"), (99, .other(99), "result 99")])
    func everyResultCodeIsNamed(code: UInt8, expected: PCP.ResultCode, name: String) throws {
        var bytes = PCP.mapRequest(.udp, nonce: nonce, internalPort: 8080, suggestedExternalPort: 8080, suggestedExternalAddress: nil, lifetime: 0,
                                   client: .v4(IPv4Address(10, 0, 0, 2)))
        bytes[1] = 0x81
        bytes[3] = code
        guard case .map(let map) = try PCP.decode(bytes) else { Issue.record("not a MAP answer"); return }
        #expect(map.result == expected)
        #expect(expected.name == name)
        #expect(expected.isShortLived == [7, 8, 10].contains(code))
    }

    @Test func unsupportedVersionFromPCPAndFromNATPMPGateways() throws {
        #expect(try PCP.decode([0, 128, 0, 1, 0, 0, 0, 5]) == .unsupportedVersion(version: 0, epoch: 5))
        #expect(try PCP.decode([0, 0, 0, 1, 0, 0, 0, 5]) == .unsupportedVersion(version: 0, epoch: 5), "the pre-errata opcode 0")
        #expect(try PCP.decode([1, 0x81, 0, 1]) == .unsupportedVersion(version: 1, epoch: nil), "§8.3: UNSUPP_VERSION before the length check")
        #expect(throws: PCP.DecodeError.self) { try PCP.decode([0, 129, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]) }
    }

    @Test func malformedRepliesAreErrors() throws {
        let valid = hex("0281000000001c2000000001000000000000000000000000a682570ff589b5491c3f3c42060000009c409c4000000000000000000000ffff05050501")
        #expect(throws: PCP.DecodeError.self) { try PCP.decode([2, 0x81, 0]) }
        var request = valid
        request[1] = 1
        #expect(throws: PCP.DecodeError.self, "R bit clear") { try PCP.decode(request) }
        #expect(throws: PCP.DecodeError.self, "a success without opcode data") { try PCP.decode(Array(valid[0..<24])) }
        #expect(throws: PCP.DecodeError.self, "not a multiple of 4") { try PCP.decode(valid + [0]) }
        #expect(throws: PCP.DecodeError.self, "over 1100 bytes") { try PCP.decode(valid + [UInt8](repeating: 0, count: 1044)) }
        var announce = valid
        announce[1] = 0x80
        #expect(throws: PCP.DecodeError.self, "ANNOUNCE is not MAP") { try PCP.decode(announce) }
        var header = Array(valid[0..<24])
        header[3] = 3
        #expect(try PCP.decode(header) == .headerOnly(opcode: 1, result: .malformedRequest, lifetime: 7200, epoch: 1))
    }
}

func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        bytes.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return bytes
}

@Suite struct PCPSessionTests {
    static let start = Instant(nanoseconds: 1_000_000_000_000)
    let tunnel = GatewayPath(Tunnel(interface: "eth0", index: 3, address: IPv4Address(192, 168, 1, 20), gateway: IPv4Address(192, 168, 1, 1),
                                    gatewayRule: .route(table: 254)))

    struct Driver {
        var session: PCPSession
        var now = PCPSessionTests.start
        var sent: [[UInt8]] = []
        var round: [[UInt8]] = []
        var observations: [(port: Port?, reason: ChangeReason)] = []
        var failures: [Int] = []
        var fallBacks: [String] = []
        var sockets = 0
        var logs: [(LogLevel, String)] = []
        /// The address the shell's getsockname names.
        var local = IPAddress.v4(IPv4Address(192, 168, 1, 20))

        init(_ settings: PCPSettings = PCPSettings()) {
            session = PCPSession(settings: settings)
        }

        mutating func feed(_ input: PCPSession.Input) {
            let effects = session.handle(input, now: now)
            if effects.contains(where: { if case .send = $0 { true } else { false } }) { round = [] }
            var opened = false
            for effect in effects {
                switch effect {
                case .openSocket: sockets += 1; opened = true
                case .closeSocket: break
                case .send(let bytes): sent.append(bytes); round.append(bytes)
                case .mapped(let port, _, let reason): observations.append((port, reason))
                case .unmapped(_, let reason): observations.append((nil, reason))
                case .failed(let streak): failures.append(streak)
                case .fallBack(let reason): fallBacks.append(reason)
                case .log(let level, let message): logs.append((level, message))
                }
            }
            if opened { feed(.socketOpened(local: local)) }
        }

        mutating func advance(to instant: Instant) {
            now = instant
            feed(.deadlineReached)
        }

        mutating func advance(by duration: Duration) {
            advance(to: now + duration)
        }

        /// The gateway's answer to `request`: its nonce, protocol and internal port echoed.
        static func answer(to request: [UInt8], result: UInt8 = 0, port: UInt16, lifetime: UInt32, epoch: UInt32) -> [UInt8] {
            var bytes = request
            bytes[1] = 0x81
            bytes[3] = result
            bytes.replaceSubrange(4..<8, with: PCP.bigEndian(lifetime))
            bytes.replaceSubrange(8..<12, with: PCP.bigEndian(epoch))
            bytes.replaceSubrange(12..<24, with: [UInt8](repeating: 0, count: 12))
            bytes.replaceSubrange(42..<44, with: PCP.bigEndian(result == 0 ? port : 0))
            bytes.replaceSubrange(44..<60, with: PCP.mapped(IPv4Address(203, 0, 113, 9)))
            return bytes
        }

        /// Answers every request of the last round; the epoch runs with our clock unless given.
        mutating func answer(port: UInt16, lifetime: UInt32 = 7200, result: UInt8 = 0, epoch: UInt32? = nil) {
            let epoch = epoch ?? 100 + UInt32((now - PCPSessionTests.start).components.seconds)
            for request in round { feed(.datagramReceived(Self.answer(to: request, result: result, port: port, lifetime: lifetime, epoch: epoch))) }
        }
    }

    static func suggested(_ request: [UInt8]) -> UInt16 { UInt16(request[42]) << 8 | UInt16(request[43]) }
    static func internalPort(_ request: [UInt8]) -> UInt16 { UInt16(request[40]) << 8 | UInt16(request[41]) }

    @Test func mapsUDPAndTCPWithOneNonceEachFromTheSocketsAddress() {
        var driver = Driver()
        driver.feed(.preferredPort(Port(51413)!))
        driver.local = .v4(IPv4Address(192, 168, 1, 21))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.round.count == 2)
        #expect(driver.round.map { $0[36] } == [17, 6])
        #expect(driver.round.allSatisfy { Array($0[8..<24]) == PCP.mapped(IPv4Address(192, 168, 1, 21)) }, "getsockname's address, not the tunnel's")
        #expect(driver.round.allSatisfy { Self.internalPort($0) == 51413 && Self.suggested($0) == 51413 })
        #expect(Array(driver.round[0][24..<36]) == driver.session.nonce(.udp))
        #expect(Array(driver.round[1][24..<36]) == driver.session.nonce(.tcp))
        #expect(driver.session.nonce(.udp) != driver.session.nonce(.tcp))
        driver.answer(port: 51413)
        #expect(driver.observations.map(\.port) == [Port(51413)])
        #expect(driver.observations.map(\.reason) == [.started])
        #expect(driver.session.externalAddress == .v4(IPv4Address(203, 0, 113, 9)))
    }

    @Test func anAnswerWithAnotherNonceIsIgnored() {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        for request in driver.round {
            var answer = Driver.answer(to: request, port: 40000, lifetime: 7200, epoch: 100)
            answer[30] ^= 0xFF
            driver.feed(.datagramReceived(answer))
        }
        #expect(driver.observations.isEmpty)
        #expect(driver.session.port == nil)
        // The retransmission reuses the nonces, and its right answers count.
        let nonces = driver.round.map { Array($0[24..<36]) }
        driver.advance(by: .seconds(3))
        #expect(driver.round.map { Array($0[24..<36]) } == nonces)
        driver.answer(port: 40000)
        #expect(driver.session.port == Port(40000))
    }

    @Test func retransmitsAfterThreeSecondsDoublingAndRenewsAtHalfTheLease() {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.session.nextDeadline == PCPSessionTests.start + .seconds(3))
        driver.advance(by: .seconds(3))
        #expect(driver.sent.count == 4)
        #expect(driver.session.nextDeadline == driver.now + .seconds(6))
        driver.advance(by: .seconds(6))
        #expect(driver.session.nextDeadline == driver.now + .seconds(12))
        driver.answer(port: 40000, lifetime: 600)
        #expect(driver.session.nextDeadline == driver.now + .seconds(300), "half the lifetime granted")
        let renewal = driver.now + .seconds(300)
        driver.advance(by: .seconds(299))
        #expect(driver.sent.count == 6)
        driver.advance(to: renewal)
        #expect(driver.sent.count == 8)
        #expect(driver.round.allSatisfy { Self.suggested($0) == 40000 })
        driver.answer(port: 40000, lifetime: 600)
        #expect(driver.observations.map(\.port) == [Port(40000), Port(40000)])
        #expect(driver.session.mappingsGranted == 2)
    }

    @Test func aRenewalNeverRetransmitsPastTheLease() {
        var driver = Driver(PCPSettings(initialRetransmit: .seconds(3), maxRetransmit: .seconds(1024)))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000, lifetime: 20)
        driver.advance(by: .seconds(10))
        for wait in [3, 6] {
            #expect(driver.session.nextDeadline == driver.now + .seconds(wait))
            driver.advance(by: .seconds(wait))
        }
        #expect(driver.session.nextDeadline == driver.now + .seconds(1), "capped at the lease's end")
        driver.advance(by: .seconds(1))
        #expect(driver.observations.map(\.reason) == [.started, .leaseLapsed])
        driver.answer(port: 40001)
        #expect(driver.observations.last?.port == Port(40001))
        #expect(driver.observations.last?.reason == .leaseLapsed)
    }

    /// §8.5: an epoch that went back (or lags our clock by more than 2 s + 1/16) is a gateway
    /// that lost its state: both mappings are asked again at once, for the port granted last.
    @Test func aGatewayRestartMapsAgainAskingForTheOldPort() {
        var driver = Driver()
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000, lifetime: 600, epoch: 5000)
        driver.advance(by: .seconds(300))
        let before = driver.sent.count
        // The UDP renewal's answer carries an epoch that restarted.
        driver.feed(.datagramReceived(Driver.answer(to: driver.round[0], port: 40000, lifetime: 600, epoch: 3)))
        #expect(driver.sent.count == before + 2, "both mappings asked again at once")
        #expect(driver.round.allSatisfy { Self.suggested($0) == 40000 })
        #expect(driver.logs.contains { $0.1.contains("lost its mappings") })
        driver.answer(port: 40002, lifetime: 600, epoch: 4)
        #expect(driver.observations.last?.port == Port(40002))
        #expect(driver.observations.last?.reason == .gatewayRestarted)
    }

    @Test func anEpochThatRunsWithOurClockIsNoRestart() {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000, lifetime: 600, epoch: 5000)
        driver.advance(by: .seconds(300))
        // 300 s later the gateway says 5000 + 300 - 2: within 2 s + 1/16.
        driver.answer(port: 40000, lifetime: 600, epoch: 5298)
        #expect(driver.observations.map(\.reason) == [.started, .renewedToNewPort])
        #expect(!driver.logs.contains { $0.1.contains("lost its mappings") })
        driver.advance(by: .seconds(300))
        // A jump forward (another server at the same address) counts too.
        driver.answer(port: 40000, lifetime: 600, epoch: 9000)
        #expect(driver.logs.contains { $0.1.contains("lost its mappings") })
    }

    @Test func aRestartedDaemonSuggestsTheClientsVerifiedPort() {
        var driver = Driver(PCPSettings(internalPort: 6881))
        driver.feed(.preferredPort(Port(45000)!))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.round.allSatisfy { Self.internalPort($0) == 6881 && Self.suggested($0) == 45000 })
    }

    @Test(arguments: [(UInt8(2), PCP.ResultCode.notAuthorized), (3, .malformedRequest), (4, .unsupportedOpcode), (5, .unsupportedOption),
                      (6, .malformedOption), (7, .networkFailure), (8, .noResources), (9, .unsupportedProtocol), (10, .userExceededQuota),
                      (11, .cannotProvideExternal), (12, .addressMismatch), (13, .excessiveRemotePeers)])
    func eachRefusalFailsTheCycleWithItsCodeAndWaitsItsLifetime(code: UInt8, expected: PCP.ResultCode) {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        driver.feed(.datagramReceived(Driver.answer(to: driver.round[0], result: code, port: 0, lifetime: 45, epoch: 100)))
        #expect(driver.failures == [1])
        #expect(driver.session.lastResult == expected)
        #expect(driver.fallBacks.isEmpty, "a PCP server that refuses would refuse NAT-PMP too")
        #expect(driver.session.nextDeadline == driver.now + .seconds(45), "the error's lifetime: do not ask before")
        #expect(driver.logs.contains { $0.0 == .error && $0.1.contains(expected.name) })
        driver.advance(by: .seconds(45))
        driver.answer(port: 40000)
        #expect(driver.session.port == Port(40000))
        #expect(driver.session.lastResult == nil)
    }

    @Test func aNATPMPGatewaysUnsupportedVersionFallsBack() {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        driver.feed(.datagramReceived([0, 128, 0, 1, 0, 0, 0, 9]))
        #expect(driver.fallBacks.count == 1)
        #expect(driver.session.fellBack)
        #expect(driver.session.nextDeadline == nil)
        #expect(driver.failures.isEmpty)
        // A new tunnel is asked with PCP first again.
        var other = tunnel
        other.local = .v4(IPv4Address(192, 168, 1, 30))
        driver.feed(.tunnelUp(other))
        #expect(!driver.session.fellBack)
        #expect(driver.round.count == 2)
    }

    @Test func silenceAndPortUnreachableFallBackButNotOnceAMappingWasGranted() {
        var silent = Driver(PCPSettings(attempts: 2))
        silent.feed(.tunnelUp(tunnel))
        silent.advance(by: .seconds(3))
        silent.advance(by: .seconds(6))
        #expect(silent.fallBacks.count == 1)
        var refused = Driver()
        refused.feed(.tunnelUp(tunnel))
        refused.feed(.refused)
        #expect(refused.fallBacks.count == 1)
        var mapped = Driver()
        mapped.feed(.tunnelUp(tunnel))
        mapped.answer(port: 40000, lifetime: 600)
        mapped.advance(by: .seconds(300))
        mapped.feed(.refused)
        #expect(mapped.fallBacks.isEmpty)
        #expect(mapped.failures == [1])
        var off = Driver(PCPSettings(fallBackToNATPMP: false))
        off.feed(.tunnelUp(tunnel))
        off.feed(.datagramReceived([0, 128, 0, 1, 0, 0, 0, 9]))
        #expect(off.fallBacks.isEmpty)
        #expect(off.failures == [1])
    }

    @Test func aLinkDownUnmapsAndNewNoncesComeWithTheNextTunnel() {
        var driver = Driver()
        driver.feed(.tunnelUp(tunnel))
        let nonce = driver.session.nonce(.tcp)
        driver.answer(port: 40000)
        driver.feed(.linkDown("wg0 is down"))
        #expect(driver.observations.map(\.reason) == [.started, .tunnelRecreated])
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.session.nonce(.tcp) != nonce)
        driver.answer(port: 40001)
        #expect(driver.observations.last?.reason == .tunnelRecreated)
        #expect(driver.sockets == 2)
    }

    /// §15: a mapping is deleted by asking for it again with lifetime 0, its own nonce and
    /// internal port, the suggested port 0 and the IPv4 all-zeros address (erratum 3621).
    @Test func deleteRequestsAskForLifetimeZeroWithEachMappingsNonce() {
        var driver = Driver()
        driver.feed(.preferredPort(Port(51413)!))
        #expect(driver.session.deleteRequests().isEmpty, "nothing held before a tunnel")
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.session.deleteRequests().isEmpty, "nothing granted yet")
        driver.feed(.datagramReceived(Driver.answer(to: driver.round[1], port: 51413, lifetime: 7200, epoch: 100)))
        #expect(driver.session.deleteRequests().map { $0[36] } == [6], "the TCP mapping alone was granted")
        driver.feed(.datagramReceived(Driver.answer(to: driver.round[0], port: 51413, lifetime: 7200, epoch: 100)))
        let requests = driver.session.deleteRequests()
        #expect(requests.map { $0[36] } == [17, 6])
        #expect(requests.allSatisfy { $0.count == 60 && $0[0] == 2 && $0[1] == 1 && PCP.word($0, 4) == 0 })
        #expect(requests.map { Array($0[24..<36]) } == [driver.session.nonce(.udp), driver.session.nonce(.tcp)])
        #expect(requests.allSatisfy { Self.internalPort($0) == 51413 && Self.suggested($0) == 0 })
        #expect(requests.allSatisfy { Array($0[44..<60]) == PCP.mapped(IPv4Address(0, 0, 0, 0)) })
        #expect(requests.allSatisfy { Array($0[8..<24]) == PCP.field(driver.local) })
        driver.feed(.linkDown("eth0 is down"))
        #expect(driver.session.deleteRequests().isEmpty, "nothing held once the network went")
    }

    /// Over IPv6 the mapping is of the clients' port: nothing is asked before it is known; when
    /// it moves, the old mapping is deleted (lifetime 0, its nonce) and the new one asked for
    /// with new nonces.
    @Test func overIPv6TheClientsPortIsMappedAndFollowed() {
        let path = GatewayPath(interface: "wg0", index: 7, local: .v6(IPv6Address("fd00:2::2")!), gateway: .v6(IPv6Address("fe80::1")!),
                               gatewayRule: .route(table: 254))
        var driver = Driver(PCPSettings().overIPv6)
        driver.local = path.local
        driver.feed(.tunnelUp(path))
        #expect(driver.sockets == 1 && driver.sent.isEmpty, "no port to open yet")
        driver.feed(.preferredPort(Port(42000)!))
        #expect(driver.round.map { $0[36] } == [17, 6])
        #expect(driver.round.allSatisfy { Array($0[8..<24]) == IPv6Address("fd00:2::2")!.octets && Self.internalPort($0) == 42000 && Self.suggested($0) == 42000 })
        #expect(driver.round.allSatisfy { Array($0[44..<60]) == [UInt8](repeating: 0, count: 16) })
        let nonces = [driver.session.nonce(.udp), driver.session.nonce(.tcp)]
        for request in driver.round {
            var answer = Driver.answer(to: request, port: 42000, lifetime: 7200, epoch: 100)
            answer.replaceSubrange(44..<60, with: IPv6Address("fd00:2::2")!.octets)
            driver.feed(.datagramReceived(answer))
        }
        #expect(driver.session.port == Port(42000))
        #expect(driver.session.externalAddress == .v6(IPv6Address("fd00:2::2")!))
        driver.feed(.preferredPort(Port(42000)!))
        #expect(driver.sent.count == 2, "the same port: nothing to do")
        driver.feed(.preferredPort(Port(43000)!))
        let deletes = driver.sent.dropFirst(2).prefix(2)
        #expect(deletes.allSatisfy { PCP.word($0, 4) == 0 && Self.internalPort($0) == 42000 && Self.suggested($0) == 0 })
        #expect(deletes.map { Array($0[24..<36]) } == nonces)
        let asked = driver.sent.dropFirst(4)
        #expect(asked.count == 2 && asked.allSatisfy { PCP.word($0, 4) == 7200 && Self.internalPort($0) == 43000 && Self.suggested($0) == 43000 })
        #expect(asked.map { Array($0[24..<36]) } != nonces, "another mapping, other nonces")
        #expect(driver.session.port == nil)
    }

    @Test func noRequestLeavesBeforeTheSocketNamedItsAddress() {
        var session = PCPSession(settings: PCPSettings())
        let effects = session.handle(.tunnelUp(tunnel), now: PCPSessionTests.start)
        #expect(!effects.contains { if case .send = $0 { true } else { false } })
        let sends = session.handle(.socketOpened(local: tunnel.local), now: PCPSessionTests.start)
        #expect(sends.filter { if case .send = $0 { true } else { false } }.count == 2)
    }
}
