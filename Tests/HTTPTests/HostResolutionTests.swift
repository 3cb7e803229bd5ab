import Foundation
@testable import HTTP
import Reactor
import TestSupport
import Testing

/// Names resolved in the loop: a hosts file the test writes, Debian's dnsmasq on a loopback
/// address, and a name server that never answers while the loop goes on serving.
@Suite(.enabled(if: DNSMasq.available, "needs dnsmasq and root (port 53 on 127.53.x.y)"))
final class HostResolutionTests {
    let loop: EventLoop
    let server: FakeHTTPServer
    let directory: String

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        server = try FakeHTTPServer(loop: loop) { request in
            .answer(HTTPResponse(status: 200, body: Array("Host: \(request.headers["Host"] ?? "")".utf8)))
        }
        directory = makeTemporaryDirectory("resolver")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A resolver reading the test's hosts file and resolv.conf.
    func resolver(hosts: String = "", nameServers: [String], search: String = "", timeout: Duration? = nil) throws -> ResolverConfiguration {
        try hosts.write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
        try (nameServers.map { "nameserver \($0)\n" }.joined() + search).write(toFile: "\(directory)/resolv.conf", atomically: true, encoding: .utf8)
        return ResolverConfiguration(hostsPath: "\(directory)/hosts", resolvConfPath: "\(directory)/resolv.conf", timeout: timeout)
    }

    func client(_ host: String, _ resolver: ResolverConfiguration) throws -> HTTPClient {
        HTTPClient(loop: loop, name: "test.http", url: try HTTPURL(parsing: "http://\(host):\(server.port)/base/"),
                   connectTimeout: .seconds(2), responseTimeout: .seconds(5), resolver: resolver)
    }

    func get(_ client: HTTPClient, seconds: Double = 10) throws -> String {
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: client.url.target("/api"), headers: ["Host": client.url.hostHeader])) { result = $0 }
        try runUntil(loop, seconds: seconds) { result != nil }
        switch try #require(result) {
        case .success(let response): return response.text
        case .failure(let error): return error.description
        }
    }

    @Test func aNameIsAskedOfTheNameServerOnceAndKept() throws {
        let dns = try DNSMasq(records: ["nas.test": ["127.0.0.1", "::1"]])
        let client = try client("nas.test", try resolver(nameServers: [dns.address]))
        #expect(try get(client) == "Host: nas.test:\(server.port)")
        #expect(server.requests.last?.target == "/base/api")
        client.closeIdleConnection()
        #expect(try get(client) == "Host: nas.test:\(server.port)")
        #expect(dns.log.components(separatedBy: "query[A] nas.test").count - 1 == 1, "resolved once, not per request")
        #expect(try get(try self.client("unknown.test", try resolver(nameServers: [dns.address])))
            == "cannot resolve \"unknown.test\": \(dns.address) answered REFUSED")
    }

    @Test func aShortNameIsAskedWithTheSearchDomain() throws {
        let dns = try DNSMasq(records: ["nas.home.test": ["127.0.0.1"]])
        let client = try client("nas", try resolver(nameServers: [dns.address], search: "search home.test\n"))
        #expect(try get(client) == "Host: nas:\(server.port)", "the Host header keeps the name as written")
        #expect(dns.log.contains("query[A] nas.home.test"))
    }

    @Test func theHostsFileComesFirstAndEachAddressIsTriedInTurn() throws {
        let silent = try SilentNameServer()
        // Nothing listens on 127.0.0.3: refused there, answered on 127.0.0.1; no DNS asked.
        let client = try client("multi.test", try resolver(hosts: "127.0.0.3 multi.test\n127.0.0.1 other multi.test\n", nameServers: [silent.address]))
        #expect(try get(client, seconds: 2) == "Host: multi.test:\(server.port)")
        #expect(client.connectionsOpened == 2)
    }

    @Test func aFailedConnectionMakesTheNameLookedUpAgain() throws {
        let silent = try SilentNameServer()
        let configuration = try resolver(hosts: "127.0.0.3 moved.test\n", nameServers: [silent.address])
        let client = try client("moved.test", configuration)
        #expect(try get(client, seconds: 3) == "connection refused")
        try "127.0.0.1 moved.test\n".write(toFile: configuration.hostsPath, atomically: true, encoding: .utf8)
        #expect(try get(client, seconds: 3) == "Host: moved.test:\(server.port)")
    }

    @Test func aDeadNameServerDoesNotHoldTheLoop() throws {
        let silent = try SilentNameServer()
        let dns = try DNSMasq(records: ["nas.test": ["127.0.0.1"]])
        let named = try client("nas.test", try resolver(nameServers: [silent.address, dns.address], timeout: .seconds(1)))
        let other = try client("127.0.0.1", .system)
        // What happened, in order: the other client's answers and a timer, all before the name.
        var events: [String] = []
        var namedAnswer: String?
        named.send(HTTPRequest(method: "GET", target: "/named", headers: ["Host": named.url.hostHeader])) { result in
            namedAnswer = (try? result.get().text) ?? "\(result)"
            events.append("named")
        }
        let timer = loop.makeTimer(name: "test.tick") { events.append("timer") }
        timer.schedule(after: .milliseconds(200))
        for _ in 0..<5 {
            #expect(try get(other) == "Host: 127.0.0.1:\(server.port)")
            events.append("other")
        }
        try runUntil(loop, seconds: 5) { namedAnswer != nil }
        #expect(namedAnswer == "Host: nas.test:\(server.port)", "the second name server answered, after the silent one's timeout")
        #expect(events.filter { $0 == "other" }.count == 5 && events.last == "named" && events.contains("timer"),
                "the other client was served and the timer fired while the name waited: \(events)")
    }

    /// A response with the query's ID to `question` (the query's own when nil) with A records
    /// (owner, address) and CNAMEs (owner, target).
    static func response(to query: [UInt8], code: UInt8 = 0, question: String? = nil, truncated: Bool = false,
                         _ records: [(owner: String, type: UInt16, data: [UInt8])] = []) -> [UInt8] {
        var bytes = Array(query[0..<2]) + [truncated ? 0x83 : 0x81, 0x80 | code, 0, 1, 0, UInt8(records.count), 0, 0, 0, 0]
        let asked = NameLookupTests.question(of: query)
        bytes += question.map { NameLookupTests.encoded($0) + asked.suffix(4) } ?? asked
        for record in records {
            bytes += NameLookupTests.encoded(record.owner) + [0, UInt8(record.type), 0, 1, 0, 0, 0, 60, 0, UInt8(record.data.count)] + record.data
        }
        return bytes
    }

    @Test func anAnswerForAnotherNameIsNotFollowed() throws {
        // Each A query gets two answers with its ID: one to another question, then one to the
        // question that lists a record of another name first, then the alias of nas.test and
        // its address, 127.0.0.1. 127.0.0.9 is where the login would go: nothing listens there.
        let hostile = try ScriptedNameServer(loop: loop) { query in
            guard NameLookupTests.type(of: query) == 1 else { return [Self.response(to: query)] }
            return [
                Self.response(to: query, question: "evil.test", [("evil.test", 1, [127, 0, 0, 9])]),
                Self.response(to: query, [("evil.test", 1, [127, 0, 0, 9]), ("nas.test", 5, NameLookupTests.encoded("alias.test")),
                                          ("alias.test", 1, [127, 0, 0, 1])]),
            ]
        }
        let client = try client("nas.test", try resolver(nameServers: [hostile.address], timeout: .seconds(1)))
        #expect(try get(client, seconds: 5) == "Host: nas.test:\(server.port)")
        #expect(client.connectionsOpened == 1 && server.requests.count == 1, "no connection to the foreign address first")
    }

    @Test func everyQueryIDIsDrawnAtRandom() throws {
        let dns = try ScriptedNameServer(loop: loop) { query in
            let name = NameLookupTests.encoded("nas.d.test")
            let asked = Array(NameLookupTests.question(of: query).dropLast(4))
            return [Self.response(to: query, code: asked == name ? 0 : 3, asked == name && NameLookupTests.type(of: query) == 1 ? [("nas.d.test", 1, [127, 0, 0, 1])] : [])]
        }
        let client = try client("nas", try resolver(nameServers: [dns.address], search: "search a.test b.test c.test d.test\n", timeout: .seconds(1)))
        #expect(try get(client, seconds: 5) == "Host: nas:\(server.port)")
        let ids = dns.queries.map { UInt16($0[0]) << 8 | UInt16($0[1]) }
        #expect(ids.count == 8)
        #expect(zip(ids, ids.dropFirst()).contains { $1 != $0 &+ 1 }, "not a counter from one seed: \(ids)")
    }

    @Test func anAnswerBiggerThanAnEthernetFrameIsReadWhole() throws {
        // 120 addresses: about 2,900 bytes in one datagram, as a server that ignores the payload
        // size offered sends them.
        let records = [("nas.test", UInt16(1), [UInt8]([127, 0, 0, 1]))] + (1...119).map { ("nas.test", UInt16(1), [UInt8]([127, 0, 1, UInt8($0)])) }
        let dns = try ScriptedNameServer(loop: loop) { query in
            [Self.response(to: query, NameLookupTests.type(of: query) == 1 ? records : [])]
        }
        let client = try client("nas.test", try resolver(nameServers: [dns.address], timeout: .seconds(1)))
        #expect(try get(client, seconds: 5) == "Host: nas.test:\(server.port)")
        #expect(dns.queries.allSatisfy { $0.suffix(11) == [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0] }, "EDNS0 offers 1232 bytes")
    }

    @Test func aTruncatedAnswerIsAskedAgainOverTCP() throws {
        let dns = try ScriptedNameServer(loop: loop, answers: { query in
            [Self.response(to: query, truncated: NameLookupTests.type(of: query) == 1)]
        }, streamAnswers: { query in
            Self.response(to: query, [("nas.test", 1, [127, 0, 0, 1])])
        })
        let client = try client("nas.test", try resolver(nameServers: [dns.address], timeout: .seconds(1)))
        #expect(try get(client, seconds: 5) == "Host: nas.test:\(server.port)")
        #expect(dns.streamQueries.map { NameLookupTests.type(of: $0) } == [1], "the A query, once")
    }

    @Test func aFloodIsReadAFewDatagramsAWakeupAndTheLookupStillEnds() throws {
        // 100 datagrams with the A query's ID and another question, then the answers.
        let dns = try ScriptedNameServer(loop: loop) { query in
            guard NameLookupTests.type(of: query) == 1 else { return [Self.response(to: query)] }
            return Array(repeating: Self.response(to: query, question: "flood.test"), count: 100) + [Self.response(to: query, [("nas.test", 1, [127, 0, 0, 1])])]
        }
        let resolver = HostResolver(loop: loop, name: "test.dns", configuration: try resolver(nameServers: [dns.address], timeout: .seconds(5)))
        var result: Result<[SocketAddress], NameLookup.Failure>?
        resolver.resolve("nas.test", port: 80) { result = $0 }
        var wakeups = 0
        while result == nil && wakeups < 50 {
            try loop.runOnce(timeout: .milliseconds(100))
            wakeups += 1
        }
        #expect(result == .success([.v4(IPv4Address(127, 0, 0, 1), port: 80)]))
        let cap = HostResolver.datagramsPerWakeup
        #expect(wakeups == 1 + (102 + cap - 1) / cap, "one wakeup for the server to send the 102 datagrams, then \(cap) read in each")
    }
}
