import CLinux
import Domain
import Glibc
import HTTP
import Reactor
@testable import Sinks
import Testing

/// The listener's side of the session: reasserts, drift checks, the socket table.
extension QBittorrentSessionTests {
    @Test func reassertMovesThePortAwayAndBack() {
        var driver = loggedIn()
        driver.answer(200, Self.preferences(port: 51413))
        driver.feed(.reassert)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.lastBody == "json=" + FormEncoding.percentEncode(#"{"listen_port":51414,"random_port":false}"#))
        driver.answer(200)
        #expect(driver.lastBody == "json=" + FormEncoding.percentEncode(#"{"listen_port":51413,"random_port":false,"upnp":false}"#))
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified)
        #expect(driver.session.counters.reasserts == 1)
    }

    @Test func theDriftCheckRestoresAChangedPortAndChecksTheListener() {
        var driver = loggedIn()
        driver.listener = nil
        driver.answer(200, Self.preferences(port: 51413))
        driver.now = driver.now + .seconds(300)
        driver.feed(.deadlineReached)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.listenerChecks == [Port(51413)!])
        #expect(driver.session.nextDeadline == nil, "the check completes with the socket table's answer")
        driver.feed(.listenerChecked(.listening))
        #expect(driver.session.nextDeadline == driver.now + .seconds(300))

        driver.now = driver.now + .seconds(300)
        driver.feed(.deadlineReached)
        driver.answer(200, Self.preferences(port: 6881))
        #expect(driver.logs.contains { $0.0 == .warning && $0.1.contains("changed behind portsync's back (listen_port 6881)") })
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences")
    }

    @Test func nothingListeningTriggersOneReassertNotMore() {
        var driver = loggedIn()
        driver.listener = nil
        driver.answer(200, Self.preferences(port: 51413))
        driver.feed(.listenerChecked(.absent))
        #expect(driver.logged("nothing listens on it; making it re-open its sockets"))
        driver.answer(200, Self.preferences(port: 51413))
        driver.answer(200)
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        let sent = driver.sent.count
        driver.feed(.listenerChecked(.absent))
        #expect(driver.sent.count == sent, "a second stale result does not reassert in a loop")
        #expect(driver.session.status.health == .failing("not listening on port 51413"))

        // Later drift checks while it stays deaf: no flapping status, no repeated error line.
        let errors = driver.logs.filter { $0.0 == .error }.count
        for _ in 0..<3 {
            driver.now = driver.session.nextDeadline!
            driver.feed(.deadlineReached)
            driver.answer(200, Self.preferences(port: 51413))
            #expect(driver.session.status.health == .failing("not listening on port 51413"))
            driver.feed(.listenerChecked(.absent))
        }
        #expect(driver.logs.filter { $0.0 == .error }.count == errors)
        driver.now = driver.session.nextDeadline!
        driver.feed(.deadlineReached)
        driver.answer(200, Self.preferences(port: 51413))
        driver.feed(.listenerChecked(.listening))
        #expect(driver.session.status.health == .verified)
        #expect(driver.logged("qBittorrent is fine again"))
    }

    /// The check at start: qBittorrent already on the port, but its socket is bound to a
    /// vanished interface (a tunnel recreated before portsync started): one reassert, and a
    /// later recreate (another index) is another cause, so another reassert.
    @Test func aListenerOnAVanishedInterfaceIsReassertedOncePerCause() {
        var driver = loggedIn()
        driver.listener = nil
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.listenerChecks == [Port(51413)!], "checked at start, with no drift check yet")
        let stale = ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 2)
        driver.feed(.listenerChecked(.stale(stale)))
        #expect(driver.logged("(10.2.0.2) is bound to interface index 2, which no longer exists"))
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences", "moved away")
        driver.answer(200)
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.counters.reasserts == 1)

        driver.feed(.interfacesChanged)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.listenerChecks.count == 2, "an interface change means a look at the listener")
        driver.feed(.listenerChecked(.stale(stale)))
        #expect(driver.session.counters.reasserts == 1, "the same cause is not reasserted twice")
        #expect(driver.session.status.health == .failing("not listening on port 51413"))

        driver.feed(.interfacesChanged)
        driver.answer(200, Self.preferences(port: 51413))
        driver.feed(.listenerChecked(.stale(ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 3))))
        driver.answer(200, Self.preferences(port: 51413))
        driver.answer(200)
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.counters.reasserts == 2, "a new recreate is a new cause")
        #expect(driver.session.status.health == .verified)
    }

    @Test func aRemoteQBittorrentIsReassertedBlindlyWhenTheTunnelChanges() {
        var driver = Driver(session: QBittorrentSession(settings: QBittorrentSettings(
            url: try! HTTPURL(parsing: "http://192.0.2.10:8080"), authentication: .none, checkListener: false)), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, "v4.5.2")
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.listenerChecks.isEmpty, "a remote qBittorrent's sockets cannot be seen")
        driver.feed(.interfacesChanged)
        #expect(driver.logged("cannot be seen: reasserting its port"))
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences")
    }

    /// `inet_diag_msg` answers as the kernel lays them out, for port 51413: 10.2.0.2 bound to
    /// index 2, then [::] unbound, then the end of the dump.
    @Test func socketDiagnosticsDecode() {
        func diag(family: UInt8, address: [UInt8], interface: UInt32) -> [UInt8] {
            var body: [UInt8] = [family, 10, 0, 0, 0xC8, 0xD5, 0, 0]
            body += address + [UInt8](repeating: 0, count: 16 - address.count)  // source
            body += [UInt8](repeating: 0, count: 16)                            // destination
            body += Netlink.littleEndian(interface) + [UInt8](repeating: 0, count: 8 + 20)
            return Netlink.message(type: 20, flags: 2, sequence: 1, body: body)
        }
        let bytes = diag(family: UInt8(AF_INET), address: [10, 2, 0, 2], interface: 2)
            + diag(family: UInt8(AF_INET6), address: [UInt8](repeating: 0, count: 16), interface: 0)
        let first = ListeningSockets.parse(bytes, port: 51413, sequence: 1)
        #expect(first.listeners == [ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 2),
                                    ListeningSockets.Listener(address: "[::]", interfaceIndex: 0)])
        #expect(!first.done)
        #expect(ListeningSockets.parse(bytes, port: 6881, sequence: 1).listeners.isEmpty, "another port")
        #expect(ListeningSockets.parse(Netlink.message(type: UInt16(NLMSG_DONE), flags: 2, sequence: 1, body: [0, 0, 0, 0]),
                                       port: 51413, sequence: 1).done)
        let request = ListeningSockets.request(family: UInt8(AF_INET), port: 51413, sequence: 1)
        #expect(request.count == 16 + 56 && Array(request[16...23]) == [UInt8(AF_INET), 6, 0, 0, 0, 4, 0, 0] && Array(request[24...25]) == [0xC8, 0xD5])
    }
}
