@testable import HTTP
import Reactor
import Testing

/// The resolver's pure parts: DNS messages, the hosts file, resolv.conf and the lookup machine,
/// on byte fixtures and an explicit clock.
@Suite struct NameLookupTests {
    let start = Instant(nanoseconds: 1_000_000_000)
    let first = SocketAddress.v4(IPv4Address(10, 0, 0, 1), port: 53)
    let second = SocketAddress.v4(IPv4Address(10, 0, 0, 2), port: 53)

    static func bytes(_ hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            result.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return result
    }

    /// dnsmasq 2.90's answer to AAAA nas.test (id 0x1234): ::1, its name a compression pointer.
    static let dnsmasqAAAA = bytes("123485800001000100000000036e6173047465737400001c0001c00c001c000100000000001000000000000000000000000000000001")
    /// dnsmasq's answer to A other.test with no upstream: REFUSED.
    static let dnsmasqRefused = bytes("123581850001000000000000056f7468657204746573740000010001")

    /// The question of a query (its name, type and class): after the header, before the OPT
    /// record (11 bytes) that ends it when the header counts an additional record.
    static func question(of query: [UInt8]) -> [UInt8] {
        Array(query[12..<(query.count - (query[11] == 1 ? 11 : 0))])
    }

    /// The record type a query asks for.
    static func type(of query: [UInt8]) -> UInt16 {
        let question = question(of: query)
        return UInt16(question[question.count - 4]) << 8 | UInt16(question[question.count - 3])
    }

    /// An answer with `addresses` (4 or 16 bytes each) to the query `query`.
    static func answer(to query: [UInt8], code: UInt8 = 0, truncated: Bool = false, _ addresses: [[UInt8]]) -> [UInt8] {
        var bytes = Array(query[0..<2]) + [truncated ? 0x83 : 0x81, 0x80 | code, 0, 1, 0, UInt8(addresses.count), 0, 0, 0, 0] + question(of: query)
        for address in addresses {
            bytes += [0xC0, 0x0C, 0, address.count == 4 ? 1 : 28, 0, 1, 0, 0, 0, 60, 0, UInt8(address.count)] + address
        }
        return bytes
    }

    func lookup(_ servers: [SocketAddress], attempts: Int = 1, names: [String] = ["nas.test"], ids: [UInt16] = Array(0x4000..<0x4100)) -> NameLookup {
        var next = ids.makeIterator()
        return NameLookup(names: names, port: 8080, nameServers: .init(servers: servers, timeout: .seconds(2), attempts: attempts), drawID: { next.next()! })
    }

    /// A name in a message: its labels, uncompressed.
    static func encoded(_ name: String) -> [UInt8] {
        name.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }

    /// A response with ID `id` to the question `name`, `type`, `class`, and `records` (owner,
    /// type, data), every name written out.
    static func response(id: UInt16, question name: String, type: UInt16 = 1, class recordClass: UInt16 = 1,
                         _ records: [(owner: String, type: UInt16, data: [UInt8])]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x81, 0x80, 0, 1, 0, UInt8(records.count), 0, 0, 0, 0]
        bytes += encoded(name) + [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(recordClass >> 8), UInt8(recordClass & 0xFF)]
        for record in records {
            bytes += encoded(record.owner) + [0, UInt8(record.type), 0, 1, 0, 0, 0, 60, 0, UInt8(record.data.count)] + record.data
        }
        return bytes
    }

    @Test func aQueryIsRecursiveWithOneQuestion() {
        #expect(DNSMessage.query(id: 0x1234, name: "nas.test", type: .aaaa) == Self.bytes("123401000001000000000001036e6173047465737400001c000100002904d0000000000000"),
                "with EDNS0's OPT record: a UDP payload of 1232 bytes")
        #expect(DNSMessage.query(id: 1, name: "a..b", type: .a) == nil)
        #expect(DNSMessage.query(id: 1, name: String(repeating: "x", count: 64), type: .a) == nil)
    }

    @Test func answersAreReadWithCompressedNames() throws {
        let answer = try DNSMessage.parse(Self.dnsmasqAAAA, name: "nas.test", type: .aaaa)
        #expect(answer == DNSMessage.Answer(id: 0x1234, responseCode: 0, addresses: [[UInt8](repeating: 0, count: 15) + [1]]))
        #expect(try DNSMessage.parse(Self.dnsmasqRefused, name: "other.test", type: .a).responseCode == 5)
        #expect(throws: DNSMessage.ParseError.self) { try DNSMessage.parse(Array(Self.dnsmasqAAAA.dropLast(3)), name: "nas.test", type: .aaaa) }
    }

    @Test func anAnswerToAnotherQuestionIsNoAnswer() throws {
        let error = DNSMessage.ParseError(description: "an answer to another question")
        #expect(throws: error) { try DNSMessage.parse(Self.dnsmasqAAAA, name: "evil.test", type: .aaaa) }
        #expect(throws: error) { try DNSMessage.parse(Self.dnsmasqAAAA, name: "nas.test", type: .a) }
        #expect(throws: error) { try DNSMessage.parse(Self.response(id: 1, question: "nas.test", class: 3, []), name: "nas.test", type: .a) }
        #expect(throws: error) { try DNSMessage.parse(Self.response(id: 1, question: "nas.test.evil", []), name: "nas.test", type: .a) }
        let upper = Self.response(id: 1, question: "NaS.TeSt", [("nas.TEST", 1, [10, 1, 1, 1])])
        #expect(try DNSMessage.parse(upper, name: "nas.test.", type: .a).addresses == [[10, 1, 1, 1]], "names compare without case")
    }

    @Test func onlyTheRecordsOfTheNameAndItsAliasChainCount() throws {
        let answer = Self.response(id: 7, question: "nas.test", [
            ("evil.test", 1, [10, 6, 6, 6]),
            ("alias.test", 1, [10, 2, 2, 2]),
            ("nas.test", 5, Self.encoded("Alias.test")),
            ("nas.test", 1, [10, 1, 1, 1]),
            ("other.test", 5, Self.encoded("evil.test")),
            ("alias.test", 5, Self.encoded("nas.test")),
        ])
        #expect(try DNSMessage.parse(answer, name: "nas.test", type: .a).addresses == [[10, 2, 2, 2], [10, 1, 1, 1]],
                "the alias listed after its record counts, a record of a name nobody pointed to does not; a CNAME loop ends")
        let foreign = Self.response(id: 7, question: "nas.test", [("evil.test", 1, [10, 6, 6, 6])])
        #expect(try DNSMessage.parse(foreign, name: "nas.test", type: .a).addresses.isEmpty)
    }

    @Test func aLookupTakesNoAnswerToAnotherQuestionAndNoForeignRecord() {
        var machine = lookup([first], ids: [0x9A3C, 0x17F2])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        #expect(queries.map { UInt16($0[0]) << 8 | UInt16($0[1]) } == [0x9A3C, 0x17F2], "each query's ID is drawn")
        let spoofed = Self.response(id: 0x9A3C, question: "evil.test", [("evil.test", 1, [10, 6, 6, 6])])
        #expect(machine.handle(.answerReceived(spoofed), now: start).isEmpty, "the ID matches, the question does not")
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], [[10, 1, 1, 1]])), now: start).isEmpty, "the real answer still counts")
        let foreign = Self.response(id: 0x17F2, question: "nas.test", type: 28, [("evil.test", 28, [0xFD] + [UInt8](repeating: 6, count: 15))])
        #expect(machine.handle(.answerReceived(foreign), now: start) == [.finished(.success([.v4(IPv4Address(10, 1, 1, 1), port: 8080)]))])
    }

    @Test func aTruncatedAnswerIsAskedAgainOverTCPWithAFreshTimeout() {
        var machine = lookup([first])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        let later = start + .seconds(1)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], truncated: true, [])), now: later)
            == [.askOverTCP(server: first, query: queries[0])])
        #expect(machine.nextDeadline == later + .seconds(2))
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], [])), now: later).isEmpty, "the A answer is still due")
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], [[10, 1, 1, 1]])), now: later)
            == [.finished(.success([.v4(IPv4Address(10, 1, 1, 1), port: 8080)]))])
    }

    @Test func overTCPATruncatedAnswerIsTakenAsItIsAndAFailedStreamMovesOn() {
        var machine = lookup([first, second])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        #expect(machine.handle(.streamFailed, now: start).isEmpty, "no TCP asked: nothing to fail")
        _ = machine.handle(.answerReceived(Self.answer(to: queries[0], truncated: true, [])), now: start)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], truncated: true, [])), now: start)
            == [.askOverTCP(server: first, query: queries[1])])
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], truncated: true, [])), now: start).isEmpty,
                "asked once over TCP: the second truncated AAAA answer is an answer with no address")
        guard case .ask(let next, _) = machine.handle(.streamFailed, now: start).first else { Issue.record("not moved on"); return }
        #expect(next == second)
    }

    @Test func theTwoQueriesOfARoundNeverShareAnID() {
        var machine = lookup([first], ids: [5, 5, 5, 9])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        #expect(queries.map { UInt16($0[0]) << 8 | UInt16($0[1]) } == [5, 9])
    }

    @Test func theHostsFileAndResolvConfAreReadAsGlibcDoes() {
        let hosts = "127.0.0.1 localhost\n# 10.9.9.9 nas.test\n192.168.1.5\tNAS.test nas # the NAS\nfd00::5 nas.test\n"
        #expect(ResolverConfiguration.addresses(of: "nas.test", inHosts: hosts, port: 80).map(\.description) == ["192.168.1.5:80", "[fd00::5]:80"])
        #expect(ResolverConfiguration.addresses(of: "other", inHosts: hosts, port: 80).isEmpty)
        let servers = ResolverConfiguration.nameServers(inResolvConf: "search lan\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver ::1\noptions timeout:1 attempts:3\n")
        #expect(servers.servers.map(\.description) == ["10.0.0.1:53", "[::1]:53"])
        #expect(servers.timeout == .seconds(1) && servers.attempts == 3)
        #expect(servers.search == ["lan"] && servers.ndots == 1)
        #expect(ResolverConfiguration.nameServers(inResolvConf: "").servers == [.v4(IPv4Address(127, 0, 0, 1), port: 53)])
    }

    @Test func searchDomainsComeFirstForShortNamesAsGlibcOrdersThem() {
        let servers = ResolverConfiguration.nameServers(inResolvConf: "domain old\nsearch fritz.box lan.\noptions ndots:2\n")
        #expect(servers.candidates(for: "nas") == ["nas.fritz.box", "nas.lan", "nas"])
        #expect(servers.candidates(for: "nas.home") == ["nas.home.fritz.box", "nas.home.lan", "nas.home"])
        #expect(servers.candidates(for: "qbt.home.example") == ["qbt.home.example", "qbt.home.example.fritz.box", "qbt.home.example.lan"])
        #expect(servers.candidates(for: "nas.") == ["nas"])
    }

    @Test func anUnknownNameMovesOnToTheNextCandidate() {
        var machine = lookup([first], names: ["nas.lan", "nas"])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        guard case .ask(let server, let again) = machine.handle(.answerReceived(Self.answer(to: queries[0], code: 3, [])), now: start).first else {
            Issue.record("the next name was not asked")
            return
        }
        #expect(server == first && machine.name == "nas")
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], [[10, 9, 9, 9]])), now: start).isEmpty, "a late answer for the first name")
        _ = machine.handle(.answerReceived(Self.answer(to: again[1], [])), now: start)
        #expect(machine.handle(.answerReceived(Self.answer(to: again[0], code: 3, [])), now: start)
            == [.finished(.failure(NameLookup.Failure(description: "no such host name (10.0.0.1 answered NXDOMAIN for nas.lan, nas)")))])
    }

    @Test func aAndAAAAAreAskedTogetherAndIPv4ComesFirst() throws {
        var machine = lookup([first])
        guard case .ask(let server, let queries) = machine.handle(.start, now: start).first else { Issue.record("no query"); return }
        #expect(server == first && queries.count == 2)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], [[0xFD] + [UInt8](repeating: 0, count: 14) + [5]])), now: start).isEmpty)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], [[192, 168, 1, 5]])), now: start)
            == [.finished(.success([.v4(IPv4Address(192, 168, 1, 5), port: 8080), SocketAddress(numericHost: "fd00::5", port: 8080)!]))])
    }

    @Test func aSilentServerIsLeftForTheNextAfterItsTimeout() {
        var machine = lookup([first, second])
        _ = machine.handle(.start, now: start)
        #expect(machine.handle(.deadlineReached, now: start + .seconds(1)).isEmpty, "not yet")
        guard case .ask(let server, let queries) = machine.handle(.deadlineReached, now: start + .seconds(2)).first else {
            Issue.record("the second server was not asked")
            return
        }
        #expect(server == second)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], [[10, 1, 1, 1]])), now: start + .seconds(2)).isEmpty)
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[1], [])), now: start + .seconds(2))
            == [.finished(.success([.v4(IPv4Address(10, 1, 1, 1), port: 8080)]))])
    }

    @Test func failuresSayWhatHappened() {
        var machine = lookup([first, second])
        guard case .ask(_, let queries) = machine.handle(.start, now: start).first else { return }
        #expect(machine.handle(.answerReceived(Self.answer(to: queries[0], code: 3, [])), now: start)
            == [.finished(.failure(NameLookup.Failure(description: "no such host name (10.0.0.1 answered NXDOMAIN)")))])

        machine = lookup([first, second])
        _ = machine.handle(.start, now: start)
        _ = machine.handle(.deadlineReached, now: start + .seconds(2))
        #expect(machine.handle(.deadlineReached, now: start + .seconds(4))
            == [.finished(.failure(NameLookup.Failure(description: "no answer in time from the name servers 10.0.0.1, 10.0.0.2")))])

        machine = lookup([first])
        guard case .ask(_, let asked) = machine.handle(.start, now: start).first else { return }
        #expect(machine.handle(.answerReceived(Self.answer(to: asked[1], code: 5, [])), now: start).isEmpty)
        #expect(machine.handle(.answerReceived(Self.answer(to: asked[0], code: 2, [])), now: start)
            == [.finished(.failure(NameLookup.Failure(description: "10.0.0.1 answered SERVFAIL")))])

        machine = lookup([first])
        _ = machine.handle(.start, now: start)
        #expect(machine.handle(.sendFailed("send: Operation not permitted (errno 1)"), now: start)
            == [.finished(.failure(NameLookup.Failure(description: "10.0.0.1 could not be asked: send: Operation not permitted (errno 1)")))],
                "a firewall's drop is not a refusal")

        machine = lookup([first])
        guard case .ask(_, let empty) = machine.handle(.start, now: start).first else { return }
        _ = machine.handle(.answerReceived(Self.answer(to: empty[1], [])), now: start)
        #expect(machine.handle(.answerReceived(Self.answer(to: empty[0], [])), now: start)
            == [.finished(.failure(NameLookup.Failure(description: "nas.test has no IPv4 or IPv6 address (none in 10.0.0.1's answer)")))])

        machine = lookup([first])
        guard case .ask(_, let refusedOne) = machine.handle(.start, now: start).first else { return }
        _ = machine.handle(.answerReceived(Self.answer(to: refusedOne[1], code: 5, [])), now: start)
        #expect(machine.handle(.answerReceived(Self.answer(to: refusedOne[0], [[10, 1, 1, 1]])), now: start)
            == [.finished(.success([.v4(IPv4Address(10, 1, 1, 1), port: 8080)]))], "AAAA refused, A answered: enough")
    }

    @Test func datagramsThatAreNotAnswersToThisLookupAreIgnored() {
        var machine = lookup([first])
        _ = machine.handle(.start, now: start)
        #expect(machine.handle(.answerReceived(Self.dnsmasqAAAA), now: start).isEmpty, "another ID")
        #expect(machine.handle(.answerReceived([1]), now: start).isEmpty)
        #expect(!machine.isFinished)
    }
}
