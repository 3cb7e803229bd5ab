import Foundation
import Glibc
import Reactor
import TestSupport
import Testing
import Watchers
@testable import portsync

/// Connectable as a peer on the internet finds it: the lab with wg-quick's layout (a /32 on wg0,
/// the routes after link-up), an "internet" namespace behind the gateway, and the test gateway
/// forwarding each mapping from its public address (198.51.100.7, on its link to the internet)
/// to the client, as a DNAT in its own namespace. A peer there dials the public address and
/// port, as peers out in the world do.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3 and qbittorrent-nox (CI runs as root; ./scripts/test installs them)"))
final class ConnectabilityLabTests {
    var lab: NetworkLab!
    var gateway: NATPMPGateway!
    var qbittorrent: QBittorrentInstance!
    let directory = TemporaryDirectory()
    var daemons: [Child] = []

    init() throws {
        guard NetworkLab.available && QBittorrentInstance.available else { return }
        lab = try NetworkLab(style: .wgQuick(routeDelay: 0))
        try lab.addInternet()
        gateway = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript)
        try gateway.set(forward: true)
        directory.write("password", QBittorrentInstance.password)
    }

    deinit {
        for daemon in daemons { daemon.process.stop(grace: 2) }
        qbittorrent?.stop()
    }

    // MARK: The lab's gateway

    /// One NAT-PMP request from the tunnel's address, and the gateway's answer.
    func ask(_ request: [UInt8]) throws -> NATPMP.Response {
        try lab.inClient {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard SocketAddress.v4(IPv4Address(10, 2, 0, 2), port: 0).withSockAddr({ bind(fd, $0, $1) }) == 0 else {
                throw ChildProcessError(message: "bind 10.2.0.2: errno \(errno)")
            }
            _ = SocketAddress.v4(IPv4Address(10, 2, 0, 1), port: 5351).withSockAddr { address, length in
                request.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, address, length) }
            }
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { throw ChildProcessError(message: "no answer from the gateway: errno \(errno)") }
            return try NATPMP.decode(Array(buffer[0..<count]))
        }
    }

    /// Maps TCP internal port `key` for `lifetime` s (0 deletes); the external port granted.
    func mapTCP(key: UInt16, lifetime: UInt32) throws -> UInt16? {
        let request = NATPMP.mappingRequest(.tcp, internalPort: key, suggestedExternalPort: 0, lifetime: lifetime)
        guard case .mapping(_, .success, _, _, let external, _) = try ask(request) else { return nil }
        return external
    }

    /// Whether a peer on the internet completes a handshake with the public address on `port`
    /// within half a second; the failures it met, when it did not.
    func dial(_ port: UInt16) throws -> (connected: Bool, failures: [String: Int]) {
        let peer = try InternetPeer(lab: lab, port: port, within: 0.5, hold: 0)
        let outcome = peer.waitForOutcome()
        return (outcome?.connected != nil, outcome?.failures ?? [:])
    }

    /// The fixture the benchmark stands on: a granted mapping is a DNAT from the public address
    /// to the client (the same port: ProtonVPN's internal port is only a key), made before the
    /// grant is answered, and gone when the mapping is deleted, lapses or the gateway restarts.
    @Test func theGatewayForwardsItsPublicAddressToTheClientOnlyWhileTheMappingLasts() throws {
        guard case .externalAddress(.success, _, let address) = try ask(NATPMP.externalAddressRequest()) else {
            Issue.record("no external address")
            return
        }
        #expect("\(address)" == NetworkLab.publicAddress)
        #expect(try lab.ip("-n", lab.gateway, "-4", "addr", "show", "dev", "inet0").contains("inet \(NetworkLab.publicAddress)/32"),
                "the address is the gateway's own, on its link to the internet")
        let listeners = try [40000, 40001, 40002, 40003].map { port in
            try lab.inClient { try Listener(address: .v4(IPv4Address(10, 2, 0, 2), port: UInt16(port))) }
        }
        defer { listeners.forEach { $0.fd.close() } }
        #expect(try dial(40000).failures["ECONNREFUSED"] ?? 0 > 0, "nothing forwarded yet: the gateway itself refuses")

        #expect(try mapTCP(key: 5000, lifetime: 60) == 40000)
        #expect(try dial(40000).connected)
        #expect(try mapTCP(key: 5000, lifetime: 0) == 0)
        #expect(try dial(40000).connected == false)
        #expect(gateway.unforwarded.map(\.why) == ["deleted"])
        #expect(gateway.unforwarded.last?.forwards == ["tcp 40000"])

        #expect(try mapTCP(key: 5000, lifetime: 1) == 40001)
        #expect(try dial(40001).connected)
        #expect(waitFor(seconds: 5) { self.gateway.unforwarded.count == 2 }, "\(gateway.log)")
        #expect(gateway.unforwarded.last?.why == "expired")
        #expect(try dial(40001).connected == false)

        #expect(try mapTCP(key: 6000, lifetime: 60) == 40002)
        #expect(try dial(40002).connected)
        try gateway.resetEpochNow()
        _ = try ask(NATPMP.externalAddressRequest())
        #expect(gateway.unforwarded.last?.why == "epoch reset")
        #expect(try dial(40002).connected == false)

        #expect(try mapTCP(key: 6000, lifetime: 60) == 40003)
        try gateway.changePorts()
        #expect(try mapTCP(key: 6000, lifetime: 60) == 40004)
        #expect(gateway.unforwarded.last.map { ($0.forwards, $0.why) } ?? ([], "") == (["tcp 40003"], "new ports"))
        #expect(try dial(40003).connected == false)
    }

    // MARK: portsync and a real qBittorrent

    func environment() -> [String: String] {
        daemonEnvironment(qbittorrent, in: directory, [
            "PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0", "PORTSYNC_DAEMON_LOG_LEVEL": "debug",
            "PORTSYNC_CONNECTABILITY_INTERVAL_SECONDS": "1",
        ])
    }

    /// The connectability the state file holds, as the daemon's own parser reads it.
    func record() -> ConnectabilityRecord? {
        guard let bytes = FileManager.default.contents(atPath: "\(directory.path)/state.json") else { return nil }
        return (try? DaemonState.parse(Array(bytes)))?.connectable
    }

    /// The verdicts of `portsync history --json`, oldest first.
    func historyVerdicts() throws -> [String] {
        let (_, output) = try Child.run(["history", "--json"], environment: environment())
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let value = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let entries = value["connectability"] as? [[String: Any]] else { return [] }
        return entries.map { $0["verdict"] as? String ?? "?" }
    }

    /// qBittorrent bound to wg0 with one torrent (libtorrent drops every incoming connection
    /// while it has none) takes its port from the gateway; a peer on the internet completes a
    /// handshake with 198.51.100.7 on that port, and the verdict is "connectable" with that peer
    /// as its evidence. wg-quick down and up again (a new wg0, the routes after link-up): the
    /// verdict is looked at afresh, and a peer from another address gets in again.
    @Test func aPeerOnTheInternetReachesQBittorrentThroughTheForwardedPortBeforeAndAfterTheTunnelIsRecreated() throws {
        qbittorrent = try lab.inClient { try QBittorrentInstance(interface: "wg0") }
        let tracker = "http://127.0.0.1:9/announce"
        let info = "d6:lengthi16384e4:name4:peer12:piece lengthi16384e6:pieces20:\(String(repeating: "p", count: 20))e"
        try lab.inClient { try qbittorrent.addTorrent(Array("d8:announce\(tracker.utf8.count):\(tracker)4:info\(info)e".utf8)) }
        try lab.ip("-n", lab.internet!, "addr", "add", "198.51.100.11/24", "dev", "inet1")
        let environment = environment()
        let daemon = try lab.inClient { try Child(["run", "--trace"], environment: environment) }
        daemons.append(daemon)
        #expect(waitFor(seconds: 15) { (try? self.lab.inClient { try self.qbittorrent.listenPort() }) == 40000 }, "\(daemon.output)")
        #expect(gateway.requests.contains { $0["op"] as? String == "tcp" && $0["external"] as? Int == 40000 && $0["forwarded"] as? Bool == true },
                "\(gateway.log)")

        let first = try InternetPeer(lab: lab, port: 40000, source: "198.51.100.10")
        #expect(first.waitForOutcome()?.connected != nil, "\(first.output) \(daemon.output)")
        var before: ConnectabilityRecord?
        #expect(waitFor(seconds: 15) {
            before = self.record()
            return before?.kind == .connectable
        }, "\(String(describing: before)) \(daemon.output)")
        #expect(before?.evidence.contains { $0.kind == "incoming" && $0.ok == true && $0.text.contains("198.51.100.10") } == true,
                "the peer from the internet, through the DNAT with its own address: \(String(describing: before))")
        first.stop()

        let recreation = try lab.recreateTunnel(routeDelay: 0.3)
        var looked: ConnectabilityRecord?
        #expect(waitFor(seconds: 15) {
            looked = self.record()
            return looked.map { $0.kind != .connectable && $0.checked >= Int64(recreation.gone) } == true
        }, "the new tunnel is not proven by the old one's peer: \(String(describing: looked)) \(daemon.output)")

        let second = try InternetPeer(lab: lab, port: 40000, source: "198.51.100.11")
        #expect(second.waitForOutcome()?.connected != nil, "\(second.output) \(daemon.output)")
        var after: ConnectabilityRecord?
        #expect(waitFor(seconds: 15) {
            after = self.record()
            return after?.kind == .connectable
        }, "\(String(describing: after)) \(daemon.output)")
        #expect(after?.evidence.contains { $0.kind == "incoming" && $0.ok == true && $0.text.contains("198.51.100.11") } == true,
                "\(String(describing: after))")
        #expect(after?.evidence.contains { $0.kind == "forwarded" && $0.text.contains("40000") && $0.text.contains(NetworkLab.publicAddress) } == true,
                "\(String(describing: after))")
        let verdicts = try historyVerdicts()
        #expect(verdicts.last == "connectable" && verdicts.dropLast().last != "connectable"
                && verdicts.filter { $0 == "connectable" }.count == 2, "\(verdicts)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }
}
