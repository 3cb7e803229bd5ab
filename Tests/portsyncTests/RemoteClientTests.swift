import Foundation
import Glibc
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// `portsync once` against a real qbittorrent-nox serving its WebUI over its own HTTPS, with a
/// certificate from a CA the test makes: each URL form works, each way TLS can go wrong is one
/// line and nothing is applied.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available && TestCertificates.available,
                             "needs qbittorrent-nox, openssl and libssl3 (./scripts/test installs them as root)"))
final class RemoteClientTests {
    let directory = TemporaryDirectory()
    let certificates: TestCertificates
    let qbittorrent: QBittorrentInstance

    init() throws {
        certificates = try TestCertificates()
        qbittorrent = try QBittorrentInstance(https: (certificate: certificates.server, key: certificates.key))
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    var portFile: String { "\(directory.path)/run/Proton/VPN/forwarded_port" }

    func once(_ url: String, _ extra: [String: String] = [:], port: UInt16, command: String = "once") throws -> (Int32?, String) {
        try FileManager.default.createDirectory(atPath: (portFile as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try String(port).write(toFile: portFile, atomically: true, encoding: .utf8)
        var environment = daemonEnvironment(qbittorrent, in: directory, ["XDG_RUNTIME_DIR": "\(directory.path)/run",
                                                                          "PORTSYNC_QBITTORRENT_URL": url])
        environment.merge(extra) { $1 }
        return try Child.run([command], environment: environment)
    }

    var web: String { "127.0.0.1:\(qbittorrent.webUIPort)" }
    var trustTestCA: [String: String] { ["PORTSYNC_QBITTORRENT_CA_FILE": certificates.caCertificate] }

    @Test func onceAppliesOverHTTPSToAnAddressAndToAName() throws {
        var port = freePort()
        var (status, output) = try once("https://\(web)", trustTestCA, port: port)
        #expect(status == 0, "\(output)")
        #expect(output.contains("listen_port \(port)") || output.contains("port \(port)"), "\(output)")
        (status, output) = try once("https://\(web)", trustTestCA, port: port)
        #expect(output == "qBittorrent v4.5.2 already listens on port \(port) (proton-file); nothing to change\n")

        port = freePort()
        (status, output) = try once("https://localhost:\(qbittorrent.webUIPort)/", trustTestCA, port: port)
        #expect(status == 0, "\(output)")
        (status, output) = try once("https://\(web)", trustTestCA, port: port)
        #expect(output.contains("already listens on port \(port)"), "\(output)")

        let pinned = try certificates.fingerprint(of: certificates.server)
        port = freePort()
        (status, output) = try once("https://\(web)", ["PORTSYNC_QBITTORRENT_TLS_FINGERPRINT": pinned], port: port)
        #expect(status == 0, "\(output)")
    }

    @Test func eachTLSProblemIsOneLineAndNothingIsApplied() throws {
        let before = try once("https://\(web)", trustTestCA, port: freePort())
        #expect(before.0 == 0, "\(before.1)")
        let wrongFingerprint = String(repeating: "00", count: 32)
        let cases: [(String, [String: String], String)] = [
            ("https://\(web)", [:], "the certificate of 127.0.0.1 was refused: unable to get local issuer certificate; set ca_file"),
            ("https://\(web)", ["PORTSYNC_QBITTORRENT_TLS_FINGERPRINT": wrongFingerprint], "does not match tls_fingerprint: it is "),
            ("http://\(web)", [:], "the server closed the connection without answering (if it serves https, use https:// in the URL)"),
        ]
        for (url, extra, expected) in cases {
            let port = freePort()
            let (status, output) = try once(url, extra, port: port)
            #expect(status != 0 && output.contains(expected), "\(url) \(extra): \(output)")
            #expect(!output.contains(QBittorrentInstance.password))
            let check = try once("https://\(web)", trustTestCA, port: port)
            #expect(!check.1.contains("already listens"), "nothing was applied: \(check.1)")
        }
    }

    @Test func doctorSaysWhichKeyToSetForAnUntrustedCertificate() throws {
        let doctor = try once("https://\(web)", port: freePort(), command: "doctor").1
        #expect(doctor.contains("✗ qBittorrent: https://\(web): the certificate of 127.0.0.1 was refused: unable to get local issuer certificate;"), "\(doctor)")
        #expect(doctor.contains("→ set [qbittorrent].ca_file (its CA, or its certificate itself) or tls_fingerprint"), "\(doctor)")
    }
}
