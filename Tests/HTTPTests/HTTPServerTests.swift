import CLinux
import Glibc
import HTTP
@testable import HTTP
import Reactor
import TestSupport
import Testing

/// The server in a real loop, with clients that misbehave. The clients are raw, non-blocking
/// sockets driven from the same thread as the loop.
@Suite(.serialized) final class HTTPServerTests {
    let loop: EventLoop
    let server: HTTPServer

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        server = try HTTPServer(loop: loop, name: "metrics.http", address: .v4(IPv4Address(127, 0, 0, 1), port: 0),
                                limits: .init(maxConnections: 16, maxRequestBytes: 8192, idleTimeout: .milliseconds(300))) { request in
            HTTPResponse(status: request.path == "/metrics" ? 200 : 404, body: Array("path \(request.path)\n".utf8))
        }
    }

    func connect() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_NONBLOCK, 0)
        _ = server.address.withSockAddr { Glibc.connect(fd, $0, $1) }
        return fd
    }

    /// Sends a request and runs the loop until the answer is complete (or `seconds` pass).
    func request(_ text: String, seconds: Double = 5) throws -> HTTPResponse? {
        let fd = connect()
        defer { close(fd) }
        var sent = false
        var parser = HTTPResponseParser()
        var response: HTTPResponse?
        var buffer = [UInt8](repeating: 0, count: 65536)
        try runUntil(loop, seconds: seconds) {
            if !sent { sent = text.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } > 0 }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { response = try? parser.consume(Array(buffer[0..<count])) }
            if count == 0 { response = response ?? (try? parser.finish()) ?? nil }
            return response != nil
        }
        return response
    }

    @Test func answersAndCloses() throws {
        let response = try #require(try request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(response.status == 200)
        #expect(response.text == "path /metrics\n")
        #expect(response.keepAlive == false)
        #expect(try request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")?.status == 405)
        #expect(try request("NONSENSE\r\n\r\n")?.status == 400)
        #expect(server.openConnections == 0)
    }

    @Test func aClientThatHalfClosesAfterItsRequestIsAnswered() throws {
        let fd = connect()
        defer { close(fd) }
        var sent = false
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        try runUntil(loop, seconds: 5) {
            if !sent && "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".withCString({ send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }) > 0 {
                sent = true
                shutdown(fd, Int32(SHUT_WR))
            }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { answer += buffer[0..<count] }
            return count == 0
        }
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 200"), "\(String(decoding: answer, as: UTF8.self))")
        #expect(server.openConnections == 0)
    }

    @Test func idleConnectionsCannotLockOutAGoodClient() throws {
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<16 { idle.append(connect()) }
        try runUntil(loop, seconds: 2) { server.openConnections == 16 }
        #expect(server.openConnections == 16)
        #expect(try request("GET /metrics HTTP/1.1\r\n\r\n")?.status == 200, "the oldest idle one made room")
        #expect(server.evicted == 1)
        var byte: UInt8 = 0
        #expect(recv(idle[0], &byte, 1, 0) == 0, "the oldest idle connection was closed")
    }

    @Test func aClientThatNeverSendsIsClosedAfterTheIdleTimeout() throws {
        let silent = connect()
        defer { close(silent) }
        try runUntil(loop, seconds: 1) { server.openConnections == 1 }
        #expect(server.openConnections == 1)
        try runUntil(loop, seconds: 2) { server.openConnections == 0 }
        #expect(server.openConnections == 0)
        // The client's socket is non-blocking: wait for the close to arrive, then read it.
        var ready = pollfd(fd: silent, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 2000) == 1)
        var byte: UInt8 = 0
        #expect(recv(silent, &byte, 1, 0) == 0, "the server closed it (errno \(errno))")
    }

    @Test func aMegabyteRequestIsRefusedWithoutBufferingIt() throws {
        let fd = connect()
        defer { close(fd) }
        let megabyte = [UInt8](repeating: UInt8(ascii: "A"), count: 1 << 20)
        var offset = 0
        var answer: [UInt8] = []
        try runUntil(loop, seconds: 5) {
            if offset < megabyte.count {
                let count = megabyte[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if count > 0 { offset += count }
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { answer += buffer[0..<count] }
            return String(decoding: answer, as: UTF8.self).contains("request too large")
        }
        #expect(String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 431"))
        #expect(offset < megabyte.count || server.openConnections == 0, "it stopped reading long before a megabyte")
    }

    @Test func tenThousandConnectionsNeitherBlockNorGrowAndAGoodClientIsServed() throws {
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let wanted: rlim_t = 10_200
        if limit.rlim_cur < wanted { limit.rlim_cur = min(wanted, limit.rlim_max); setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) }
        let count = min(10_000, Int(limit.rlim_cur) - 200)
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        var peak = 0
        for index in 0..<count {
            let fd = connect()
            if fd >= 0 { clients.append(fd) }
            if index % 200 == 0 {
                try loop.runOnce(timeout: .zero)
                peak = max(peak, server.openConnections)
            }
        }
        try runUntil(loop, seconds: 2) { false }
        #expect(count >= 1000, "only \(count) descriptors could be opened")
        #expect(peak <= 16 && server.openConnections <= 16, "connections stay capped")
        // The oldest idle ones made room for the next (or, past the backlog, never got in).
        #expect(server.evicted > count / 2, "\(server.evicted) of \(count) evicted")
        clients.forEach { close($0) }
        clients.removeAll()
        try runUntil(loop, seconds: 2) { server.openConnections == 0 }
        #expect(try request("GET /metrics HTTP/1.1\r\n\r\n")?.status == 200, "the loop still serves")
    }
}
