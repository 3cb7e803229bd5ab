import Foundation
import Glibc
import Coordination
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The connectability verdict with a real qbittorrent-nox bound to the tunnel (wg0 = 10.2.0.2 in
/// the client namespace) and the test NAT-PMP gateway: "unknown" until a peer on the gateway's
/// side dials the forwarded port, then "connectable" with that evidence; a listener that took
/// the port on no tunnel address is found and healed, every step in the state and the history.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available,
                             "needs root, iproute2, python3 and qbittorrent-nox (CI runs as root; ./scripts/test installs them)"))
final class ConnectabilityDaemonTests {
    var lab: NetworkLab!
    var gateway: NATPMPGateway!
    var qbittorrent: QBittorrentInstance!
    let directory = TemporaryDirectory()
    var daemons: [Child] = []

    /// What the state file says of the connectability: the verdict, why, and each evidence's kind and whether it was good.
    struct Verdict: CustomStringConvertible {
        var verdict: String
        var why: String?
        var action: String?
        var evidence: [(kind: String, ok: Bool?, text: String)]
        var description: String { "\(verdict) (\(why ?? "-")) \(evidence.map { "\($0.kind)=\($0.ok.map(String.init) ?? "nil"): \($0.text)" })" }
    }

    init() throws {
        guard NetworkLab.available && QBittorrentInstance.available else { return }
        lab = try NetworkLab()
        gateway = try NATPMPGateway(lab: lab, script: NATPMPDaemonTests.gatewayScript)
        directory.write("password", QBittorrentInstance.password)
    }

    deinit {
        for daemon in daemons { daemon.process.stop(grace: 2) }
        qbittorrent?.stop()
    }

    /// With one torrent: libtorrent drops every incoming connection while it has none.
    func startQBittorrent() throws {
        qbittorrent = try lab.inClient { try QBittorrentInstance(interface: "wg0") }
        let info = "d6:lengthi16384e4:name4:peer12:piece lengthi16384e6:pieces20:\(String(repeating: "p", count: 20))e"
        let announce = "http://127.0.0.1:9/announce"
        try lab.inClient { try qbittorrent.addTorrent(Array("d8:announce\(announce.utf8.count):\(announce)4:info\(info)e".utf8)) }
    }

    /// A webhook receiver inside the client namespace, on 127.0.0.1: each POST's body, a line
    /// in `receiver.log`.
    var receiverPort: UInt16?

    func startReceiver() throws {
        let port = freePort()
        let script = """
            import http.server
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                    open('\(directory.path)/receiver.log', 'ab').write(body + b'\\n')
                    self.send_response(204); self.end_headers()
                def log_message(self, *a): pass
            http.server.HTTPServer(('127.0.0.1', \(port)), H).serve_forever()
            """
        _ = try lab.start(in: lab.client, NetworkLab.python!, ["-c", script], output: "\(directory.path)/receiver.out")
        receiverPort = port
        #expect(waitFor(seconds: 5) { (try? self.lab.inClient { try RawHTTP.request(port: port, "GET", "/") }) != nil }, "the receiver runs")
    }

    var notifications: [JSONValue] {
        ((try? String(contentsOfFile: "\(directory.path)/receiver.log", encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONValue.parse(Array($0.utf8)) }
    }

    func environment() -> [String: String] {
        var extra = [
            "PORTSYNC_SOURCE_STRATEGY": "natpmp", "PORTSYNC_NATPMP_INTERFACE": "wg0", "PORTSYNC_DAEMON_LOG_LEVEL": "debug",
            "PORTSYNC_CONNECTABILITY_INTERVAL_SECONDS": "1",
        ]
        if let receiverPort { extra["PORTSYNC_NOTIFY_URL"] = "http://127.0.0.1:\(receiverPort)/hook" }
        return daemonEnvironment(qbittorrent, in: directory, extra)
    }

    func startDaemon() throws -> Child {
        let environment = environment()
        let daemon = try lab.inClient { try Child(["run", "--trace"], environment: environment) }
        daemons.append(daemon)
        return daemon
    }

    func verdict() -> Verdict? {
        guard let data = FileManager.default.contents(atPath: "\(directory.path)/state.json"),
              let state = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let connectable = state["connectable"] as? [String: Any], let verdict = connectable["verdict"] as? String else { return nil }
        let evidence = (connectable["evidence"] as? [[String: Any]] ?? []).map { item in
            (kind: item["kind"] as? String ?? "?", ok: item["ok"] as? Bool, text: item["text"] as? String ?? "")
        }
        return Verdict(verdict: verdict, why: connectable["why"] as? String, action: connectable["action"] as? String, evidence: evidence)
    }

    func waitForVerdict(_ expected: String, why: String? = nil, seconds: Double = 15) -> Verdict? {
        var last: Verdict?
        _ = waitFor(seconds: seconds) {
            last = self.verdict()
            return last?.verdict == expected && (why == nil || last?.why == why)
        }
        return last
    }

    /// The connectability lines of the history, as `portsync history --json` lists them.
    func historyVerdicts() throws -> [(verdict: String, why: String?, action: String?)] {
        let (_, output) = try Child.run(["history", "--json"], environment: environment())
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let value = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let entries = value["connectability"] as? [[String: Any]] else { return [] }
        return entries.map { ($0["verdict"] as? String ?? "?", $0["why"] as? String, $0["action"] as? String) }
    }

    @Test func unknownUntilAPeerDialsThroughTheTunnelThenConnectableWithItsEvidence() throws {
        try startQBittorrent()
        let daemon = try startDaemon()
        let first = waitForVerdict("unknown", why: "no-incoming-yet")
        #expect(first?.why == "no-incoming-yet", "\(String(describing: first)) \(daemon.output)")
        #expect(first?.evidence.first?.kind == "forwarded" && first?.evidence.first?.ok == true)
        #expect(first?.evidence.first?.text.contains("40000") == true && first?.evidence.first?.text.contains("198.51.100.7") == true,
                "the port and the public address NAT-PMP's opcode 0 gave: \(String(describing: first))")
        #expect(first?.evidence.contains { $0.kind == "listener" && $0.ok == true && $0.text.contains("10.2.0.2") } == true, "\(String(describing: first))")

        let peer = try lab.holdConnectionFromGateway(port: 40000)
        defer { peer.stop(grace: 1) }
        #expect(waitFor(seconds: 5) { peer.output.contains("connected") }, "the peer reaches qBittorrent: \(peer.output)")
        let proven = waitForVerdict("connectable")
        #expect(proven?.verdict == "connectable", "\(String(describing: proven)) \(daemon.output)")
        #expect(proven?.evidence.contains { $0.kind == "incoming" && $0.ok == true && $0.text.contains(self.lab.gatewayAddress) } == true,
                "the peer that came through the tunnel: \(String(describing: proven))")
        let history = try historyVerdicts()
        #expect(history.map(\.verdict) == ["unknown", "connectable"], "from the first port on: \(history.map { "\($0.verdict) \($0.why ?? "")" })")

        let (_, status) = try Child.run(["status", "--json"], environment: environment())
        let listed = status.split(separator: "\n").last(where: { $0.hasPrefix("{") }).flatMap { try? JSONValue.parse(Array($0.utf8)) }
        #expect(listed?["connectable"]?["verdict"]?.string == "connectable", "status --json carries it: \(status)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }

    /// The port was taken when qBittorrent was moved to it (another program held it), so
    /// libtorrent never listened on it; qBittorrent still reports the port as its own, and
    /// nothing re-opens the listener on its own. portsync sees nothing on the tunnel's address,
    /// moves the port away and back once, and the listener is there.
    @Test func aListenerThatNeverOpenedOnTheTunnelIsHealedOnce() throws {
        try startQBittorrent()
        try startReceiver()
        let squatter = try lab.inClient { try Listener(address: .v4(IPv4Address(10, 2, 0, 2), port: 40000)) }
        let daemon = try startDaemon()
        #expect(waitFor(seconds: 10) { (try? self.lab.inClient { try self.qbittorrent.listenPort() }) == 40000 }, "\(daemon.output)")
        #expect(waitForVerdict("unknown") != nil, "the squatter's socket looks like a listener: \(daemon.output)")
        squatter.fd.close()

        var history: [(verdict: String, why: String?, action: String?)] = []
        #expect(waitFor(seconds: 20) {
            history = (try? self.historyVerdicts()) ?? []
            return history.contains { $0.action != nil } && history.last?.verdict == "unknown"
        }, "not connectable, healed, then fine: \(history) \(daemon.output)")
        let healed = verdict()
        #expect(history.map(\.why).contains("not-listening") || history.map(\.why).contains("listening-elsewhere"), "\(history)")
        #expect(history.filter { $0.action != nil }.map(\.action) == ["re-opened qbittorrent's listener"], "once: \(history)")
        #expect(healed?.evidence.contains { $0.kind == "listener" && $0.ok == true } == true, "\(String(describing: healed))")
        #expect(waitFor(seconds: 5) { (try? self.lab.acceptsFromGateway(port: 40000)) == true }, "peers get in: \(daemon.output)")
        // Doctor says what the running daemon found.
        let doctorEnvironment = environment()
        let (_, doctor) = try lab.inClient { try Child.run(["doctor"], environment: doctorEnvironment) }
        #expect(doctor.contains("✓ connectable: unknown (everything looks right, but no peer has connected yet), as the running daemon judged it"), "\(doctor)")

        // The person is told, once, with why.
        #expect(waitFor(seconds: 5) { self.notifications.contains { $0["event"]?.string == "connectability-lost" } }, "\(self.notifications)")
        let lost = notifications.filter { $0["event"]?.string == "connectability-lost" }
        #expect(lost.count == 1 && lost.first?["port"]?.integer == 40000 && lost.first?["why"]?.string?.contains("does not listen on port 40000") == true,
                "\(lost)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }

    /// The haugene/vpn-configs-contrib #372 case: the server forwards the port on one address
    /// (NAT-PMP's opcode 0: 198.51.100.7) while traffic leaves from another, which qBittorrent
    /// 5.1+ reports (`last_external_address_v4`); everything else looks right. Said plainly.
    /// qBittorrent 5.1 is a stand-in (Debian has 4.5.2, which does not report the address); a
    /// listener on the tunnel's address stands in for its sockets. The daemon runs in the
    /// test's loop inside the client namespace.
    @Test func anAddressMismatchIsSaidPlainly() throws {
        let log = LogCapture(level: .debug, trace: true)
        directory.write("config.toml", "")
        try startReceiver()
        try lab.inClient {
            let loop = try EventLoop(logger: log.logger)
            let fake = try FakeQBittorrent52(loop: loop)
            fake.transferInfo["last_external_address_v4"] = .string("203.0.113.132")
            let sockets = try Listener(address: .v4(IPv4Address(10, 2, 0, 2), port: 40000))
            defer { sockets.fd.close() }
            directory.write("password", fake.password)
            directory.write("config.toml", """
                [source]
                strategy = "natpmp"
                [natpmp]
                interface = "wg0"
                [qbittorrent]
                url = "http://127.0.0.1:\(fake.server.port)"
                password_file = "\(directory.path)/password"
                [daemon]
                state_file = "\(directory.path)/state.json"
                [notify]
                url = "http://127.0.0.1:\(receiverPort!)/hook"
                """)
            let configurationLoader = loader(file: "\(directory.path)/config.toml")
            let daemon = Daemon(loop: loop, loader: configurationLoader, loaded: try configurationLoader.load(), environment: [:])
            try daemon.start()
            defer { daemon.stop() }
            let mismatch = Connectability.Cause.addressMismatch(forwardedOn: IPv4Address(198, 51, 100, 7), leavesFrom: IPv4Address(203, 0, 113, 132))
            #expect(try runUntil(loop, seconds: 15) { daemon.connectability.record?.why == mismatch.code }, "\(log.text)")
            let record = try #require(daemon.connectability.record)
            #expect(record.verdict == "not connectable" && record.detail == mismatch.description)
            #expect(record.detail == "this server forwards on 198.51.100.7 but your traffic leaves from 203.0.113.132: choose another server")
            #expect(record.evidence.map(\.kind) == ["forwarded", "listener", "incoming", "client", "address"], "\(record.evidence)")
            #expect(record.evidence.last?.ok == false)
            #expect(fake.server.requests.filter { $0.target == "/api/v2/auth/login" }.count == 1, "one login for all of it")
            // The person is told, with the plain words.
            #expect(try runUntil(loop, seconds: 10) { self.notifications.contains { $0["event"]?.string == "connectability-lost" } },
                    "\(self.notifications)")
            let lost = notifications.filter { $0["event"]?.string == "connectability-lost" }
            #expect(lost.count == 1 && lost.first?["why"]?.string == mismatch.description, "\(lost)")
        }
    }

    /// The opt-in outside check finds the port closed while everything here looks right (a
    /// gateway that lost the mapping without saying so): the mapping is asked for again at once,
    /// not at the next renewal; the check asked again; still closed, the recovery command runs,
    /// once. The checker is a stand-in in the gateway's namespace, reached through the tunnel.
    @Test func aPortClosedFromOutsideIsMappedAgainThenTheRecoveryRuns() throws {
        try startQBittorrent()
        let checkerPort = freePort()
        let script = """
            import http.server, json
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    open('\(directory.path)/checker.log', 'a').write(self.path + ' ' + self.client_address[0] + '\\n')
                    body = json.dumps({"open": False, "port": int(self.path.rsplit('/', 1)[-1])}).encode()
                    self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *a): pass
            http.server.HTTPServer(('\(lab.gatewayAddress)', \(checkerPort)), H).serve_forever()
            """
        _ = try lab.start(in: lab.gateway, NetworkLab.python!, ["-c", script], output: "\(directory.path)/checker.out")
        try startReceiver()
        var environment = environment()
        environment["PORTSYNC_CONNECTABILITY_CHECK_URL"] = "http://\(lab.gatewayAddress):\(checkerPort)/check/{port}"
        environment["PORTSYNC_NATPMP_RECOVERY_COMMAND"] = "touch \(directory.path)/recovered"
        let daemon = try lab.inClient { try Child(["run", "--trace"], environment: environment) }
        daemons.append(daemon)
        func checks() -> [String] {
            ((try? String(contentsOfFile: "\(directory.path)/checker.log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        #expect(waitFor(seconds: 15) { checks().count >= 2 }, "asked, and asked again after the re-map: \(checks()) \(daemon.output)")
        #expect(checks().allSatisfy { $0 == "/check/40000 10.2.0.2" }, "through the tunnel, about the forwarded port: \(checks())")
        let mappings = gateway.requests.filter { $0["op"] as? String == "tcp" }
        #expect(mappings.count == 2, "the first mapping and the one asked again at once, long before the renewal: \(mappings)")
        #expect(waitFor(seconds: 10) { FileManager.default.fileExists(atPath: "\(self.directory.path)/recovered") }, "\(daemon.output)")
        let verdict = self.verdict()
        #expect(verdict?.verdict == "not connectable" && verdict?.why == "closed-from-outside", "\(String(describing: verdict))")
        let history = try historyVerdicts()
        #expect(history.filter { $0.action != nil }.map(\.action) == ["asked the source for its mapping again"], "once: \(history)")
        // The person is told once, with why.
        #expect(waitFor(seconds: 5) { self.notifications.contains { $0["event"]?.string == "connectability-lost" } }, "\(self.notifications)")
        let lost = notifications.filter { $0["event"]?.string == "connectability-lost" }
        #expect(lost.count == 1 && lost.first?["why"]?.string == Connectability.Cause.closedFromOutside(port: Port(40000)!).description, "\(lost)")
        Thread.sleep(forTimeInterval: 1.5)
        #expect(checks().count == 2 && gateway.requests.filter { $0["op"] as? String == "tcp" }.count == 2, "never a loop")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }
}
