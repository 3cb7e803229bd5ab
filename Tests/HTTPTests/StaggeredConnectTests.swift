import Foundation
@testable import HTTP
import Reactor
import TestSupport
import Testing

/// A name with addresses that never answer (listeners whose accept queue is full, on loopback)
/// and one that does, in a loop on a clock that moves only when told: the attempts are
/// staggered and counted exactly, the first to connect wins, and one deadline bounds them all.
@Suite final class StaggeredConnectTests {
    let clock = ManualClock()
    let loop: EventLoop
    let server: FakeHTTPServer
    let directory: String

    init() throws {
        loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        server = try FakeHTTPServer(loop: loop) { _ in .answer(HTTPResponse(status: 200, body: Array("answered".utf8))) }
        directory = makeTemporaryDirectory("staggered")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func address(_ last: UInt8) -> SocketAddress { .v4(IPv4Address(127, 0, 0, last), port: server.port) }

    /// A client for race.test, listed in the test's hosts file at `addresses` in that order.
    func client(_ addresses: [SocketAddress]) throws -> HTTPClient {
        try addresses.map { "\($0.hostText) race.test\n" }.joined().write(toFile: "\(directory)/hosts", atomically: true, encoding: .utf8)
        try "nameserver 127.0.0.1\n".write(toFile: "\(directory)/resolv.conf", atomically: true, encoding: .utf8)
        let resolver = ResolverConfiguration(hostsPath: "\(directory)/hosts", resolvConfPath: "\(directory)/resolv.conf")
        return HTTPClient(loop: loop, name: "test.http", url: try HTTPURL(parsing: "http://race.test:\(server.port)/"),
                          connectTimeout: .seconds(10), responseTimeout: .seconds(30), resolver: resolver)
    }

    /// Wakeups enough for what is due now on the loop's clock and on loopback to happen.
    func settle(_ done: () -> Bool = { false }) throws {
        for _ in 0..<50 where !done() {
            try loop.runOnce(timeout: .milliseconds(5))
        }
    }

    @Test func deadAddressesGetAStaggerEachAndTheFirstToConnectWins() throws {
        let dead = [try UnansweringListener(address(5)), try UnansweringListener(address(6))]
        let client = try client(dead.map(\.address) + [address(1)])
        let registered = loop.registrationCount
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/")) { result = $0 }
        try settle()
        #expect(client.connectionsOpened == 1 && result == nil, "the first address, still connecting")
        clock.advance(by: .milliseconds(250))
        try settle()
        #expect(client.connectionsOpened == 2 && result == nil, "250 ms later, the second")
        clock.advance(by: .milliseconds(250))
        try settle { result != nil }
        #expect(try #require(result).map(\.text) == .success("answered"))
        #expect(client.connectionsOpened == 3)
        #expect(client.peer == address(1))
        #expect(server.requests.count == 1)
        #expect(loop.registrationCount == registered + 2, "the two attempts still connecting were closed: the winner and the server's end are left")
    }

    @Test func aRefusedAddressGivesWayAtOnce() throws {
        // Nothing listens on 127.0.0.3: refused, and the next address is tried without a stagger.
        let client = try client([address(3), address(1)])
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/")) { result = $0 }
        try settle { result != nil }
        #expect(try #require(result).map(\.text) == .success("answered"), "the clock never moved")
        #expect(client.connectionsOpened == 2 && client.peer == address(1))
    }

    @Test func oneConnectDeadlineBoundsAllTheAddresses() throws {
        let dead = try (5...7).map { try UnansweringListener(address($0)) }
        let client = try client(dead.map(\.address))
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/")) { result = $0 }
        try settle()
        for _ in 0..<2 {
            clock.advance(by: .milliseconds(250))
            try settle()
        }
        #expect(client.connectionsOpened == 3 && result == nil)
        clock.advance(by: .milliseconds(9_499))
        try settle()
        #expect(result == nil, "a millisecond before the deadline")
        clock.advance(by: .milliseconds(1))
        try settle { result != nil }
        #expect(try #require(result).map(\.text) == .failure(.connect(.timedOut)), "10 s for the three, not 10 s each")
        #expect(client.connectionsOpened == 3)
    }
}
