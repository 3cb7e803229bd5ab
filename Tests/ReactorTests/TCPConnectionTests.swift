import CLinux
import Glibc
import Testing
@testable import Reactor
import TestSupport

@Suite struct TCPConnectionTests {
    @Test func connectsSendsReceivesAndSeesTheClose() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let listener = Listener()
        defer { listener.fd.close() }
        var events: [String] = []
        var received: [UInt8] = []
        let connection = TCPConnection(loop: loop, name: "test.tcp") { event in
            switch event {
            case .connected: events.append("connected")
            case .received(let bytes): received += bytes
            case .closed(let error): events.append("closed \(error.map { "\($0)" } ?? "cleanly")")
            }
        }
        try connection.connect(to: .v4(IPv4Address(127, 0, 0, 1), port: listener.port), timeout: .seconds(5))
        connection.send(Array("ping".utf8))
        try runUntil(loop) { events == ["connected"] }
        let server = listener.accept()
        var request = [UInt8](repeating: 0, count: 4)
        #expect(Glibc.recv(server.rawValue, &request, 4, Int32(MSG_WAITALL)) == 4)
        #expect(request == Array("ping".utf8))
        // A large answer arrives whole, read until EAGAIN across wakeups.
        let answer = [UInt8](repeating: 65, count: 300_000)
        var sent = 0
        while sent < answer.count {
            let count = answer[sent...].withUnsafeBytes { Glibc.send(server.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(count > 0)
            sent += count
            try loop.runOnce(timeout: .zero)
        }
        server.close()
        try runUntil(loop) { events.count == 2 }
        #expect(received.count == answer.count)
        #expect(events == ["connected", "closed cleanly"])
        #expect(loop.registrationCount == 0)
    }

    @Test func eachBufferReachesTheOwnerBeforeTheNextIsRead() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let listener = Listener()
        defer { listener.fd.close() }
        var connected = false
        var sizes: [Int] = []
        var connection: TCPConnection!
        connection = TCPConnection(loop: loop, name: "test.tcp") { event in
            switch event {
            case .connected: connected = true
            case .received(let bytes):
                sizes.append(bytes.count)
                connection.close()  // a limit crossed: the owner stops the stream
            case .closed: break
            }
        }
        try connection.connect(to: .v4(IPv4Address(127, 0, 0, 1), port: listener.port), timeout: .seconds(5))
        try runUntil(loop) { connected }
        let server = listener.accept()
        defer { server.close() }
        _ = fcntl(server.rawValue, F_SETFL, O_NONBLOCK)
        let flood = [UInt8](repeating: 65, count: 64 * 1024)
        var queued = 0
        while queued < 1 << 20, case .done(let count) = try Socket(server).send(flood) { queued += count }
        #expect(queued > 64 * 1024)
        try runUntil(loop) { !sizes.isEmpty }
        #expect(sizes == [16 * 1024], "one buffer, then the owner's close stops the reading")
    }

    @Test func aRefusedConnectionIsReportedAsRefused() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let listener = Listener()
        let port = listener.port
        listener.fd.close()  // nothing listens there any more
        var result: TCPConnectionError??
        let connection = TCPConnection(loop: loop, name: "test.tcp") { event in
            if case .closed(let error) = event { result = .some(error) }
        }
        try connection.connect(to: .v4(IPv4Address(127, 0, 0, 1), port: port), timeout: .seconds(5))
        try runUntil(loop) { result != nil }
        #expect(result == .some(.refused))
        #expect(connection.state == .closed)
    }

    @Test func aConnectThatNeverCompletesTimesOut() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        // A listener whose accept queue is full drops further SYNs: connects hang.
        let listener = Listener(backlog: 0)
        defer { listener.fd.close() }
        var fillers: [Int32] = []
        defer { fillers.forEach { _ = Glibc.close($0) } }
        var result: TCPConnectionError??
        for _ in 0..<4 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_NONBLOCK, 0)
            _ = SocketAddress.v4(IPv4Address(127, 0, 0, 1), port: listener.port).withSockAddr { Glibc.connect(filler, $0, $1) }
            fillers.append(filler)
        }
        let connection = TCPConnection(loop: loop, name: "test.tcp") { event in
            if case .closed(let error) = event { result = .some(error) }
        }
        try connection.connect(to: .v4(IPv4Address(127, 0, 0, 1), port: listener.port), timeout: .milliseconds(300))
        try runUntil(loop, limit: 50) { result != nil }
        #expect(result == .some(.timedOut))
    }

    @Test func bindsToTheRequestedSourceAddress() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let listener = Listener()
        defer { listener.fd.close() }
        var connected = false
        let connection = TCPConnection(loop: loop, name: "test.tcp") { event in
            if case .connected = event { connected = true }
        }
        try connection.connect(to: .v4(IPv4Address(127, 0, 0, 1), port: listener.port),
                               from: .v4(IPv4Address(127, 0, 0, 2), port: 0), timeout: .seconds(5))
        try runUntil(loop) { connected }
        var peer = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let server = FileDescriptor(rawValue: withUnsafeMutablePointer(to: &peer) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(listener.fd.rawValue, $0, &length) }
        })
        defer { server.close() }
        #expect(IPv4Address(peer.sin_addr) == IPv4Address(127, 0, 0, 2))
        connection.close()
    }
}
