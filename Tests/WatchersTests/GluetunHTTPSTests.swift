import Domain
import Foundation
import HTTP
import Reactor
import TestSupport
import Testing
import Watchers

/// The Gluetun poller over HTTPS at a sub-path: the stand-in control server behind Debian's
/// nginx, its certificate from the test's CA.
@Suite(.enabled(if: NetworkLab.python != nil && TestCertificates.available && NginxProxy.available,
                "needs python3, openssl, libssl3 and nginx"))
final class GluetunHTTPSTests {
    @Test func thePortIsReadThroughATLSProxyAtASubPath() throws {
        let certificates = try TestCertificates()
        let gluetun = try FakeGluetun(script: GluetunPollerTests.script)
        try gluetun.set(["ports": [40000]])
        let proxy = try NginxProxy(backendPort: gluetun.port, certificate: certificates.server, key: certificates.key,
                                   location: "gluetun", locationSettings: [])
        let loop = try EventLoop(logger: LogCapture().logger)
        var seen: [Port?] = []
        let settings = GluetunSettings(url: try HTTPURL(parsing: "https://localhost:\(proxy.port)/gluetun/"),
                                       tls: TLSOptions(verification: .chain(caFile: certificates.caCertificate)), pollInterval: .seconds(1))
        let poller = GluetunPoller(loop: loop, settings: settings) { seen.append($0.port) }
        poller.start()
        #expect(try runUntil(loop, seconds: 10) { seen == [Port(40000)] }, "\(poller.lastProblem ?? "")")
        #expect(gluetun.requests.first?["path"] as? String == "/v1/portforward")
        poller.stop()
    }
}
