import CLinux
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

@Suite struct NATPMPSessionTests {
    let start = Instant(nanoseconds: 1_000_000_000_000)
    let local = IPv4Address(10, 2, 0, 2)

    struct Driver {
        var session: NATPMPSession
        var now: Instant
        var sent: [[UInt8]] = []
        var observations: [Port?] = []
        var logs: [(LogLevel, String)] = []
        var failures: [Int] = []
        var sockets: [IPv4Address] = []

        mutating func feed(_ input: NATPMPSession.Input) {
            for effect in session.handle(input, now: now) {
                switch effect {
                case .openSocket(_, let gateway): sockets.append(gateway)
                case .closeSocket: break
                case .send(let bytes): sent.append(bytes)
                case .mapped(let port, _): observations.append(port)
                case .unmapped: observations.append(nil)
                case .failed(let streak): failures.append(streak)
                case .log(let level, let message): logs.append((level, message))
                }
            }
        }

        /// Answers the last request like ProtonVPN's gateway, whose epoch runs with our clock.
        mutating func answer(port: UInt16, lifetime: UInt32 = 60, epoch: UInt32? = nil, result: UInt16 = 0) {
            let epoch = epoch ?? 5000 + UInt32((now - Instant(nanoseconds: 1_000_000_000_000)).components.seconds)
            let request = sent.last!
            let reply: [UInt8] = [0, 128 + request[1], UInt8(result >> 8), UInt8(result & 0xff)]
                + NATPMP.bigEndian(epoch) + [request[4], request[5]] + NATPMP.bigEndian(port) + NATPMP.bigEndian(lifetime)
            feed(.datagramReceived(reply))
        }

        mutating func advance(to instant: Instant) {
            now = instant
            feed(.deadlineReached)
        }

        func logged(_ text: String) -> Bool { logs.contains { $0.1.contains(text) } }
    }

    func mapped(_ settings: NATPMPSettings = NATPMPSettings()) -> Driver {
        var driver = Driver(session: NATPMPSession(settings: settings), now: start)
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.linkUp(local))
        driver.answer(port: 40000)
        driver.answer(port: 40000)
        return driver
    }

    @Test func mapsUDPThenTCPFromTheGatewayDerivedFromTheAddress() {
        let driver = mapped()
        #expect(driver.sockets == [IPv4Address(10, 2, 0, 1)])
        #expect(driver.sent.count == 2)
        #expect(driver.sent[0] == NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 51413, lifetime: 60))
        #expect(driver.sent[1] == NATPMP.mappingRequest(.tcp, internalPort: 51413, suggestedExternalPort: 51413, lifetime: 60))
        #expect(driver.observations == [Port(40000)])
        #expect(driver.session.nextDeadline == start + .seconds(45))
        #expect(driver.session.leaseExpiry == start + .seconds(60))
    }

    @Test func renewalsKeepTheInternalPortAndSuggestTheMappedOne() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        #expect(driver.sent.last == NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 40000, lifetime: 60))
        driver.answer(port: 40000, epoch: 5045)
        driver.answer(port: 40000, epoch: 5045)
        #expect(driver.observations == [Port(40000), Port(40000)], "each renewal refreshes the lease")
        #expect(driver.session.nextDeadline == driver.now + .seconds(45))
    }

    @Test func aShortGrantedLifetimeIsRenewedEarlier() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.linkUp(local))
        driver.answer(port: 40000, lifetime: 20)
        driver.answer(port: 40000, lifetime: 20)
        #expect(driver.session.nextDeadline == start + .seconds(15))
    }

    @Test func retransmissionDoublesButNeverOutlivesTheLease() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        var waits: [Duration] = []
        while driver.session.leaseExpiry != nil {
            let before = driver.now
            driver.advance(to: driver.session.nextDeadline!)
            waits.append(driver.now - before)
        }
        #expect(waits == [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(7.25)],
                "the last wait ends exactly at the lease expiry")
        #expect(driver.observations.last == .some(nil))
        #expect(driver.logged("the lease ran out with no answer from the gateway 10.2.0.1; port 40000 is no longer forwarded"))
        // It keeps asking, now for a new mapping; an answer brings the port back.
        driver.answer(port: 40000)
        driver.answer(port: 40000)
        #expect(driver.observations.last == Port(40000))
        #expect(driver.logged("the NAT-PMP gateway answers again"))
    }

    @Test func aFreshMappingGivesUpAfterItsAttemptsAndRetriesLater() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings(attempts: 4, retryDelay: .seconds(10))), now: start)
        driver.feed(.linkUp(local))
        for _ in 0..<4 { driver.advance(to: driver.session.nextDeadline!) }
        #expect(driver.sent.count == 4)
        #expect(driver.failures == [1])
        #expect(driver.logged("no answer from the NAT-PMP gateway 10.2.0.1 after 4 tries"))
        #expect(driver.session.nextDeadline == driver.now + .seconds(10))
    }

    @Test func anEpochThatGoesBackMeansTheGatewayLostStateAndIsMappedAtOnce() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        let before = driver.sent.count
        driver.answer(port: 40000, epoch: 3)
        #expect(driver.logged("the gateway lost its mappings (its epoch went from 5000 to 3)"))
        #expect(driver.sent.count == before + 1)
        #expect(driver.sent.last?[1] == 1, "a new UDP request right away")
    }

    @Test func datagramsWhileDownNeverStartACycle() {
        // Never up: no gateway at all. Two replies whose epochs disagree would once restart a
        // cycle, and its first timeout trapped on the missing gateway.
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        let reply: (UInt32) -> [UInt8] = { [0, 129, 0, 0] + NATPMP.bigEndian($0) + [0xC8, 0xD5, 0x9C, 0x40, 0, 0, 0, 60] }
        driver.feed(.datagramReceived(reply(5000)))
        driver.feed(.datagramReceived(reply(3)))
        #expect(driver.sent.isEmpty)
        #expect(!driver.session.isUp)
        #expect(driver.session.nextDeadline == nil)

        var down = mapped()
        down.feed(.linkDown("proton0 is down"))
        let requests = down.sent.count
        down.feed(.datagramReceived(reply(5000)))
        down.feed(.datagramReceived(reply(3)))
        #expect(down.sent.count == requests)
        #expect(down.session.nextDeadline == nil)
    }

    @Test func anEpochThatJumpsForwardIsAnotherServer() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        driver.answer(port: 40000, epoch: 5000 + 45 + 100_000)
        #expect(driver.logged("the gateway lost its mappings"))
    }

    @Test func anEpochThatAdvancesWithTheClockIsFine() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        driver.answer(port: 40000, epoch: 5044)
        #expect(!driver.logged("lost its mappings"))
    }

    @Test func differentUDPAndTCPPortsWarnAndTCPWins() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.linkUp(local))
        driver.answer(port: 41000)
        driver.answer(port: 42000)
        #expect(driver.observations == [Port(42000)])
        #expect(driver.logged("the gateway gave UDP port 41000 but TCP port 42000; using the TCP port"))
    }

    @Test func errorsAndRefusalsAreNamedAndRetriedLater() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.linkUp(local))
        driver.answer(port: 0, lifetime: 0, result: 2)
        #expect(driver.logged("refused the UDP mapping: not authorized or refused (2)"))
        #expect(driver.failures == [1])
        driver.advance(to: driver.session.nextDeadline!)
        driver.feed(.refused)
        #expect(driver.logged("refused NAT-PMP (port unreachable): port forwarding is off"))
        #expect(driver.failures == [1, 2])
        driver.advance(to: driver.session.nextDeadline!)
        driver.answer(port: 40000, lifetime: 0)
        #expect(driver.logged("answered success but granted no port"))
        #expect(driver.observations.isEmpty)
    }

    @Test func garbageAndAnswersToOtherQuestionsAreIgnored() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.linkUp(local))
        driver.feed(.datagramReceived([0, 129, 0]))
        driver.feed(.datagramReceived([0, 130, 0, 0, 0, 0, 0, 5, 0xC8, 0xD5, 0x9C, 0x40, 0, 0, 0, 60]))
        #expect(driver.observations.isEmpty)
        #expect(driver.logged("ignored a datagram from the gateway: short reply (3 bytes)"))
        #expect(driver.logged("ignored an answer to another question"))
    }

    @Test func linkDownPausesAndUpMapsAgainWithTheSameInternalPort() {
        var driver = mapped()
        driver.feed(.linkDown("wg0 is down"))
        #expect(driver.session.nextDeadline == nil)
        #expect(driver.observations.last == .some(nil))
        #expect(driver.logged("wg0 is down: NAT-PMP paused"))
        driver.feed(.preferredPort(Port(40000)!))
        driver.feed(.linkUp(local))
        #expect(driver.sent.last == NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 40000, lifetime: 60))
    }

    @Test func zeroInternalPortOnlyWhenAskedFor() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings(zeroInternalPort: true)), now: start)
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.linkUp(local))
        #expect(driver.sent.last == NATPMP.mappingRequest(.udp, internalPort: 0, suggestedExternalPort: 0, lifetime: 60))
        var automatic = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        automatic.feed(.linkUp(local))
        #expect(automatic.sent.last.map { UInt16($0[4]) << 8 | UInt16($0[5]) }.map { $0 >= 49152 } == true,
                "with nothing known, a random high port, never 0")
    }

    @Test func theInternalPortOfAnEarlierRunIsReused() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.preferredPort(Port(40000)!))
        driver.feed(.previousInternalPort(51413))
        driver.feed(.linkUp(local))
        #expect(driver.sent.last == NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 51413, lifetime: 60))
        var configured = Driver(session: NATPMPSession(settings: NATPMPSettings(internalPort: 6881)), now: start)
        configured.feed(.previousInternalPort(51413))
        configured.feed(.linkUp(local))
        #expect(configured.sent.last?[4...5] == [0x1A, 0xE1], "a configured internal port wins")
    }

    @Test func deleteRequestsUseLifetimeZero() {
        let driver = mapped()
        #expect(driver.session.deleteRequests() == [
            NATPMP.mappingRequest(.udp, internalPort: 51413, suggestedExternalPort: 0, lifetime: 0),
            NATPMP.mappingRequest(.tcp, internalPort: 51413, suggestedExternalPort: 0, lifetime: 0),
        ])
    }
}

@Suite struct NetlinkTests {
    /// A message with `nlmsghdr`, a body and attributes, as the kernel lays it out.
    static func message(type: Int32, flags: UInt16 = 0, sequence: UInt32 = 0, body: [UInt8], attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var payload = body
        for (kind, value) in attributes {
            let length = UInt16(4 + value.count)
            payload += NATPMP.bigEndian(length).reversed() + NATPMP.bigEndian(kind).reversed() + value
            while payload.count % 4 != 0 { payload.append(0) }
        }
        let total = UInt32(16 + payload.count)
        return NATPMP.bigEndian(total).reversed() + NATPMP.bigEndian(UInt16(type)).reversed() + NATPMP.bigEndian(flags).reversed()
            + NATPMP.bigEndian(sequence).reversed() + [0, 0, 0, 0] + payload
    }

    static func link(_ index: Int32, _ name: String, flags: UInt32, removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [0, 0, 0, 0] + NATPMP.bigEndian(UInt32(bitPattern: index)).reversed() + NATPMP.bigEndian(flags).reversed() + [0, 0, 0, 0]
        return message(type: removed ? Int32(RTM_DELLINK) : Int32(RTM_NEWLINK), body: body,
                       attributes: [(UInt16(IFLA_MTU), [0x1c, 0x05, 0, 0]), (UInt16(IFLA_IFNAME), Array(name.utf8) + [0])])
    }

    static func address(_ index: Int32, local: [UInt8]?, peer: [UInt8], removed: Bool = false) -> [UInt8] {
        let body: [UInt8] = [UInt8(AF_INET), 32, 0, 0] + NATPMP.bigEndian(UInt32(bitPattern: index)).reversed()
        var attributes: [(UInt16, [UInt8])] = [(UInt16(IFA_ADDRESS), peer)]
        if let local { attributes.append((UInt16(IFA_LOCAL), local)) }
        return message(type: removed ? Int32(RTM_DELADDR) : Int32(RTM_NEWADDR), body: body, attributes: attributes)
    }

    static let upRunning = UInt32(IFF_UP) | UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP
    static let wireguard = UInt32(IFF_UP) | UInt32(IFF_POINTOPOINT) | UInt32(IFF_NOARP) | CLINUX_IFF_LOWER_UP

    @Test func linksAndAddressesDecodeAndLocalBeatsThePeer() {
        let bytes = Self.link(7, "wg0", flags: Self.wireguard) + Self.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1])
            + Self.message(type: Int32(NLMSG_DONE), sequence: 2, body: [0, 0, 0, 0], attributes: [])
        #expect(NetlinkMessage.parse(bytes) == [
            .link(index: 7, name: "wg0", flags: Self.wireguard, removed: false),
            .address(index: 7, address: IPv4Address(10, 2, 0, 2), removed: false),
            .done(sequence: 2, interrupted: false),
        ])
        #expect(NetlinkMessage.parse(Self.address(7, local: nil, peer: [192, 168, 1, 5]))
            == [.address(index: 7, address: IPv4Address(192, 168, 1, 5), removed: false)])
    }

    @Test func truncatedAndForeignBytesAreDroppedNotGuessed() {
        let whole = Self.link(7, "wg0", flags: Self.upRunning)
        #expect(NetlinkMessage.parse(Array(whole.dropLast(3))).isEmpty)
        #expect(NetlinkMessage.parse([1, 2, 3]).isEmpty)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            _ = NetlinkMessage.parse((0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
    }

    @Test func aWireGuardLinkIsUsableWithLowerUpAndAnAddress() {
        var tracker = LinkTracker(interface: "wg0")
        #expect(tracker.state == .unusable("wg0 does not exist"))
        for message in NetlinkMessage.parse(Self.link(3, "eth0", flags: Self.upRunning) + Self.link(7, "wg0", flags: Self.wireguard)) {
            tracker.apply(message)
        }
        #expect(tracker.state == .unusable("wg0 has no IPv4 address"))
        NetlinkMessage.parse(Self.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1])).forEach { tracker.apply($0) }
        #expect(tracker.state == .usable(IPv4Address(10, 2, 0, 2)))
    }

    @Test func downAndNoCarrierAreUnusableButKeepTheAddress() {
        var tracker = LinkTracker(interface: "wg0")
        NetlinkMessage.parse(Self.link(7, "wg0", flags: Self.upRunning) + Self.address(7, local: [10, 2, 0, 2], peer: [10, 2, 0, 1]))
            .forEach { tracker.apply($0) }
        NetlinkMessage.parse(Self.link(7, "wg0", flags: 0)).forEach { tracker.apply($0) }
        #expect(tracker.state == .unusable("wg0 is down"))
        NetlinkMessage.parse(Self.link(7, "wg0", flags: UInt32(IFF_UP))).forEach { tracker.apply($0) }
        #expect(tracker.state == .unusable("wg0 has no carrier (not running)"))
        NetlinkMessage.parse(Self.link(7, "wg0", flags: Self.upRunning)).forEach { tracker.apply($0) }
        #expect(tracker.state == .usable(IPv4Address(10, 2, 0, 2)), "link down does not remove the address")
    }

    @Test func aRecreatedInterfaceIsFollowedByName() {
        var tracker = LinkTracker(interface: "proton0")
        NetlinkMessage.parse(Self.link(9, "proton0", flags: Self.wireguard) + Self.address(9, local: [10, 2, 0, 2], peer: [10, 2, 0, 2]))
            .forEach { tracker.apply($0) }
        NetlinkMessage.parse(Self.link(9, "proton0", flags: Self.wireguard, removed: true)).forEach { tracker.apply($0) }
        #expect(tracker.state == .unusable("proton0 does not exist"))
        NetlinkMessage.parse(Self.link(12, "proton0", flags: Self.wireguard) + Self.address(12, local: [10, 2, 0, 3], peer: [10, 2, 0, 3]))
            .forEach { tracker.apply($0) }
        #expect(tracker.state == .usable(IPv4Address(10, 2, 0, 3)))
    }

    @Test func dumpRequestsAreWellFormed() {
        let request = NetlinkMessage.dumpRequest(type: UInt16(RTM_GETADDR), sequence: 2)
        #expect(request.count == 24)
        #expect(request[4] == UInt8(RTM_GETADDR) && request[16] == UInt8(AF_INET))
        #expect(UInt16(request[6]) | UInt16(request[7]) << 8 == UInt16(NLM_F_REQUEST | NLM_F_DUMP))
    }
}
