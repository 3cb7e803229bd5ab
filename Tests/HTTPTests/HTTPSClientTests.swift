@testable import HTTP
import Reactor
import TestSupport
import Testing

/// The HTTP client over TLS against a real TLS server (`openssl s_server`) with certificates
/// the test makes: each way verification can fail is one clear line, and nothing crashes.
@Suite(.enabled(if: TestCertificates.available, "needs openssl and libssl3"))
final class HTTPSClientTests {
    let loop: EventLoop
    let certificates: TestCertificates

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        certificates = try TestCertificates()
    }

    func get(_ url: String, _ tls: TLSOptions) throws -> Result<HTTPResponse, HTTPClientError> {
        let url = try HTTPURL(parsing: url)
        return try get(HTTPClient(loop: loop, name: "test.https", url: url, tls: tls, connectTimeout: .seconds(5), responseTimeout: .seconds(5)))
    }

    func get(_ client: HTTPClient) throws -> Result<HTTPResponse, HTTPClientError> {
        let url = client.url
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: url.target("/"), headers: ["Host": url.hostHeader])) { result = $0 }
        try runUntil(loop, seconds: 10) { result != nil }
        return try #require(result)
    }

    func server(_ certificate: String) throws -> TLSTestServer {
        try TLSTestServer(certificate: certificate, key: certificates.key, directory: certificates.directory)
    }

    /// "200", or why there is no answer.
    func outcome(_ result: Result<HTTPResponse, HTTPClientError>) -> String {
        switch result {
        case .success(let response): "\(response.status)"
        case .failure(let error): error.description
        }
    }

    var trustTestCA: TLSOptions { TLSOptions(verification: .chain(caFile: certificates.caCertificate)) }

    @Test func aCertificateFromTheConfiguredCAIsAcceptedForAnIPAddressAndAName() throws {
        let server = try server(certificates.server)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", trustTestCA)) == "200")
        #expect(outcome(try get("https://localhost:\(server.port)/", trustTestCA)) == "200")
    }

    @Test func theNextConnectionResumesTheSession() throws {
        let server = try server(certificates.server)
        let pinned = try #require(TLSOptions.fingerprint(parsing: try certificates.fingerprint(of: certificates.server)))
        for options in [trustTestCA, TLSOptions(verification: .fingerprint(pinned))] {
            let client = HTTPClient(loop: loop, name: "test.https", url: try HTTPURL(parsing: "https://localhost:\(server.port)"), tls: options)
            for _ in 0..<3 {
                #expect(outcome(try get(client)) == "200")  // s_server -www closes after each answer
            }
            #expect(client.connectionsOpened == 3)
            #expect(client.tlsResumptions == 2, "\(options)")
        }
    }

    @Test func aWrongNameIsRefusedWithTheNamesTheCertificateIsFor() throws {
        let server = try server(certificates.wrongName)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", trustTestCA))
            == "the certificate of 127.0.0.1 was refused: it is for elsewhere.test (its subject alt names), not 127.0.0.1; put one of its names in the URL, or set tls_fingerprint")
        #expect(outcome(try get("https://localhost:\(server.port)", trustTestCA))
            == "the certificate of localhost was refused: it is for elsewhere.test (its subject alt names), not localhost; put one of its names in the URL, or set tls_fingerprint")
    }

    @Test func theNamesQuotedAreTheFirstFiveAltNamesOrElseTheCommonName() throws {
        let many = try server(certificates.otherNames)
        #expect(outcome(try get("https://localhost:\(many.port)", trustTestCA))
            == "the certificate of localhost was refused: it is for a.test, 10.0.0.1, fd00::1, b.test, c.test and 2 more (its subject alt names), not localhost; put one of its names in the URL, or set tls_fingerprint")
        let commonName = try server(certificates.commonNameOnly)
        #expect(outcome(try get("https://localhost:\(commonName.port)", trustTestCA))
            == "the certificate of localhost was refused: it is for nas.test (its subject's common name; it has no subject alt names), not localhost; put one of its names in the URL, or set tls_fingerprint")
    }

    @Test func anUnknownIssuerIsRefusedAgainstTheSystemStore() throws {
        let server = try server(certificates.server)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", TLSOptions()))
            == "the certificate of 127.0.0.1 was refused: unable to get local issuer certificate; set ca_file to its CA (or to the certificate itself), or tls_fingerprint")
    }

    @Test func aSelfSignedCertificateIsRefusedUntilItIsTheCAFile() throws {
        let server = try server(certificates.selfSigned)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", TLSOptions()))
            == "the certificate of 127.0.0.1 was refused: self-signed certificate; set ca_file to its CA (or to the certificate itself), or tls_fingerprint")
    }

    @Test func anExpiredCertificateIsRefused() throws {
        let server = try server(certificates.expired)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", trustTestCA)).contains("was refused: certificate has expired;"))
    }

    @Test func theServersOwnSelfSignedCertificateCanBeTheCAFile() throws {
        let server = try server(certificates.selfSigned)
        let options = TLSOptions(verification: .chain(caFile: certificates.selfSigned))
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", options)) == "200")
    }

    @Test func aPinnedFingerprintIsAllThatCounts() throws {
        let server = try server(certificates.wrongName)
        let right = try #require(TLSOptions.fingerprint(parsing: try certificates.fingerprint(of: certificates.wrongName)))
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", TLSOptions(verification: .fingerprint(right)))) == "200")
        let wrong = [UInt8](repeating: 0xAB, count: 32)
        let message = outcome(try get("https://127.0.0.1:\(server.port)", TLSOptions(verification: .fingerprint(wrong))))
        #expect(message == "the certificate of 127.0.0.1 does not match tls_fingerprint: it is \(try certificates.fingerprint(of: certificates.wrongName))")
    }

    @Test func withoutVerificationAnyCertificateIsAccepted() throws {
        let server = try server(certificates.expired)
        #expect(outcome(try get("https://127.0.0.1:\(server.port)", TLSOptions(verification: .none))) == "200")
    }

    @Test(.enabled(if: NetworkLab.python != nil, "needs python3"))
    func aBodyEndedByABareCloseWithoutCloseNotifyIsTruncation() throws {
        // s_server -www above ends its close-delimited answers with close_notify: those count.
        let server = try TruncatingTLSServer(certificate: certificates.server, key: certificates.key, body: "v4.",
                                             directory: certificates.directory)
        let result = try get("https://127.0.0.1:\(server.port)", trustTestCA)
        guard case .failure(let error) = result else {
            Issue.record("the cut body was taken: \(outcome(result))")
            return
        }
        #expect(error == .truncated)
    }

    @Test func tlsToAPlainHTTPPortSaysSo() throws {
        // A plain HTTP server answers a ClientHello with 400, as qBittorrent and nginx do.
        let listener = Listener()
        defer { listener.fd.close() }
        let url = try HTTPURL(parsing: "https://127.0.0.1:\(listener.port)")
        let client = HTTPClient(loop: loop, name: "test.https", url: url, tls: trustTestCA)
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/", headers: ["Host": url.hostHeader])) { result = $0 }
        let server = listener.accept()
        defer { server.close() }
        _ = try Socket(server).send(Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8))
        try runUntil(loop, seconds: 10) { result != nil }
        #expect(outcome(try #require(result)) == "the server answered in plain text, not TLS: is this an http:// port?")
    }

    @Test func plainHTTPToATLSPortFailsCleanly() throws {
        // openssl s_server and qBittorrent close without a word; a server that sends an alert
        // gets "the server answered with TLS: use https:// in the URL".
        let server = try server(certificates.server)
        #expect(outcome(try get("http://127.0.0.1:\(server.port)", TLSOptions()))
            == "the server closed the connection without answering (if it serves https, use https:// in the URL)")
    }

    @Test func aMissingLibraryNamesThePackage() {
        #expect(throws: TLSError.self) { try TLSLibrary.load(ssl: "libssl.so.99", crypto: "libcrypto.so.99") }
        do {
            _ = try TLSLibrary.load(ssl: "libssl.so.99", crypto: "libcrypto.so.99")
        } catch {
            #expect(error.description.hasPrefix("https needs OpenSSL 3, which is not installed ("))
            #expect(error.description.hasSuffix("): install the package libssl3"))
        }
    }

    @Test func fingerprintsAreReadWithOrWithoutColons() {
        let hex = String(repeating: "0a", count: 32)
        #expect(TLSOptions.fingerprint(parsing: hex) == [UInt8](repeating: 10, count: 32))
        #expect(TLSOptions.fingerprint(parsing: TLSOptions.text(ofFingerprint: [UInt8](repeating: 10, count: 32))) == [UInt8](repeating: 10, count: 32))
        #expect(TLSOptions.fingerprint(parsing: String(hex.dropLast())) == nil)
        #expect(TLSOptions.fingerprint(parsing: String(repeating: "zz", count: 32)) == nil)
    }
}

/// A CA given as PEM text (PIA's, built into portsync) and a name to check other than the URL's
/// host (a server reached by its address, named by its common name).
@Suite(.enabled(if: TestCertificates.available, "needs openssl and libssl3"))
final class HTTPSAuthorityTests {
    let loop: EventLoop
    let certificates: TestCertificates

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        certificates = try TestCertificates()
    }

    func outcome(_ tls: TLSOptions, certificate: String) throws -> String {
        let server = try TLSTestServer(certificate: certificate, key: certificates.key, directory: certificates.directory)
        let client = HTTPClient(loop: loop, name: "test.https", url: try HTTPURL(parsing: "https://127.0.0.1:\(server.port)"), tls: tls)
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/", headers: ["Host": "nas.test"])) { result = $0 }
        try runUntil(loop, seconds: 10) { result != nil }
        switch try #require(result) {
        case .success(let response): return "\(response.status)"
        case .failure(let error): return error.description
        }
    }

    @Test func aCAGivenAsTextIsTrustedAndTheServerNameIsTheNameChecked() throws {
        let pem = try String(contentsOfFile: certificates.caCertificate, encoding: .utf8)
        #expect(try outcome(TLSOptions(verification: .authority(pem: pem), serverName: "nas.test"), certificate: certificates.commonNameOnly) == "200")
        #expect(try outcome(TLSOptions(verification: .authority(pem: pem), serverName: "elsewhere.test"), certificate: certificates.commonNameOnly)
            .hasPrefix("the certificate of elsewhere.test was refused: it is for nas.test"))
        let otherCA = try TestCertificates()
        let other = try String(contentsOfFile: otherCA.caCertificate, encoding: .utf8)
        let untrusted = try outcome(TLSOptions(verification: .authority(pem: other), serverName: "nas.test"), certificate: certificates.commonNameOnly)
        // Another CA of the same name: OpenSSL says "EVP lib" for the signature that does not verify.
        #expect(untrusted != "200", "only the CA given is trusted: \(untrusted)")
    }

    @Test func textThatIsNoCertificateIsOneClearError() {
        #expect(throws: TLSError.self) { try TLSContext(options: TLSOptions(verification: .authority(pem: "not a certificate"))) }
    }
}
