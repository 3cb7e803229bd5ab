import Foundation
import Glibc
import HTTP
import TestSupport
import Testing
@testable import portsync

/// `strategy = "privatevpn"` in network namespaces the test makes, laid out as OpenVPN lays a
/// PrivateVPN tunnel out (`redirect-gateway def1`): a real qbittorrent-nox and portsync in the
/// client namespace; the API's stand-in, over TLS with the test's CA, on an "internet" address
/// (203.0.113.80) in the gateway namespace, so that the request crosses the tunnel. The name
/// connect.pvdatanet.com is PrivateVPN's own, the default URL: portsync runs in a mount namespace
/// of its own where /etc/resolv.conf names only the test's dnsmasq on the tunnel's gateway
/// (10.96.0.1, in the gateway namespace, as OpenVPN's pushed DNS lands there; it answers that name
/// with the stand-in and nothing else) and /etc/hosts has no entry for it. The client also has a
/// desktop's LAN, whose router runs a dnsmasq of its own (192.168.77.1): a resolver outside the
/// tunnel, never to be asked. Fails closed: if the mounts fail portsync never starts, and the
/// namespaces have no way out.
@Suite(.serialized, .enabled(if: NetworkLab.available && QBittorrentInstance.available && DNSMasq.available && TestCertificates.available
                             && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                             "needs root, iproute2, python3, qbittorrent-nox, dnsmasq, openssl, libssl3 and unshare"))
final class PrivateVPNDaemonTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/privatevpn_api.py").standardized.path
    static let apiAddress = "203.0.113.80"
    static let name = "connect.pvdatanet.com"

    let lab: NetworkLab
    let client: LabClient
    let dns: DNSMasq
    let lanDNS: DNSMasq
    let certificates: TestCertificates
    let resolvConf: String
    let hosts: String
    let control: String
    let log: String

    init() throws {
        lab = try NetworkLab(style: .openVPN)
        certificates = try TestCertificates()
        client = try LabClient(in: lab)
        try lab.addLAN()
        let lab = lab
        dns = try lab.inside(lab.gateway) { try DNSMasq(records: [Self.name: [Self.apiAddress]], address: lab.gatewayAddress) }
        lanDNS = try lab.inside(lab.lan!) { try DNSMasq(records: [Self.name: [Self.apiAddress]], address: "192.168.77.1") }
        resolvConf = client.directory.write("resolv.conf", "nameserver \(dns.address)\noptions timeout:2 attempts:1\n")
        hosts = client.directory.write("hosts", "127.0.0.1 localhost\n")
        control = "\(lab.directory)/privatevpn-control.json"
        log = "\(lab.directory)/privatevpn.log"
        try answer(["10.96.3.37": #"{"supported":true,"status":"Port 61527 UDP/TCP"}"#])
        try lab.ip("-n", lab.gateway, "addr", "add", "\(Self.apiAddress)/32", "dev", "lo")
        let certificate = try certificates.certificate(named: "privatevpn.pem", for: "DNS:\(Self.name)")
        _ = try lab.start(in: lab.gateway, NetworkLab.python!,
                          [Self.script, "--address", Self.apiAddress, "--cert", certificate, "--key", certificates.key,
                           "--control", control, "--log", log], output: "\(lab.directory)/privatevpn.out")
        guard waitFor(seconds: 10, { self.requests.contains { $0["ready"] != nil } }) else {
            throw ChildProcessError(message: "the PrivateVPN stand-in did not start: \((try? String(contentsOfFile: "\(lab.directory)/privatevpn.out", encoding: .utf8)) ?? "")")
        }
    }

    /// What the stand-in answers for each address asked about.
    func answer(_ bodies: [String: String]) throws {
        let answers = bodies.mapValues { ["status": 200, "body": $0] as [String: Any] }
        let data = try JSONSerialization.data(withJSONObject: ["answers": answers])
        try data.write(to: URL(fileURLWithPath: control + ".tmp"))
        rename(control + ".tmp", control)
    }

    /// The requests the stand-in logged (and its "ready").
    var requests: [[String: Any]] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
        }
    }

    var asked: [String] { requests.compactMap { request in (request["path"] as? String).map { "\($0) from \(request["peer"] ?? "") Host \(request["host"] ?? "")" } } }

    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ["PATH": "/usr/bin:/bin", "HOME": "\(client.directory.path)/home", "XDG_RUNTIME_DIR": "/run/user/1000",
                           "PORTSYNC_SOURCE_STRATEGY": "privatevpn", "PORTSYNC_PRIVATEVPN_INTERFACE": "wg0",
                           "PORTSYNC_PRIVATEVPN_CA_FILE": certificates.caCertificate]
        environment.merge(extra) { $1 }
        return client.environment(environment)
    }

    /// portsync in the client namespace, in a mount namespace whose resolv.conf (`resolvConf`
    /// unless another is given) and hosts are the test's.
    func portsync(_ arguments: [String], environment: [String: String], output: String, resolvConf: String? = nil) throws -> ChildProcess {
        let (executable, prefix) = Child.isolated(names: (resolvConf ?? self.resolvConf, hosts))
        return try lab.inClient {
            try ChildProcess(executable: executable, arguments: prefix + arguments, environment: environment,
                             outputPath: "\(client.directory.path)/\(output)")
        }
    }

    func run(_ arguments: [String], environment: [String: String], resolvConf: String? = nil) throws -> (Int32?, String) {
        let child = try portsync(arguments, environment: environment, output: "\(arguments[0]).out", resolvConf: resolvConf)
        let status = child.wait(seconds: 20)
        let output = child.output
        unlink("\(client.directory.path)/\(arguments[0]).out")
        return (status, output)
    }

    /// An OpenVPN reconnect to another server: the tunnel's address changes, then its routes come
    /// back (a request in between finds no route and is retried after the first back-off, 2 s).
    func moveTunnel(from old: String, to new: String) throws {
        try lab.ip("-n", lab.client, "addr", "del", "\(old)/16", "dev", "wg0")
        try lab.ip("-n", lab.client, "addr", "add", "\(new)/16", "dev", "wg0")
        try lab.ip("-n", lab.client, "route", "replace", "0.0.0.0/1", "via", "10.96.0.1", "dev", "wg0")
        try lab.ip("-n", lab.client, "route", "replace", "128.0.0.0/1", "via", "10.96.0.1", "dev", "wg0")
    }

    @Test func thePortComesByNameThroughTheTunnelAndFollowsTheServer() throws {
        try answer(["10.96.3.37": #"{"supported":true,"status":"Port 61527 UDP/TCP"}"#,
                    "10.96.5.9": #"{"supported":true,"status":"Port 40123 UDP/TCP"}"#,
                    "10.96.7.7": #"{"supported":false}"#])
        let environment = environment()
        let daemon = try portsync(["run"], environment: environment, output: "daemon.out")
        defer { daemon.stop(grace: 5) }
        #expect(waitFor(seconds: 15) { self.client.listenPort == 61527 }, "\(daemon.output)")
        #expect(asked == ["/v3/Api/port?ip[]=10.96.3.37 from 10.96.3.37 Host connect.pvdatanet.com"], "from the tunnel's address, by name")
        #expect(dns.queries.contains("query[A] connect.pvdatanet.com from 10.96.3.37"), "the name came from the tunnel's name server: \(dns.queries)")
        #expect(lanDNS.queries == [], "nothing asked outside the tunnel")

        // Another server: another address, asked at once, another port.
        try moveTunnel(from: "10.96.3.37", to: "10.96.5.9")
        #expect(waitFor(seconds: 8) { self.client.listenPort == 40123 }, "\(daemon.output)")
        #expect(asked.last == "/v3/Api/port?ip[]=10.96.5.9 from 10.96.5.9 Host connect.pvdatanet.com")

        // A server that forwards none: said with its fix; the clients keep what they had.
        try moveTunnel(from: "10.96.5.9", to: "10.96.7.7")
        var record: JSONValue?
        #expect(waitFor(seconds: 8) {
            record = sourceRecord(environment, "privatevpn")
            return record?["state"]?.string == "failing"
        }, "\(record?.serialized ?? "no record"): \(daemon.output)")
        #expect(record?["problem"]?.string == #"PrivateVPN forwards no port to 10.96.7.7 ({"supported":false})"#, "\(record?.serialized ?? "")")
        #expect(record?["fix"]?.string == "connect over OpenVPN: PrivateVPN forwards a port on its OpenVPN servers only, not over WireGuard")
        let (_, status) = try Child.run(["status"], environment: environment)
        #expect(status.contains(#"""
              ✗ PrivateVPN failing: PrivateVPN forwards no port to 10.96.7.7 ({"supported":false})
              → connect over OpenVPN: PrivateVPN forwards a port on its OpenVPN servers only, not over WireGuard
            """#), "\(status)")
        #expect(asked.count == 3 && asked.last == "/v3/Api/port?ip[]=10.96.7.7 from 10.96.7.7 Host connect.pvdatanet.com", "\(asked)")
        #expect(client.listenPort == 40123)
        let changes = try lab.inClient { try listedChanges(environment) }
        #expect(changes.map(\.description) == ["start none→61527 [\"qbittorrent\": \"set\"]",
                                               "tunnel-recreated 61527→40123 [\"qbittorrent\": \"set\"]",
                                               "source-emptied 40123→none [\"qbittorrent\": \"kept\"]"], "\(changes)")
    }

    /// resolv.conf names the LAN's router, as on a desktop whose OpenVPN client leaves it alone:
    /// it is asked through the tunnel, where nothing holds its address, so the lookup fails, said
    /// with the name, the server and the fix; `[privatevpn] nameserver` names the tunnel's own.
    /// The LAN's resolver, which would have answered, is never asked.
    @Test func theAPIsNameIsNeverAskedOutsideTheTunnel() throws {
        let lan = client.directory.write("resolv-lan.conf", "nameserver 192.168.77.1\noptions timeout:1 attempts:1\n")
        var (status, output) = try run(["once"], environment: environment(), resolvConf: lan)
        #expect(status == 1 && output.contains(#"PrivateVPN's port API at https://connect.pvdatanet.com/v3/Api/port is unreachable: cannot resolve "connect.pvdatanet.com": no answer in time from the name server 192.168.77.1, asked through wg0"#), "\(output)")
        #expect(output.contains("set [privatevpn] nameserver to a name server reached through wg0"), "\(output)")
        #expect(asked == [])

        (status, output) = try run(["once", "--json"], environment: environment(["PORTSYNC_PRIVATEVPN_NAMESERVER": #"["10.96.0.1"]"#]), resolvConf: lan)
        #expect(status == 0 && client.listenPort == 61527, "\(output)")
        #expect(dns.queries.contains("query[A] connect.pvdatanet.com from 10.96.3.37"), "\(dns.queries)")
        #expect(lanDNS.queries == [], "nothing asked outside the tunnel: \(lanDNS.queries)")
    }

    @Test func onceAndDoctorAskThroughTheTunnel() throws {
        let environment = environment()
        var (status, output) = try run(["once", "--json"], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(try JSONValue.parse(Array((output.split(separator: "\n").last { $0.hasPrefix("{") } ?? "").utf8))["port"]?.integer == 61527, "\(output)")
        #expect(client.listenPort == 61527)
        (status, output) = try run(["doctor"], environment: environment)
        #expect(status == 0 && output.contains("✓ PrivateVPN: port 61527 from https://connect.pvdatanet.com/v3/Api/port for 10.96.3.37"), "\(output)")

        try answer(["10.96.3.37": #"{"supported":false}"#])
        (status, output) = try run(["once"], environment: environment)
        #expect(status == 1 && output.contains("PrivateVPN forwards no port to 10.96.3.37 ({\"supported\":false}); connect over OpenVPN: PrivateVPN forwards a port on its OpenVPN servers only, not over WireGuard"), "\(output)")
        (status, output) = try run(["doctor"], environment: environment)
        #expect(status != 0 && output.contains("PrivateVPN forwards no port to 10.96.3.37 ({\"supported\":false})"), "\(output)")

        // Without the test's CA the stand-in's certificate is refused: nothing is taken from a server that is not PrivateVPN's.
        try answer(["10.96.3.37": #"{"supported":true,"status":"Port 61527 UDP/TCP"}"#])
        (status, output) = try run(["once"], environment: environment.merging(["PORTSYNC_PRIVATEVPN_CA_FILE": ""]) { $1 })
        #expect(status == 1 && output.contains("PrivateVPN's port API at https://connect.pvdatanet.com/v3/Api/port failed: ") && output.contains("certificate"), "\(output)")
    }
}
