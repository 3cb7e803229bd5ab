import Foundation
import TestSupport
import Testing
@testable import portsync

/// HTTPS, a base path and the TLS keys are not qBittorrent's alone: a real transmission-daemon
/// behind Debian's nginx as a TLS reverse proxy at /tr/, reached as `[transmission] url =
/// "https://127.0.0.1:PORT/tr/"`, with the test CA as `ca_file`, and refused without it.
@Suite(.serialized, .enabled(if: TransmissionInstance.available && TestCertificates.available && NginxProxy.available,
                             "needs transmission-daemon, openssl, libssl3 and nginx (./scripts/test installs them as root)"))
final class RemoteTransmissionTests {
    let directory = TemporaryDirectory()
    let certificates: TestCertificates
    let transmission: TransmissionInstance
    let proxy: NginxProxy

    init() throws {
        certificates = try TestCertificates()
        transmission = try TransmissionInstance()
        proxy = try NginxProxy(backendPort: transmission.rpcPort, certificate: certificates.server, key: certificates.key,
                               location: "tr", locationSettings: [])
        directory.write("transmission-password", TransmissionInstance.password + "\n", mode: 0o600)
    }

    deinit { transmission.stop() }

    func once(_ port: UInt16, tls: String) throws -> (Int32?, String) {
        directory.write("forwarded_port", "\(port)")
        let file = directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(directory.path)/forwarded_port"
            [transmission]
            url = "https://127.0.0.1:\(proxy.port)/tr/"
            username = "\(TransmissionInstance.username)"
            password_file = "\(directory.path)/transmission-password"
            \(tls)
            [daemon]
            state_file = "\(directory.path)/state.json"
            """)
        return try Child.run(["once", "--config", file])
    }

    @Test func transmissionOverHTTPSAtASubPathTakesThePort() throws {
        let port = freePort()
        let (status, output) = try once(port, tls: "ca_file = \"\(certificates.caCertificate)\"")
        #expect(status == 0, "\(output)")
        #expect(try transmission.currentPeerPort() == Int(port))
        let access = try String(contentsOfFile: "\(proxy.directory)/access.log", encoding: .utf8)
        #expect(access.contains("POST /tr/transmission/rpc "), "the base path is kept: \(access)")
        #expect(!output.contains(TransmissionInstance.password))
    }

    @Test func withoutTheCATheCertificateIsRefusedAndNothingApplied() throws {
        let before = try transmission.currentPeerPort()
        let port = freePort()
        let (status, output) = try once(port, tls: "")
        #expect(status != 0)
        #expect(output.contains("certificate") && output.contains("ca_file"), "one line naming the key to set: \(output)")
        #expect(try transmission.currentPeerPort() == before)
    }
}
