import Foundation
import Glibc
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// qbittorrent-nox behind Debian's nginx as a TLS reverse proxy at /qbt/: the settings the
/// docs/how-it-works.md gives work with `portsync once`, and `doctor` names the one that is missing.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available && TestCertificates.available && NginxProxy.available,
                             "needs qbittorrent-nox, openssl, libssl3 and nginx (./scripts/test installs them as root)"))
final class ReverseProxyTests {
    let directory = TemporaryDirectory()
    let certificates: TestCertificates
    let qbittorrent: QBittorrentInstance

    init() throws {
        certificates = try TestCertificates()
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    func run(_ command: String, through proxy: NginxProxy, port: UInt16, host: String = "127.0.0.1", path: String = "/qbt/") throws -> (Int32?, String) {
        let portFile = "\(directory.path)/run/Proton/VPN/forwarded_port"
        try FileManager.default.createDirectory(atPath: (portFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try String(port).write(toFile: portFile, atomically: true, encoding: .utf8)
        let environment = daemonEnvironment(qbittorrent, in: directory, [
            "XDG_RUNTIME_DIR": "\(directory.path)/run",
            "PORTSYNC_QBITTORRENT_URL": "https://\(host):\(proxy.port)\(path)",
            "PORTSYNC_QBITTORRENT_CA_FILE": certificates.caCertificate,
        ])
        return try Child.run([command], environment: environment)
    }

    @Test func theRecommendedSettingsWork() throws {
        let proxy = try NginxProxy(backendPort: qbittorrent.webUIPort, certificate: certificates.server, key: certificates.key)
        let port = freePort()
        let (status, output) = try run("once", through: proxy, port: port)
        #expect(status == 0, "\(output)")
        #expect(try qbittorrent.listenPort() == Int(port))
        let doctor = try run("doctor", through: proxy, port: port).1
        #expect(doctor.contains("✓ qBittorrent: https://127.0.0.1:\(proxy.port)/qbt answers"), "\(doctor)")
        #expect(doctor.contains("✓ settings: listen_port \(port)"), "\(doctor)")

        let overIPv6 = freePort()
        let (status6, output6) = try run("once", through: proxy, port: overIPv6, host: "[::1]")
        #expect(status6 == 0, "\(output6)")
        #expect(try qbittorrent.listenPort() == Int(overIPv6))
        let access = try String(contentsOfFile: "\(proxy.directory)/access.log", encoding: .utf8)
        #expect(access.contains("::1 - - ["), "reached over IPv6: \(access)")
    }

    /// The proxy's address without the sub-path: nginx answers with its own 404 page, which
    /// is named as nginx's, not taken for a wrong password.
    @Test func theProxysOwnPageIsNamedAsNginxs() throws {
        let proxy = try NginxProxy(backendPort: qbittorrent.webUIPort, certificate: certificates.server, key: certificates.key)
        let port = freePort()
        let doctor = try run("doctor", through: proxy, port: port, path: "/")
        #expect(doctor.0 == 1 && doctor.1.contains("✗ qBittorrent: https://127.0.0.1:\(proxy.port) answered as nginx (its own page), not qBittorrent (404)"), "\(doctor.1)")
        let once = try run("once", through: proxy, port: port, path: "/")
        #expect(once.0 != 0 && once.1.contains("answered as nginx (its own page)") && !once.1.contains("password"), "\(once.1)")
        #expect(try qbittorrent.listenPort() != Int(port))
    }

    @Test func theClientsHostPassedThroughIsNamedByDoctor() throws {
        let proxy = try NginxProxy(backendPort: qbittorrent.webUIPort, certificate: certificates.server, key: certificates.key,
                                   locationSettings: ["proxy_set_header Host $http_host;", "proxy_set_header X-Forwarded-Host $http_host;"])
        let port = freePort()
        let once = try run("once", through: proxy, port: port)
        #expect(once.0 == 2 && once.1.contains("rejected the Host header"), "\(once.1)")
        let doctor = try run("doctor", through: proxy, port: port).1
        #expect(doctor.contains("✗ qBittorrent: https://127.0.0.1:\(proxy.port)/qbt answered 401 before any login: qBittorrent's Host-header check refused the Host header the proxy passed on"), "\(doctor)")
        #expect(doctor.contains("nginx: proxy_set_header Host $proxy_host; proxy_set_header X-Forwarded-Host $http_host;"))
        #expect(!doctor.contains("✓ login:") && !doctor.contains("✗ login:"), "no login is tried")
        #expect(try qbittorrent.listenPort() != Int(port), "nothing applied")
    }

    @Test func aProxyThatPassesThePathOnIsNamedByDoctor() throws {
        let proxy = try NginxProxy(backendPort: qbittorrent.webUIPort, certificate: certificates.server, key: certificates.key,
                                   locationSettings: NginxProxy.recommended, stripsPath: false)
        let doctor = try run("doctor", through: proxy, port: freePort()).1
        #expect(doctor.contains("✗ qBittorrent: /qbt/api/v2/app/webapiVersion answered 404: the proxy passes the base path /qbt on to qBittorrent"), "\(doctor)")
        #expect(doctor.contains("proxy_pass http://QBITTORRENT:PORT/; } with the trailing slash"))
    }
}
