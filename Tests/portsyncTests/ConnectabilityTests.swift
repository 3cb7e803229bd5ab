import Coordination
import Domain
import Reactor
import Sinks
import Testing
import Watchers
@testable import portsync

/// The connectability verdict from its facts (no sockets): the first thing wrong decides, proof
/// of a peer decides "connectable", anything else is "unknown" with why; the monitor's looks and
/// heals, once per cause; and how the socket table's listeners are read.
@Suite struct ConnectabilityTests {
    typealias Facts = Connectability.Facts
    typealias Client = Connectability.ClientFacts
    let port = Port(40000)!
    let tunnel = IPv4Address(10, 2, 0, 2)
    let gateway = IPv4Address(198, 51, 100, 7)

    func client(_ listener: Client.Listener, incoming: [String]? = [], report: Client.Report? = nil, leavesFrom: IPv4Address? = nil,
                canReopen: Bool = true) -> Client {
        Client(label: "qbittorrent", title: "qBittorrent v4.5.2", port: port, listener: listener, incoming: incoming, report: report,
               leavesFrom: leavesFrom, canReopen: canReopen)
    }

    func facts(_ clients: [Client], forwarded: Bool = true) -> Facts {
        Facts(forwarded: forwarded ? port : nil, source: "NAT-PMP", problem: forwarded ? nil : "the lease ran out",
              publicAddress: gateway, tunnelAddress: tunnel, clients: clients)
    }

    @Test func eachCauseDecidesItsVerdict() {
        let cases: [(Facts, Connectability.Verdict)] = [
            (facts([client(.reachable(["0.0.0.0"]))], forwarded: false), .notConnectable(.noForwardedPort("the lease ran out"))),
            (facts([client(.absent)]), .notConnectable(.notListening(label: "qbittorrent", port: port))),
            (facts([client(.deaf("10.2.0.2%7"))]), .notConnectable(.deafListener(label: "qbittorrent", port: port, listener: "10.2.0.2%7"))),
            (facts([client(.onlyIPv6(["[::] (IPv6 only)"]))]), .notConnectable(.notListening(label: "qbittorrent", port: port))),
            (facts([client(.elsewhere(["127.0.0.1"]))]),
             .notConnectable(.listeningElsewhere(label: "qbittorrent", port: port, on: ["127.0.0.1"], tunnel: tunnel))),
            (facts([client(.unseen("not on this machine"), incoming: nil, report: .disconnected)]), .notConnectable(.clientDisconnected(label: "qbittorrent"))),
            (facts([client(.reachable(["0.0.0.0"]), report: .disconnected)]), .unknown(.noIncomingYet)),
            (facts([client(.reachable(["0.0.0.0"]), report: .connected, leavesFrom: IPv4Address(198, 51, 100, 9))]),
             .notConnectable(.addressMismatch(forwardedOn: gateway, leavesFrom: IPv4Address(198, 51, 100, 9)))),
            (facts([client(.reachable(["0.0.0.0"]))]), .unknown(.noIncomingYet)),
            (facts([client(.reachable(["0.0.0.0"]), report: .firewalled)]), .unknown(.noIncomingYet)),
            (facts([client(.reachable(["10.2.0.2"]), incoming: ["198.51.100.20"])]), .connectable),
            (facts([client(.unseen("not on this machine"), incoming: nil, report: .connected, leavesFrom: gateway)]), .connectable),
            (facts([client(.unseen("not on this machine"), incoming: nil)]), .unknown(.cannotSee("the clients are not on this machine and report nothing of their connections"))),
        ]
        for (facts, verdict) in cases {
            #expect(Connectability.judge(facts).verdict == verdict, "\(facts.clients.map(\.listener))")
        }
    }

    @Test func theEvidenceComesCheapestFirstAndSaysWhatItSaw() {
        let judgement = Connectability.judge(facts([client(.reachable(["0.0.0.0"]), incoming: ["198.51.100.20", "198.51.100.21"], report: .connected, leavesFrom: gateway)]))
        #expect(judgement.verdict == .connectable)
        #expect(judgement.evidence.map(\.kind) == ["forwarded", "listener", "incoming", "client", "address"])
        #expect(judgement.evidence.allSatisfy { $0.ok == true })
        #expect(judgement.evidence[0].text.contains("198.51.100.7"), "the address the port is forwarded on")
    }

    @Test func everyClientMustBeProvenAndTheFirstWrongOneIsNamed() {
        var other = client(.absent)
        other.label = "transmission"
        let judgement = Connectability.judge(facts([client(.reachable(["0.0.0.0"]), incoming: ["198.51.100.20"]), other]))
        #expect(judgement.verdict == .notConnectable(.notListening(label: "transmission", port: port)))
        var second = client(.reachable(["0.0.0.0"]))
        second.label = "transmission"
        #expect(Connectability.judge(facts([client(.reachable(["0.0.0.0"]), incoming: ["198.51.100.20"]), second])).verdict == .unknown(.noIncomingYet))
    }

    // MARK: The monitor

    struct Driver {
        var monitor: ConnectabilityMonitor
        var now = Instant(nanoseconds: 1_000_000_000_000)
        var heals: [String] = []
        var remaps = 0
        var failed: [Connectability.Cause] = []
        var verdicts: [Connectability.Verdict] = []
        var gathers = 0

        init(_ settings: ConnectabilityMonitor.Settings = ConnectabilityMonitor.Settings()) {
            monitor = ConnectabilityMonitor(settings: settings)
        }

        /// Feeds `input`, answering every `.gather` with `facts`.
        mutating func feed(_ input: ConnectabilityMonitor.Input, _ facts: Facts?) {
            for effect in monitor.handle(input, now: now) {
                switch effect {
                case .gather:
                    gathers += 1
                    feed(.gathered(facts), facts)
                case .judged(let judgement, let changed): if changed { verdicts.append(judgement.verdict) }
                case .heal(let client, _): heals.append(client)
                case .remap: remaps += 1
                case .healFailed(let cause): failed.append(cause)
                }
            }
        }

        mutating func wake(_ facts: Facts?) {
            now = monitor.nextDeadline!
            feed(.deadlineReached, facts)
        }
    }

    @Test func looksAgainSoonWhileNoPeerConnectedThenAtTheInterval() {
        var driver = Driver()
        let quiet = facts([client(.reachable(["0.0.0.0"]))])
        driver.feed(.look, quiet)
        let start = driver.now
        #expect(driver.verdicts == [.unknown(.noIncomingYet)])
        #expect(driver.monitor.nextDeadline == start + .seconds(15))
        driver.wake(quiet)
        #expect(driver.monitor.nextDeadline == start + .seconds(75))
        driver.wake(facts([client(.reachable(["0.0.0.0"]), incoming: ["198.51.100.20"])]))
        #expect(driver.verdicts == [.unknown(.noIncomingYet), .connectable])
        #expect(driver.monitor.nextDeadline == start + .seconds(375))
        driver.wake(quiet)
        #expect(driver.verdicts.last == .connectable, "a peer that left does not undo the proof")
        #expect(driver.monitor.judgement?.evidence.last?.text == "a peer connected earlier, since the port was last changed")
        driver.feed(.look, quiet)
        #expect(driver.verdicts.last == .unknown(.noIncomingYet), "a change needs proof anew")
        #expect(driver.gathers == 5)
    }

    /// The verdict names the first client's trouble (bound to loopback: told, not touched);
    /// the second client's listener that did not open is healed all the same, once it had its
    /// time after the change, and once.
    @Test func anotherClientsMissingListenerIsHealedTooOnceItHadItsTime() {
        var driver = Driver()
        var elsewhere = client(.elsewhere(["127.0.0.1"]))
        elsewhere.label = "transmission"
        var missing = client(.absent)
        missing.label = "deluge"
        let both = facts([elsewhere, missing])
        #expect(Connectability.judge(both).causes == [.listeningElsewhere(label: "transmission", port: port, on: ["127.0.0.1"], tunnel: tunnel),
                                                     .notListening(label: "deluge", port: port)])
        let looked = driver.now
        driver.feed(.look, both)
        #expect(driver.heals.isEmpty && driver.monitor.nextDeadline == looked + ConnectabilityMonitor.listenerPatience,
                "deluge is given its time to open its listener")
        driver.wake(both)
        #expect(driver.heals == ["deluge"])
        driver.wake(both)
        driver.wake(both)
        #expect(driver.heals == ["deluge"] && driver.failed == [.notListening(label: "deluge", port: port)], "once, then said once")
    }

    @Test func aListenerIsHealedOncePerCauseThenTheRecoveryIsAskedOnce() {
        var driver = Driver()
        let deafIPv4 = facts([client(.onlyIPv6(["[::] (IPv6 only)"]))])
        let looked = driver.now
        driver.feed(.look, deafIPv4)
        #expect(driver.verdicts.isEmpty && driver.monitor.nextDeadline == looked + .milliseconds(50),
                "a listener is given its time after a change, looked at again and again")
        #expect(driver.monitor.judgement?.verdict == .unknown(.listenerOpening(label: "qbittorrent", port: port)),
                "meanwhile the port's verdict is unknown, not the last port's")
        #expect(driver.monitor.judgement?.evidence.first { $0.kind == "listener" }?.ok == nil)
        while driver.heals.isEmpty && driver.now < looked + .seconds(3) { driver.wake(deafIPv4) }
        #expect(driver.now == looked + ConnectabilityMonitor.listenerPatience && driver.gathers == 41)
        #expect(driver.heals == ["qbittorrent"])
        #expect(driver.monitor.nextDeadline == driver.now + .seconds(3), "looked at again once the heal had its time")
        let healedAt = driver.now
        driver.now = healedAt + .milliseconds(20)
        driver.feed(.factsChanged, deafIPv4)
        #expect(driver.failed.isEmpty && driver.monitor.nextDeadline == healedAt + .seconds(3), "a look before the heal had its time judges nothing yet")
        driver.wake(deafIPv4)
        #expect(driver.heals.count == 1, "never twice for one cause")
        #expect(driver.failed == [.notListening(label: "qbittorrent", port: port)])
        driver.wake(deafIPv4)
        #expect(driver.heals.count == 1 && driver.failed.count == 1, "and said once")
        driver.wake(facts([client(.reachable(["0.0.0.0"]))]))
        driver.wake(deafIPv4)
        #expect(driver.heals.count == 2, "a cause that went away and came back is healed again")
    }

    @Test func noHealWhenTurnedOffOrTheClientCannotReopenOrItIsNotAListener() {
        var off = Driver(ConnectabilityMonitor.Settings(heal: false))
        off.feed(.look, facts([client(.absent)]))
        var transmission = Driver()
        transmission.feed(.look, facts([client(.absent, canReopen: false)]))
        var mismatch = Driver()
        mismatch.feed(.look, facts([client(.reachable(["0.0.0.0"]), leavesFrom: IPv4Address(198, 51, 100, 9))]))
        // Bound by its settings to another address: re-opening binds there again.
        var loopback = Driver()
        loopback.feed(.look, facts([client(.elsewhere(["127.0.0.1"]))]))
        #expect(off.heals.isEmpty && transmission.heals.isEmpty && mismatch.heals.isEmpty && loopback.heals.isEmpty)
        #expect(off.failed.isEmpty && transmission.failed.isEmpty && mismatch.failed.isEmpty && loopback.failed.isEmpty)
    }

    /// The outside check (opt-in) proves the port open, or finds it closed while everything
    /// here looks right: the source is asked for its mapping again, once, the answer awaited
    /// anew, and then the recovery is asked once.
    @Test func theOutsideCheckDecidesAndAClosedPortIsMappedAgainOnce() {
        func outside(_ answer: Connectability.Outside) -> Facts {
            var facts = facts([client(.reachable(["0.0.0.0"]))])
            facts.outside = answer
            return facts
        }
        #expect(Connectability.judge(outside(.open)).verdict == .connectable)
        #expect(Connectability.judge(outside(.failed("it answered 500"))).verdict == .unknown(.noIncomingYet))
        #expect(Connectability.judge(outside(.closed)).verdict == .notConnectable(.closedFromOutside(port: port)))
        #expect(Connectability.judge(outside(.closed)).evidence.last == Connectability.Evidence(kind: "outside", ok: false, text: "the outside check found port 40000 closed"))

        var driver = Driver()
        driver.feed(.look, outside(.closed))
        #expect(driver.remaps == 1 && driver.heals.isEmpty)
        driver.wake(outside(.asking))
        #expect(driver.failed.isEmpty && driver.remaps == 1, "the new answer is awaited")
        driver.feed(.factsChanged, outside(.closed))
        #expect(driver.failed == [.closedFromOutside(port: port)] && driver.remaps == 1)
        driver.wake(outside(.closed))
        #expect(driver.failed.count == 1 && driver.remaps == 1, "never a loop")

        var mended = Driver()
        mended.feed(.look, outside(.closed))
        mended.wake(outside(.asking))
        mended.feed(.factsChanged, outside(.open))
        #expect(mended.verdicts.last == .connectable && mended.failed.isEmpty)
    }

    /// The WireGuard peer's last handshake: fresh is good, older than WireGuard's 180 s means
    /// the tunnel is gone (packets are asked for through it, then the recovery); unreadable or
    /// none yet decides nothing.
    @Test func theTunnelsHandshakeIsWeighed() {
        func with(_ handshake: Connectability.Handshake?) -> Connectability.Judgement {
            var facts = facts([client(.reachable(["0.0.0.0"]))])
            facts.handshake = handshake
            return Connectability.judge(facts)
        }
        #expect(with(.ago(seconds: 42)).verdict == .unknown(.noIncomingYet))
        #expect(with(.ago(seconds: 42)).evidence.contains(Connectability.Evidence(kind: "tunnel", ok: true, text: "the WireGuard peer's last handshake was 42 s ago")))
        #expect(with(.ago(seconds: 181)).verdict == .notConnectable(.tunnelSilent(seconds: 181)))
        #expect(Connectability.Cause.tunnelSilent(seconds: 181).wantsRemap)
        #expect(with(.never).verdict == .unknown(.noIncomingYet) && with(.unreadable("it needs CAP_NET_ADMIN")).verdict == .unknown(.noIncomingYet))
        #expect(Daemon.handshake(.peers([1_000, nil, 1_100]), now: 1_130) == .ago(seconds: 30), "the newest of the peers")
        #expect(Daemon.handshake(.peers([nil]), now: 1_130) == .never && Daemon.handshake(.notWireGuard) == nil)
        guard case .unreadable(let why)? = Daemon.handshake(.notPermitted) else { Issue.record("a user service says nothing"); return }
        #expect(why.contains("CAP_NET_ADMIN"))
    }

    /// `check_url`'s template and its answers.
    @Test func theOutsideCheckTemplateAndAnswersAreRead() throws {
        #expect(OutsideCheck.Template.validate("http://check.example/{port}") == nil)
        #expect(OutsideCheck.Template.validate("https://check.example/api?port={port}&ip={address}") == nil)
        #expect(OutsideCheck.Template.validate("https://check.example/api") == "must hold {port} where the port goes")
        #expect(OutsideCheck.Template.validate("https://check.example/{port}/{peer}") == "knows only {port} and {address}")
        #expect(OutsideCheck.Template.validate("ftp://check.example/{port}")?.contains("scheme must be http or https") == true)
        let request = try OutsideCheck.Template(text: "https://check.example/api?port={port}&ip={address}").request(port: port, address: gateway)
        #expect(request.url.host == "check.example" && request.target == "/api?port=40000&ip=198.51.100.7")
        let cases: [(Int, String, Connectability.Outside)] = [
            (200, #"{"open": true}"#, .open), (200, #"{"open":false,"port":40000}"#, .closed), (200, #"{"status":"Open"}"#, .open),
            (200, "closed\n", .closed), (200, "OPEN", .open), (503, "open", .failed("it answered 503")),
            (200, "maybe", .failed("its answer says neither open nor closed: \"maybe\"")),
        ]
        for (status, body, expected) in cases {
            #expect(OutsideCheck.answer(status: status, body: Array(body.utf8)) == expected, "\(status) \(body)")
        }
    }

    @Test func whileAChangeIsOnItsWayItLooksAgainShortly() {
        var driver = Driver()
        driver.feed(.look, nil)
        #expect(driver.verdicts.isEmpty && driver.monitor.judgement == nil)
        #expect(driver.monitor.nextDeadline == driver.now + ConnectabilityMonitor.notSettledRetry)
    }

    // MARK: The socket table

    let wg0 = Tunnel(interface: "wg0", index: 7, address: IPv4Address(10, 2, 0, 2), gateway: IPv4Address(10, 2, 0, 1), gatewayRule: .lastByteOne)

    func table(_ listeners: [ListeningSockets.Listener], connections: [ListeningSockets.Listener] = []) -> SocketTable {
        SocketTable(listeners: { _ in listeners }, connections: { _ in connections }, interfaceExists: { $0 == 7 })
    }

    @Test func listenersAreReadAsTheTunnelSeesThem() {
        typealias L = ListeningSockets.Listener
        let cases: [([L], Tunnel?, Client.Listener)] = [
            ([], wg0, .absent),
            ([L(address: "0.0.0.0", interfaceIndex: 0), L(address: "[::]", interfaceIndex: 0, v6Only: true)], wg0, .reachable(["0.0.0.0"])),
            ([L(address: "10.2.0.2", interfaceIndex: 7)], wg0, .reachable(["10.2.0.2%7"])),
            ([L(address: "[::]", interfaceIndex: 0, v6Only: false)], wg0, .reachable(["[::]"])),
            ([L(address: "[::]", interfaceIndex: 0, v6Only: true)], wg0, .onlyIPv6(["[::] (IPv6 only)"])),
            ([L(address: "[::]", interfaceIndex: 0, v6Only: true)], nil, .reachable(["[::]"])),
            ([L(address: "10.2.0.9", interfaceIndex: 0), L(address: "127.0.0.1", interfaceIndex: 0)], wg0, .elsewhere(["10.2.0.9", "127.0.0.1"])),
            ([L(address: "10.2.0.2", interfaceIndex: 5)], wg0, .deaf("10.2.0.2%5")),
            ([L(address: "127.0.0.1", interfaceIndex: 0)], nil, .elsewhere(["127.0.0.1"])),
            ([L(address: "192.168.1.5", interfaceIndex: 0)], nil, .reachable(["192.168.1.5"])),
        ]
        for (listeners, tunnel, expected) in cases {
            #expect(table(listeners).listener(on: port, tunnel: tunnel) == expected, "\(listeners)")
        }
        let failing = SocketTable(listeners: { _ in throw SystemCallError(call: "recv(NETLINK_SOCK_DIAG)", errno: .wouldBlock) })
        guard case .unseen(let why) = failing.listener(on: port, tunnel: wg0) else { Issue.record("an unreadable table is not unseen"); return }
        #expect(why.hasPrefix("cannot read the socket table: recv(NETLINK_SOCK_DIAG)"))
    }

    @Test func onlyPeersThatCameThroughTheTunnelCount() {
        typealias L = ListeningSockets.Listener
        let connections = [
            L(address: "10.2.0.2", interfaceIndex: 0, peer: "198.51.100.20"),
            L(address: "127.0.0.1", interfaceIndex: 0, peer: "127.0.0.1"),
            L(address: "192.168.1.5", interfaceIndex: 0, peer: "192.168.1.9"),
        ]
        #expect(table([], connections: connections).incoming(on: port, tunnel: wg0) == ["198.51.100.20"])
        #expect(table([], connections: connections).incoming(on: port, tunnel: nil) == ["198.51.100.20", "192.168.1.9"])
    }

    /// qBittorrent bound to wg0: its connections are bound to wg0's index too. One bound to
    /// another index came through an earlier wg0 (recreated since, as a reconnect does; the
    /// kernel keeps it in TIME_WAIT for a minute) and proves nothing of this one.
    @Test func aPeerThatCameThroughAnEarlierTunnelDoesNotCount() {
        typealias L = ListeningSockets.Listener
        let connections = [
            L(address: "10.2.0.2", interfaceIndex: 5, peer: "198.51.100.10"),
            L(address: "10.2.0.2", interfaceIndex: 7, peer: "198.51.100.11"),
        ]
        #expect(table([], connections: connections).incoming(on: port, tunnel: wg0) == ["198.51.100.11"])
        #expect(table([], connections: Array(connections.prefix(1))).incoming(on: port, tunnel: wg0) == [])
    }
}
