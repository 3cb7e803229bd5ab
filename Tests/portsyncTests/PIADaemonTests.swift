import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// The daemon with `strategy = "pia"` in network namespaces the test makes, against a stand-in of
/// PIA's API (Tests/Fixtures/pia_server.py) in PIA's shapes: the daemon and a real qbittorrent-nox
/// in the client namespace (a wg-quick tunnel, `wg0` = 10.2.0.2, every packet through it); the
/// server's API port (19999) on 10.2.0.1 in the gateway namespace, with a certificate for the
/// common name `amsterdam401` alone from a CA the test makes; the token endpoint in an "internet"
/// namespace (198.51.100.10, port 443, a certificate for that address and for PIA's own name)
/// reached only through the tunnel and the gateway.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available && TestCertificates.available,
                             "needs root, iproute2, python3, openssl, libssl3 and qbittorrent-nox"))
final class PIADaemonTests {
    static let serverScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/pia_server.py").standardized.path
    static let password = "pia pass&word=1"
    static let tokenHost = "www.privateinternetaccess.com"

    var lab: NetworkLab!
    var client: LabClient!
    let directory = TemporaryDirectory()
    var control: [String: Any] = ["username": "p1234567", "password": PIADaemonTests.password, "ports": [47000, 47001, 47002],
                                  "expires_in": 60 * 86_400, "busy": [Int](), "expired": [Int](), "hang_binds": 0]

    var controlPath: String { "\(directory.path)/pia-control.json" }
    var logPath: String { "\(directory.path)/pia.log" }
    var stateFile: String { "\(directory.path)/state.json" }

    func setUp() throws {
        try makeCertificates()
        try writeControl()
        lab = try NetworkLab(style: .wgQuick(routeDelay: 0))
        try lab.addInternet()
        try startServer(role: "api", in: lab.gateway, address: "10.2.0.1", port: 19999, certificate: "api")
        try startServer(role: "token", in: lab.internet!, address: "198.51.100.10", port: 443, certificate: "token")
        client = try LabClient(in: lab, directory: directory)
        directory.write("pia-password", Self.password + "\n")
    }

    /// A CA, the API's certificate (CN=amsterdam401, no subject alt name, as PIA's) and the token
    /// endpoint's (IP 198.51.100.10 and www.privateinternetaccess.com).
    func makeCertificates() throws {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "30", "-subj", "/CN=PIA test CA"])
        for (name, subject, names) in [("api", "/CN=amsterdam401", nil), ("token", "/CN=token.test", "IP:198.51.100.10,DNS:\(Self.tokenHost)")] {
            try openssl(["req"] + ec + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", subject])
            var extensions: [String] = []
            if let names {
                try "subjectAltName=\(names)\n".write(toFile: path("\(name).ext"), atomically: true, encoding: .utf8)
                extensions = ["-extfile", path("\(name).ext")]
            }
            try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
                         "-days", "30"] + extensions + ["-out", path("\(name).pem")])
        }
    }

    func path(_ name: String) -> String { "\(directory.path)/\(name)" }

    func openssl(_ arguments: [String]) throws {
        let child = try ChildProcess(executable: TestCertificates.opensslPath!, arguments: arguments,
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path], outputPath: path("openssl.log"))
        guard child.wait(seconds: 20) == 0 else { throw ChildProcessError(message: "openssl \(arguments[0]) failed: \(child.output)") }
    }

    func startServer(role: String, in namespace: String, address: String, port: Int, certificate: String) throws {
        _ = try lab.start(in: namespace, NetworkLab.python!,
                          [Self.serverScript, "--role", role, "--address", address, "--port", "\(port)", "--cert", path("\(certificate).pem"),
                           "--key", path("\(certificate).key"), "--control", controlPath, "--state", path("pia-state.json"), "--log", logPath],
                          output: path("pia-\(role).out"))
        let ready = waitFor { self.entries.filter { $0["ready"] != nil }.count >= (role == "api" ? 1 : 2) }
        guard ready else { throw ChildProcessError(message: "the PIA stand-in (\(role)) did not start: \((try? String(contentsOfFile: path("pia-\(role).out"), encoding: .utf8)) ?? "")") }
    }

    func set(_ values: [String: Any]) throws {
        control.merge(values) { $1 }
        try writeControl()
    }

    func writeControl() throws {
        try JSONSerialization.data(withJSONObject: control).write(to: URL(fileURLWithPath: controlPath + ".tmp"))
        rename(controlPath + ".tmp", controlPath)
    }

    var entries: [[String: Any]] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    /// The requests the stand-in answered (or hung on), by path.
    func requests(_ path: String) -> [[String: Any]] { entries.filter { $0["path"] as? String == path } }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = [
            "PORTSYNC_SOURCE_STRATEGY": "pia", "PORTSYNC_PIA_INTERFACE": "wg0", "PORTSYNC_PIA_USERNAME": "p1234567",
            "PORTSYNC_PIA_PASSWORD_FILE": path("pia-password"), "PORTSYNC_PIA_SERVER_NAME": "amsterdam401",
            "PORTSYNC_PIA_SERVER_ADDRESS": "10.2.0.1", "PORTSYNC_PIA_CA_FILE": path("ca.pem"),
            "PORTSYNC_PIA_TOKEN_URL": "https://198.51.100.10/api/client/v2/token", "PORTSYNC_DAEMON_LOG_LEVEL": "debug",
        ]
        environment.merge(extra) { $1 }
        return client.environment(environment)
    }

    /// `names`: the resolv.conf and hosts the daemon sees (`Child.isolated(names:)`).
    func startDaemon(_ extra: [String: String] = [:], names: (resolvConf: String, hosts: String)? = nil) throws -> Child {
        let environment = environment(extra)
        return try client.start(["run", "--trace"], environment: environment, names: names)
    }

    /// What `status --json` says of the PIA source, once `daemon` wrote its state file.
    func sourceRecord(writtenBy daemon: Child) -> JSONValue? {
        portsyncTests.sourceRecord(environment(), "pia", writtenBy: daemon.process.pid)
    }

    /// Every token, payload and signature the stand-in handed out, and the password.
    func secrets() -> [String] {
        guard let data = FileManager.default.contents(atPath: path("pia-state.json")),
              let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [Self.password] }
        let tokens = state["tokens"] as? [String] ?? []
        let signed = state["signed"] as? [String: [String: Any]] ?? [:]
        return [Self.password, FormEncoding.percentEncode(Self.password)] + tokens + signed.keys + signed.values.compactMap { $0["signature"] as? String }
    }

    func expectNoSecret(in text: String, _ what: String) {
        for secret in secrets() where !secret.isEmpty {
            #expect(!text.contains(secret) && !text.contains(FormEncoding.percentEncode(secret)), "a secret (\(secret.prefix(4))…) in \(what)")
        }
    }

    @Test func aPortFromPIAReachesQBittorrentThroughTheTunnel() throws {
        try setUp()
        let daemon = try startDaemon()
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47000 }, "\(daemon.output)")
        let token = requests("/api/client/v2/token")
        #expect(token.count == 1)
        #expect(token.first?["from"] as? String == "10.2.0.2", "the token is asked through the tunnel")
        #expect(token.first?["fields"] as? [String] == ["password", "username"])
        let signature = requests("/getSignature"), bind = requests("/bindPort")
        #expect(signature.count == 1 && bind.count == 1)
        for entry in signature + bind {
            #expect(entry["host"] as? String == "amsterdam401:19999")
            #expect(entry["sni"] as? String == "amsterdam401", "the server's common name is the name checked")
            #expect(entry["from"] as? String == "10.2.0.2")
            #expect(entry["status"] as? Int == 200)
        }
        #expect(bind.first?["fields"] as? [String] == ["payload", "signature"])
        var info = stat()
        #expect(stat("\(stateFile).pia", &info) == 0 && info.st_mode & 0o777 == 0o600, "the payload and signature are kept, 0600")
        let (_, status) = try lab.inClient { try Child.run(["status", "--json"], environment: self.environment()) }
        let record = try JSONValue.parse(Array(status.utf8))["sources"]?["pia"]
        #expect(record?["state"]?.string == "forwarding" && record?["port"]?.integer == 47000, "\(status)")
        client.stop(daemon)
        expectNoSecret(in: daemon.output, "the daemon's output with --trace")
        expectNoSecret(in: status, "portsync status --json")
        expectNoSecret(in: (try? String(contentsOfFile: stateFile, encoding: .utf8)) ?? "", "the state file")
    }

    /// The token endpoint by its own name: resolv.conf names the desktop's LAN router
    /// (192.168.77.1, outside the tunnel), whose dnsmasq would answer; PIA's name server
    /// (10.0.0.243) is beyond the tunnel, in the gateway. Only the latter may be asked, and only
    /// through the tunnel; a name server that does not answer is said with the name and itself.
    @Test func theTokenEndpointsNameIsAskedOnlyThroughTheTunnel() throws {
        try setUp()
        try lab.addLAN()
        try lab.ip("-n", lab.gateway, "addr", "add", "10.0.0.243/32", "dev", "lo")
        try lab.ip("-n", lab.gateway, "addr", "add", "10.0.0.99/32", "dev", "lo")
        let lanDNS = try lab.inside(lab.lan!) { try DNSMasq(records: [Self.tokenHost: ["198.51.100.10"]], address: "192.168.77.1") }
        let tunnelDNS = try lab.inside(lab.gateway) { try DNSMasq(records: [Self.tokenHost: ["198.51.100.10"]], address: "10.0.0.243") }
        let silent = try lab.inside(lab.gateway) { try SilentNameServer(address: "10.0.0.99") }
        let names = (resolvConf: directory.write("resolv.conf", "nameserver 192.168.77.1\noptions timeout:1 attempts:1\n"),
                     hosts: directory.write("hosts", "127.0.0.1 localhost\n"))
        let byName = ["PORTSYNC_PIA_TOKEN_URL": "https://\(Self.tokenHost)/api/client/v2/token"]

        let daemon = try startDaemon(byName, names: names)
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47000 }, "\(daemon.output)")
        let token = requests("/api/client/v2/token")
        #expect(token.count == 1 && token.first?["host"] as? String == Self.tokenHost && token.first?["from"] as? String == "10.2.0.2")
        #expect(tunnelDNS.queries.contains("query[A] \(Self.tokenHost) from 10.2.0.2"), "\(tunnelDNS.queries)")
        #expect(lanDNS.queries == [], "nothing asked outside the tunnel")
        client.stop(daemon)

        // No kept signature: a token again, its name asked of a name server that never answers.
        unlink("\(stateFile).pia")
        let failing = try startDaemon(byName.merging(["PORTSYNC_PIA_NAMESERVER": #"["10.0.0.99"]"#]) { $1 }, names: names)
        // The trace's "← failed: …" comes first, then this line.
        let problem = #"token: PIA's token endpoint \#(Self.tokenHost) is unreachable through wg0: cannot resolve "\#(Self.tokenHost)": no answer in time from the name server 10.0.0.99, asked through wg0"#
        var record: JSONValue?
        #expect(waitFor(seconds: 15) {
            record = self.sourceRecord(writtenBy: failing)
            return record?["problem"]?.string == problem
        }, "\(record?.serialized ?? "no record"): \(failing.output)")
        #expect(record?["state"]?.string == "failing" && record?["port"] == nil)
        #expect(requests("/api/client/v2/token").count == 1 && lanDNS.queries == [])
        withExtendedLifetime(silent) { client.stop(failing) }
    }

    @Test func aBusyPortMeansANewSignatureWithTheSameToken() throws {
        try setUp()
        try set(["busy": [47000]])
        let daemon = try startDaemon()
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47001 }, "\(daemon.output)")
        #expect(requests("/bindPort").map { $0["status"] as? Int } == [409, 200])
        #expect(requests("/getSignature").count == 2)
        #expect(requests("/api/client/v2/token").count == 1, "the token of the day serves again")
        #expect(waitFor(seconds: 5) { self.sourceRecord(writtenBy: daemon)?["port"]?.integer == 47001 }, "\(daemon.output)")
        client.stop(daemon)
    }

    @Test func aRestartKeepsThePortWithoutAskingAgain() throws {
        try setUp()
        let first = try startDaemon()
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47000 }, "\(first.output)")
        client.stop(first)
        let second = try startDaemon()
        #expect(waitFor(seconds: 20) { self.requests("/bindPort").count == 2 }, "\(second.output)")
        #expect(waitFor(seconds: 5) {
            let record = self.sourceRecord(writtenBy: second)
            return record?["state"]?.string == "forwarding" && record?["port"]?.integer == 47000
        }, "\(second.output)")
        #expect(requests("/api/client/v2/token").count == 1 && requests("/getSignature").count == 1, "no token and no signature after the restart")
        #expect(Set(requests("/bindPort").compactMap { $0["payload_index"] as? Int }) == [0], "the same payload bound again")
        #expect(client.listenPort == 47000)
        client.stop(second)
    }

    @Test func anExpiredPayloadIsReplacedAfterARestart() throws {
        try setUp()
        let first = try startDaemon()
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47000 }, "\(first.output)")
        client.stop(first)
        try set(["expired": [47000]])
        let second = try startDaemon()
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47001 }, "\(second.output)")
        #expect(requests("/bindPort").map { $0["status"] as? Int } == [200, 400, 200])
        #expect(requests("/getSignature").count == 2)
        #expect(waitFor(seconds: 5) { self.sourceRecord(writtenBy: second)?["port"]?.integer == 47001 }, "\(second.output)")
        #expect(try listedChanges(environment()).last.map { [$0.previous, $0.port] } == [47000, 47001], "the kept port given up")
        client.stop(second)
    }

    @Test func aTunnelLostMidBindBindsTheSamePayloadOnceItIsBack() throws {
        try setUp()
        try set(["hang_binds": 1])
        let daemon = try startDaemon()
        #expect(waitFor(seconds: 20) { self.requests("/bindPort").contains { $0["hung"] as? Bool == true } }, "\(daemon.output)")
        try lab.recreateTunnel(routeDelay: 0.3)
        #expect(waitFor(seconds: 20) { self.client.listenPort == 47000 }, "\(daemon.output)")
        let binds = requests("/bindPort")
        #expect(binds.count == 2 && binds.last?["status"] as? Int == 200)
        #expect(Set(binds.compactMap { $0["payload_index"] as? Int }) == [0], "the same payload")
        #expect(requests("/getSignature").count == 1)
        #expect(waitFor(seconds: 5) { self.sourceRecord(writtenBy: daemon)?["port"]?.integer == 47000 }, "\(daemon.output)")
        #expect(historyReasons(environment()) == ["start"], "the port stood through the lost tunnel: no second change")
        client.stop(daemon)
    }

    @Test func aCertificateForAnotherServerIsRefused() throws {
        try setUp()
        let daemon = try startDaemon(["PORTSYNC_PIA_SERVER_NAME": "toronto402"])
        var record: JSONValue?
        #expect(waitFor(seconds: 20) {
            record = self.sourceRecord(writtenBy: daemon)
            return record?["state"]?.string == "failing"
        }, "\(daemon.output)")
        let problem = record?["problem"]?.string ?? ""
        #expect(problem.hasPrefix("getSignature: PIA's API on toronto402 failed"), "\(problem)")
        #expect(problem.contains("it is for amsterdam401 (its subject's common name; it has no subject alt names), not toronto402"), "\(problem)")
        #expect(requests("/getSignature").isEmpty, "nothing asked of a server whose certificate is not its name's")
        #expect(client.listenPort != 47000)
        client.stop(daemon)
    }

    @Test func onceAndDoctorTakeThePIASourceAsItIs() throws {
        try setUp()
        var (status, output) = try lab.inClient { try Child.run(["once", "--json"], environment: self.environment()) }
        #expect(status == 0, "\(output)")
        let result = try JSONValue.parse(Array(output.split(separator: "\n").last.map { Array($0.utf8) } ?? []))
        #expect(result["source"]?.string == "pia")
        #expect(result["port"]?.integer == 47000)
        #expect(client.listenPort == 47000)
        (status, output) = try lab.inClient { try Child.run(["doctor"], environment: self.environment()) }
        #expect(output.contains("✓ PIA: port 47000"), "\(output)")
        #expect(requests("/getSignature").count == 1, "doctor binds the kept payload of once")
        expectNoSecret(in: output, "doctor")
        try set(["username": "p7654321"])
        _ = FileManager.default.createFile(atPath: "\(stateFile).pia", contents: nil)
        (status, output) = try lab.inClient { try Child.run(["doctor"], environment: self.environment()) }
        #expect(status == 1)
        #expect(output.contains("✗ PIA: token: PIA refused the login of \"p1234567\" (401"), "\(output)")
        #expect(output.contains("→ check [pia].username and the password in [pia].password_file"), "\(output)")
        expectNoSecret(in: output, "doctor")
    }
}
