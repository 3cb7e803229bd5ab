import Foundation
import Glibc
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The daemon with qBittorrent's URL a host name, in a mount namespace of its own where
/// /etc/resolv.conf names a silent name server first and dnsmasq second: while the first one's
/// timeout runs, /healthz answers at once; then the second answers and the port is applied.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available && DNSMasq.available && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                             "needs qbittorrent-nox, dnsmasq, unshare and root"))
final class NameServerDaemonTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    @Test func aDeadNameServerDoesNotStopHealthz() throws {
        let silent = try SilentNameServer()
        let dns = try DNSMasq(records: ["nas.test": ["127.0.0.1"]])
        let resolvConf = directory.write("resolv.conf", "nameserver \(silent.address)\nnameserver \(dns.address)\noptions timeout:3 attempts:1\n")
        let hosts = directory.write("hosts", "127.0.0.1 localhost\n")
        let port = freePort()
        directory.write("run/Proton/VPN/forwarded_port", String(port))
        let metricsPort = freePort()
        let environment = daemonEnvironment(qbittorrent, in: directory, [
            "PATH": "/usr/bin:/bin", "HOME": directory.path, "XDG_RUNTIME_DIR": "\(directory.path)/run",
            "PORTSYNC_SOURCE_STRATEGY": "file",
            "PORTSYNC_QBITTORRENT_URL": "http://nas.test:\(qbittorrent.webUIPort)",
            "PORTSYNC_DAEMON_METRICS_LISTEN": "127.0.0.1:\(metricsPort)",
        ])
        // unshare and sh exec: the PID is portsync's own.
        let daemon = try ChildProcess(executable: "/usr/bin/unshare",
                                      arguments: ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                                  #"mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && exec "$0" run"#,
                                                  portsyncBinary, resolvConf, hosts],
                                      environment: environment, outputPath: "\(directory.path)/output")
        defer { daemon.stop(grace: 5) }
        #expect(daemon.waitForOutput(containing: "metrics and health on").contains("/healthz"))
        let health = try RawHTTP.request(port: metricsPort, "GET", "/healthz")
        #expect(!dns.log.contains("query[A] nas.test"), "/healthz answered while the name lookup still waits for the silent server")
        #expect(health.status == 503 && health.text.contains("applying port \(port)"), "\(health.text)")
        let output = daemon.waitForOutput(containing: "listen_port \(port) applied and verified", seconds: 10)
        #expect(output.contains("listen_port \(port) applied and verified"), "\(output)")
        #expect(dns.log.contains("query[A] nas.test"), "the second name server answered")
        #expect(try qbittorrent.listenPort() == Int(port))
    }
}
