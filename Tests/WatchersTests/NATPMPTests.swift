import CLinux
import Domain
import Reactor
import Testing
@testable import Watchers

@Suite struct NATPMPSessionTests {
    let start = Instant(nanoseconds: 1_000_000_000_000)
    let tunnel = Tunnel(interface: "wg0", index: 7, address: IPv4Address(10, 2, 0, 2), gateway: IPv4Address(10, 2, 0, 1), gatewayRule: .lastByteOne)

    struct Driver {
        var session: NATPMPSession
        var now: Instant
        var sent: [[UInt8]] = []
        /// The requests the last input sent out together.
        var round: [[UInt8]] = []
        /// As the shell: answers wake it up, or wait on the socket until collected.
        var listening = true
        var queued: [[UInt8]] = []
        var observations: [Port?] = []
        /// Why each mapping (or its end) came, with its port.
        var reasons: [(port: Port?, reason: ChangeReason)] = []
        var logs: [(LogLevel, String)] = []
        var failures: [Int] = []
        var sockets: [IPv4Address] = []
        /// External-address requests (opcode 0), kept apart from the mapping rounds.
        var addressRequests = 0
        var publicAddresses: [IPv4Address] = []

        static func isMapping(_ effect: NATPMPSession.Effect) -> Bool {
            if case .send(let bytes) = effect { bytes != NATPMP.externalAddressRequest() } else { false }
        }

        mutating func feed(_ input: NATPMPSession.Input) {
            let effects = session.handle(input, now: now)
            if effects.contains(where: Self.isMapping) { round = [] }
            for effect in effects {
                switch effect {
                case .openSocket(_, let gateway, _): sockets.append(gateway)
                case .closeSocket: break
                case .listen(let on): listening = on
                case .collectAnswers:
                    let answers = queued
                    queued = []
                    for answer in answers { feed(.datagramReceived(answer)) }
                    feed(.answersCollected)
                case .send(let bytes) where bytes == NATPMP.externalAddressRequest():
                    addressRequests += 1
                case .send(let bytes):
                    sent.append(bytes)
                    round.append(bytes)
                case .publicAddress(let address): publicAddresses.append(address)
                case .mapped(let port, _, let reason):
                    observations.append(port)
                    reasons.append((port, reason))
                case .unmapped(_, let reason):
                    observations.append(nil)
                    reasons.append((nil, reason))
                case .failed(let streak): failures.append(streak)
                case .log(let level, let message): logs.append((level, message))
                }
            }
        }

        /// Answers the last round of requests (or its `only` one) like ProtonVPN's gateway, whose
        /// epoch runs with our clock, one reply after the other, as the shell reads them.
        mutating func answer(port: UInt16, lifetime: UInt32 = 60, epoch: UInt32? = nil, result: UInt16 = 0,
                             only: NATPMP.MappingProtocol? = nil) {
            let epoch = epoch ?? 5000 + UInt32((now - Instant(nanoseconds: 1_000_000_000_000)).components.seconds)
            for request in round where only == nil || request[1] == only!.rawValue {
                let reply: [UInt8] = [0, 128 + request[1], UInt8(result >> 8), UInt8(result & 0xff)]
                    + NATPMP.bigEndian(epoch) + [request[4], request[5]] + NATPMP.bigEndian(port) + NATPMP.bigEndian(lifetime)
                if listening { feed(.datagramReceived(reply)) } else { queued.append(reply) }
            }
        }

        /// The renewal's answers, collected at its deadline.
        mutating func collect() {
            advance(to: session.nextDeadline!)
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
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000)
        return driver
    }

    func requests(internalPort: UInt16 = 51413, suggested: UInt16) -> [[UInt8]] {
        [.udp, .tcp].map { NATPMP.mappingRequest($0, internalPort: internalPort, suggestedExternalPort: suggested, lifetime: 60) }
    }

    @Test func mapsUDPAndTCPTogetherOnTheGatewayDerivedFromTheAddress() {
        let driver = mapped()
        #expect(driver.sockets == [IPv4Address(10, 2, 0, 1)])
        #expect(driver.sent == requests(suggested: 51413), "both requests in one go, before any answer")
        #expect(driver.observations == [Port(40000)])
        #expect(driver.session.nextDeadline == start + .seconds(45))
        #expect(driver.session.leaseExpiry == start + .seconds(60))
    }

    /// The gateway's public address (issue 25: the address peers must reach) is asked once a
    /// mapping is granted, alone, and asked again only when unanswered, on a new tunnel or after
    /// the gateway restarted; an address nobody asked for, or one refused, is never taken.
    @Test func thePublicAddressIsAskedAfterTheMappingUntilAnswered() {
        func addressReply(_ result: UInt16 = 0, _ address: [UInt8] = [198, 51, 100, 7], epoch: UInt32 = 5000) -> [UInt8] {
            [0, 128] + NATPMP.bigEndian(result) + NATPMP.bigEndian(epoch) + address
        }
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.addressRequests == 0, "not beside the mapping requests")
        driver.feed(.datagramReceived(addressReply()))
        #expect(driver.publicAddresses.isEmpty, "an answer to no question")
        driver.answer(port: 40000)
        #expect(driver.addressRequests == 1)
        driver.feed(.datagramReceived(addressReply(3)))
        #expect(driver.publicAddresses.isEmpty && driver.session.publicAddress == nil, "a network failure says no address")
        driver.collect()
        driver.answer(port: 40000)
        driver.collect()
        #expect(driver.addressRequests == 2, "asked again at the renewal, as it was not answered")
        driver.feed(.datagramReceived(addressReply(0, [198, 51, 100, 7], epoch: 5045)))
        #expect(driver.publicAddresses == [IPv4Address(198, 51, 100, 7)])
        #expect(driver.session.publicAddress == IPv4Address(198, 51, 100, 7))
        driver.feed(.datagramReceived(addressReply(0, [203, 0, 113, 9], epoch: 5045)))
        #expect(driver.publicAddresses.count == 1, "one answer per question")
        driver.advance(to: driver.session.nextDeadline!)
        driver.answer(port: 40000)
        driver.collect()
        #expect(driver.addressRequests == 2, "known: not asked at each renewal")
        driver.feed(.tunnelUp(Tunnel(interface: "wg0", index: 8, address: IPv4Address(10, 2, 0, 3), gateway: IPv4Address(10, 2, 0, 1), gatewayRule: .lastByteOne)))
        #expect(driver.session.publicAddress == nil, "another tunnel may leave from another address")
        driver.answer(port: 40000)
        #expect(driver.addressRequests == 3)
    }

    @Test(arguments: [NATPMP.MappingProtocol.udp, .tcp])
    func oneAnswerAloneKeepsTheCycleOpenAndOnlyTheOtherRequestIsSentAgain(first: NATPMP.MappingProtocol) {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000, only: first)
        #expect(driver.observations.isEmpty, "no port until both are answered")
        #expect(driver.session.nextDeadline == start + .milliseconds(250), "the retransmission still stands")
        driver.answer(port: 40000, only: first)
        #expect(driver.logged("ignored an answer to another question"), "a second answer to the same question")
        driver.advance(to: start + .milliseconds(250))
        let other: NATPMP.MappingProtocol = first == .udp ? .tcp : .udp
        #expect(driver.sent.dropFirst(2) == [NATPMP.mappingRequest(other, internalPort: 51413, suggestedExternalPort: 51413, lifetime: 60)])
        driver.answer(port: 40000)
        #expect(driver.observations == [Port(40000)])
        #expect(driver.session.nextDeadline == driver.now + .seconds(45))
    }

    /// Each mapping says why its port may differ from the last: the first of the session, a
    /// renewal, a tunnel that came back, a lease that ran out while the machine slept or the
    /// gateway was silent, a gateway that restarted.
    @Test func eachMappingSaysWhyItsPortMayDiffer() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        driver.answer(port: 40001)
        driver.collect()
        driver.feed(.linkDown("wg0 is down"))
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40002)
        // Suspended for ten minutes: the renewal comes long after the lease ended.
        driver.advance(to: driver.now + .seconds(600))
        driver.answer(port: 40003)
        // The gateway goes silent past the lease, then answers.
        driver.advance(to: driver.session.nextDeadline!)
        while driver.session.port != nil { driver.advance(to: driver.session.nextDeadline!) }
        driver.answer(port: 40004)
        // The gateway restarts: an epoch that went back, and a mapping made again at once.
        driver.advance(to: driver.session.nextDeadline!)
        driver.answer(port: 40004, epoch: 3, only: .udp)
        if !driver.listening { driver.collect() }
        driver.answer(port: 40005, epoch: 3)
        let expected: [(UInt16?, ChangeReason)] = [(40000, .started), (40001, .renewedToNewPort), (nil, .tunnelRecreated),
                                                   (40002, .tunnelRecreated), (40003, .leaseLapsed), (nil, .leaseLapsed),
                                                   (40004, .leaseLapsed), (40005, .gatewayRestarted)]
        #expect(driver.reasons.map { "\($0.port.map { "\($0)" } ?? "none") \($0.reason)" }
                == expected.map { "\($0.0.map { "\($0)" } ?? "none") \($0.1)" }, "\(driver.logs)")
    }

    @Test func renewalsKeepTheInternalPortAndSuggestTheMappedOne() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        #expect(Array(driver.sent.suffix(2)) == requests(suggested: 40000))
        driver.answer(port: 40000, epoch: 5045)
        driver.collect()
        #expect(driver.observations == [Port(40000), Port(40000)], "each renewal refreshes the lease")
        #expect(driver.session.nextDeadline == driver.now + .seconds(45))
    }

    /// The first mapping measured the round trip (0 here); a renewal leaves its answers queued
    /// and reads both at twice that + 20 ms, in the wake-up of that deadline.
    @Test func aRenewalCollectsBothAnswersInOneGo() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        #expect(!driver.listening)
        #expect(driver.session.nextDeadline == start + .seconds(45) + .milliseconds(20))
        driver.answer(port: 40000)
        #expect(driver.observations == [Port(40000)], "queued, not read yet")
        driver.collect()
        #expect(driver.observations == [Port(40000), Port(40000)])
        #expect(driver.listening)
        #expect(driver.session.nextDeadline == driver.now + .seconds(45))
    }

    @Test func answersThatAreNotAllInAtTheCollectionAreWaitedForAndTheRoundTripMeasuredAgain() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        driver.answer(port: 40000, only: .udp)
        driver.collect()
        #expect(driver.listening && driver.observations == [Port(40000)])
        #expect(driver.session.nextDeadline == start + .seconds(45) + .milliseconds(250), "the TCP retransmission stands")
        driver.now = start + .seconds(45) + .milliseconds(30)
        driver.answer(port: 40000)
        #expect(driver.observations == [Port(40000), Port(40000)])
        driver.advance(to: driver.session.nextDeadline!)
        #expect(driver.listening, "the next renewal listens as the answers come")
        driver.now = driver.now + .milliseconds(30)
        driver.answer(port: 40000)
        driver.advance(to: driver.session.nextDeadline!)
        #expect(!driver.listening && driver.session.nextDeadline == driver.now + .milliseconds(80), "twice 30 ms, + 20 ms")
    }

    @Test func aShortGrantedLifetimeIsRenewedEarlier() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 40000, lifetime: 30, only: .udp)
        driver.answer(port: 40000, lifetime: 20, only: .tcp)
        #expect(driver.session.nextDeadline == start + .seconds(15), "3/4 of the shorter of the two lifetimes")
        #expect(driver.session.leaseExpiry == start + .seconds(20))
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
        #expect(waits == [.milliseconds(20), .milliseconds(230), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(7.25)],
                "nothing to collect, then retransmissions; the last wait ends exactly at the lease expiry")
        #expect(driver.sent.count == 2 + 2 * 7, "the renewal, five retransmissions and the first try after the lapse, each of both")
        #expect(driver.observations.last == .some(nil))
        #expect(driver.logged("the lease ran out with no answer from the gateway 10.2.0.1; port 40000 is no longer forwarded"))
        // It keeps asking, now for a new mapping; an answer brings the port back.
        driver.answer(port: 40000)
        #expect(driver.observations.last == Port(40000))
        #expect(driver.logged("the NAT-PMP gateway answers again"))
    }

    @Test func aFreshMappingGivesUpAfterItsAttemptsAndRetriesLater() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings(attempts: 4, retryDelay: .seconds(10))), now: start)
        driver.feed(.tunnelUp(tunnel))
        for _ in 0..<4 { driver.advance(to: driver.session.nextDeadline!) }
        #expect(driver.sent.count == 8, "four tries, each of both")
        #expect(driver.failures == [1])
        #expect(driver.logged("no answer from the NAT-PMP gateway 10.2.0.1 after 4 tries"))
        #expect(driver.session.nextDeadline == driver.now + .seconds(10))
    }

    @Test func anEpochThatGoesBackMeansTheGatewayLostStateAndIsMappedAtOnce() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        let before = driver.sent.count
        driver.answer(port: 40000, epoch: 3, only: .udp)
        driver.collect()
        #expect(driver.logged("the gateway lost its mappings (its epoch went from 5000 to 3)"))
        #expect(Array(driver.sent.dropFirst(before)) == requests(suggested: 40000), "a new UDP and TCP request right away")
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
        driver.collect()
        #expect(driver.logged("the gateway lost its mappings"))
    }

    @Test func anEpochThatAdvancesWithTheClockIsFine() {
        var driver = mapped()
        driver.advance(to: start + .seconds(45))
        driver.answer(port: 40000, epoch: 5044)
        driver.collect()
        #expect(!driver.logged("lost its mappings"))
    }

    /// A suspend, as the loop's CLOCK_BOOTTIME sees it: time jumps by hours at once. The
    /// renewal is due at once (one request, not a burst of retransmissions); a gateway whose
    /// epoch ran on through the suspend kept its state; one whose epoch restarted lost it.
    @Test(arguments: [true, false])
    func afterASuspendOneRenewalGoesOutAndTheEpochTellsWhetherTheGatewayForgot(gatewayRestarted: Bool) {
        var driver = mapped()
        let asleep = Duration.seconds(3 * 3600)
        let sent = driver.sent.count
        driver.advance(to: start + asleep)
        #expect(driver.sent.count == sent + 2, "one renewal (UDP and TCP) at once on waking")
        let epoch: UInt32 = gatewayRestarted ? 12 : 5000 + UInt32(asleep.components.seconds)
        driver.answer(port: gatewayRestarted ? 40007 : 40000, epoch: epoch)
        #expect(driver.logged("the gateway lost its mappings") == gatewayRestarted)
        if gatewayRestarted { driver.answer(port: 40007, epoch: epoch) }
        #expect(driver.observations.last == Port(gatewayRestarted ? 40007 : 40000))
    }

    @Test func differentUDPAndTCPPortsWarnAndTCPWins() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 42000, only: .tcp)
        driver.answer(port: 41000, only: .udp)
        #expect(driver.observations == [Port(42000)])
        #expect(driver.logged("the gateway gave UDP port 41000 but TCP port 42000; using the TCP port"))
    }

    @Test func errorsAndRefusalsAreNamedAndRetriedLater() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.tunnelUp(tunnel))
        driver.answer(port: 0, lifetime: 0, result: 2)
        #expect(driver.logged("refused the UDP mapping: not authorized or refused (2)"))
        #expect(driver.failures == [1], "one failed cycle; the TCP refusal after it is not another")
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
        driver.feed(.tunnelUp(tunnel))
        driver.feed(.datagramReceived([0, 129, 0]))
        driver.feed(.datagramReceived([0, 128, 0, 0, 0, 0, 0, 5, 198, 51, 100, 7]))
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
        driver.feed(.tunnelUp(tunnel))
        #expect(Array(driver.sent.suffix(2)) == requests(suggested: 40000))
    }

    @Test func zeroInternalPortOnlyWhenAskedFor() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings(zeroInternalPort: true)), now: start)
        driver.feed(.preferredPort(Port(51413)!))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent == requests(internalPort: 0, suggested: 0))
        var automatic = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        automatic.feed(.tunnelUp(tunnel))
        #expect(automatic.sent.last.map { UInt16($0[4]) << 8 | UInt16($0[5]) }.map { $0 >= 49152 } == true,
                "with nothing known, a random high port, never 0")
    }

    @Test func theInternalPortOfAnEarlierRunIsReused() {
        var driver = Driver(session: NATPMPSession(settings: NATPMPSettings()), now: start)
        driver.feed(.preferredPort(Port(40000)!))
        driver.feed(.previousInternalPort(51413))
        driver.feed(.tunnelUp(tunnel))
        #expect(driver.sent == requests(suggested: 51413))
        var configured = Driver(session: NATPMPSession(settings: NATPMPSettings(internalPort: 6881)), now: start)
        configured.feed(.previousInternalPort(51413))
        configured.feed(.tunnelUp(tunnel))
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
