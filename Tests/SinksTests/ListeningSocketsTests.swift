import CLinux
import Glibc
import Reactor
import Testing
import TestSupport
@testable import Sinks

/// The kernel's socket table read for real, on loopback: a listener, an IPv6-only one, and a
/// connection that came in, with its peer.
@Suite struct ListeningSocketsTests {
    @Test func aListenerAndAConnectionToItAreSeenWithThePeer() throws {
        let listener = Listener()
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        defer { close(client) }
        #expect(SocketAddress.v4(IPv4Address(127, 0, 0, 1), port: listener.port).withSockAddr { connect(client, $0, $1) } == 0)
        let accepted = listener.accept()
        defer { accepted.close() }
        #expect(try ListeningSockets.query(port: listener.port) == [ListeningSockets.Listener(address: "127.0.0.1", interfaceIndex: 0)])
        let connections = try ListeningSockets.connections(port: listener.port)
        #expect(connections.count == 1 && connections.first?.address == "127.0.0.1" && connections.first?.peer == "127.0.0.1", "\(connections)")
    }

    @Test func anIPv6OnlyListenerSaysSo() throws {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_CLOEXEC, 0)
        defer { close(fd) }
        var on: Int32 = 1
        #expect(setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &on, socklen_t(MemoryLayout<Int32>.size)) == 0)
        let address = SocketAddress(numericHost: "::", port: 0)!
        #expect(address.withSockAddr { bind(fd, $0, $1) } == 0 && listen(fd, 4) == 0)
        let port = try #require(try Socket(FileDescriptor(rawValue: fd)).localAddress()?.port)
        #expect(try ListeningSockets.query(port: port) == [ListeningSockets.Listener(address: "[::]", interfaceIndex: 0, v6Only: true)])
    }
}
