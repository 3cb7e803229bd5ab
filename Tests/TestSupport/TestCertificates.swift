import CLinux
import Foundation
import Glibc

/// Certificates made by `openssl` in a throwaway directory: a test CA, a server certificate it
/// signed for `127.0.0.1`, `::1`, `localhost` and `nas.test`, the same with a wrong name, with
/// seven other names, with no subject alt name (its common name `nas.test` alone), an expired
/// one, and a self-signed one. Keys are P-256 (fast to make). Removed on deinit.
public final class TestCertificates {
    public static let opensslPath = ["/usr/bin/openssl", "/usr/local/bin/openssl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// The openssl tool and the library portsync opens.
    public static var available: Bool { opensslPath != nil && dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL) != nil }

    public let directory: String
    /// PEM paths.
    public var caCertificate: String { "\(directory)/ca.pem" }
    public var key: String { "\(directory)/server.key" }
    public var server: String { "\(directory)/server.pem" }
    public var wrongName: String { "\(directory)/wrong-name.pem" }
    public var otherNames: String { "\(directory)/other-names.pem" }
    public var commonNameOnly: String { "\(directory)/common-name-only.pem" }
    public var expired: String { "\(directory)/expired.pem" }
    public var selfSigned: String { "\(directory)/self-signed.pem" }

    public init() throws {
        directory = makeTemporaryDirectory("tls")
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", path("ca.key"), "-out", caCertificate, "-days", "30", "-subj", "/CN=portsync test CA"])
        try openssl(["req"] + ec + ["-keyout", key, "-out", path("server.csr"), "-subj", "/CN=nas.test"])
        try sign("server.pem", names: "IP:127.0.0.1,IP:::1,DNS:localhost,DNS:nas.test", days: "30")
        try sign("wrong-name.pem", names: "DNS:elsewhere.test", days: "30")
        try sign("other-names.pem", names: "DNS:a.test,IP:10.0.0.1,IP:fd00::1,DNS:b.test,DNS:c.test,DNS:d.test,DNS:e.test", days: "30")
        try sign("common-name-only.pem", names: nil, days: "30")
        // -days -1: notAfter a day before notBefore (now), so expired (openssl 3.0 has no -not_after).
        try sign("expired.pem", names: "IP:127.0.0.1,DNS:nas.test", days: "-1")
        try openssl(["req", "-x509", "-key", key, "-out", selfSigned, "-days", "30", "-subj", "/CN=nas.test",
                     "-addext", "subjectAltName=IP:127.0.0.1,DNS:nas.test"])
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint` prints it.
    public func fingerprint(of certificate: String) throws -> String {
        let output = try openssl(["x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"])
        guard let equals = output.firstIndex(of: "=") else { throw ChildProcessError(message: "no fingerprint in \(output)") }
        return output[output.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A certificate for the server key signed by the test CA for `names` (a subjectAltName:
    /// "DNS:connect.pvdatanet.com"): a stand-in for a named server elsewhere.
    public func certificate(named output: String, for names: String) throws -> String {
        try sign(output, names: names, days: "30")
        return path(output)
    }

    private func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// Signs the server key's request (CN=nas.test) with the test CA; `names`: its subjectAltName.
    private func sign(_ output: String, names: String?, days: String) throws {
        var extensions: [String] = []
        if let names {
            try "subjectAltName=\(names)\n".write(toFile: path("\(output).ext"), atomically: true, encoding: .utf8)
            extensions = ["-extfile", path("\(output).ext")]
        }
        try openssl(["x509", "-req", "-in", path("server.csr"), "-CA", caCertificate, "-CAkey", path("ca.key"), "-CAcreateserial",
                     "-days", days] + extensions + ["-out", path(output)])
    }

    /// Runs openssl; its output alone (each run writes a fresh file).
    @discardableResult
    private func openssl(_ arguments: [String]) throws -> String {
        let log = path("openssl.log")
        unlink(log)
        let child = try ChildProcess(executable: Self.opensslPath!, arguments: arguments,
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": directory, "RANDFILE": "\(directory)/.rnd"],
                                     outputPath: log)
        guard child.wait(seconds: 20) == 0 else {
            throw ChildProcessError(message: "openssl \(arguments.prefix(2).joined(separator: " ")) failed: \(child.output)")
        }
        return child.output
    }
}

/// `openssl s_server -www` on 127.0.0.1: a real TLS server answering every request with a status
/// page (`HTTP/1.0 200 ok`), with the certificate the test chooses. Stopped by its PID.
public final class TLSTestServer {
    public let port: UInt16
    private let process: ChildProcess

    public init(certificate: String, key: String, directory: String) throws {
        port = freePort()
        process = try ChildProcess(executable: TestCertificates.opensslPath!,
                                   arguments: ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificate, "-key", key,
                                               "-www", "-quiet", "-naccept", "1000"],
                                   environment: ["PATH": "/usr/bin:/bin", "HOME": directory],
                                   outputPath: "\(directory)/s_server-\(port).log")
        try waitUntilListening(port: port, process: process)
    }

    deinit {
        process.stop(grace: 2)
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or `process` exits.
public func waitUntilListening(port: UInt16, process: ChildProcess, seconds: Double = 20) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline && process.isRunning {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if connected == 0 { return }
        usleep(20_000)
    }
    throw ChildProcessError(message: "nothing listens on 127.0.0.1:\(port): \(process.output)")
}
