import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The session cookie of deluge-web through the Deluge session's production shell, against
/// `FakeDelugeWeb` (loopback sockets), which sets it as deluge's auth.py does: Path `<base>json`
/// up to 2.1.1 (Debian's 2.0.3, which DelugeEndToEndTests runs, sends `Path=/json`), Path
/// `<base>` from 2.2.0 on (`Path=/`). portsync keeps `_session_id` whatever its Path says and
/// sends it with every call after the login to the one endpoint it calls: a Path that does not
/// cover that endpoint (a web root configured in deluge-web while the URL leaves it out, which
/// deluge-web 2.x serves all the same) must not lose the session.
@Suite(.serialized) final class DelugeCookieTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop
    static let date = (now: "Mon, 07 Dec 2026 09:30:00 GMT", expires: "Mon, 07 Dec 2026 10:30:00 GMT")

    init() throws {
        loop = try EventLoop(logger: log.logger)
    }

    /// (Deluge's cookie path, its configured base, the path of portsync's URL, the Set-Cookie's Path)
    @Test(arguments: [
        (DelugeWebRPC.CookiePath.base, "/", "", "/"),
        (DelugeWebRPC.CookiePath.baseJSON, "/", "", "/json"),
        (DelugeWebRPC.CookiePath.base, "/", "/json", "/"),
        (DelugeWebRPC.CookiePath.base, "/deluge/", "/deluge", "/deluge/"),
        (DelugeWebRPC.CookiePath.baseJSON, "/deluge/", "/deluge/", "/deluge/json"),
        (DelugeWebRPC.CookiePath.base, "/deluge/", "", "/deluge/"),
        (DelugeWebRPC.CookiePath.baseJSON, "/deluge/", "", "/deluge/json"),
    ])
    func theSessionCookieIsSentToTheJSONEndpointWhateverItsPath(_ cookiePath: DelugeWebRPC.CookiePath, _ base: String, _ urlPath: String,
                                                               _ path: String) throws {
        let fake = try FakeDelugeWeb(loop: loop, password: "web-password", cookiePath: cookiePath, base: base)
        fake.rpc.date = Self.date
        let settings = ClientSettings(url: try HTTPURL(parsing: "http://127.0.0.1:\(fake.server.port)\(urlPath)"),
                                      password: Secret(value: "web-password", origin: "test"), reannounce: false,
                                      retryInitial: .milliseconds(100), retryMax: .milliseconds(500), requestTimeout: .seconds(5))
        let shell = ClientSink<DelugeSession>(loop: loop, label: "deluge", settings: settings)
        shell.apply(Port(52101)!)
        #expect(try runUntil(loop, seconds: 10) { shell.session.status.health == .verified && shell.session.status.verifiedPort == Port(52101) })
        #expect(fake.rpc.listenPorts == [52101, 52101] && fake.rpc.randomPort == false)
        #expect(fake.rpc.calls == ["auth.login", "web.connected", "core.get_config_values", "core.set_config", "core.get_config_value"])
        #expect(fake.rpc.callsWithCookie == 4, "every call after the login carried the session")
        let login = try #require(fake.rpc.setCookies.first)
        #expect(login.hasPrefix("_session_id=") && login.hasSuffix("; Expires=Mon, 07 Dec 2026 10:30:00 GMT; Path=\(path)"), "\(login)")
        #expect(fake.rpc.setCookies.count == 5, "the login's, then each call's renewal")
        #expect(shell.session.counters.logins == 1 && shell.session.counters.failedLogins == 0)
        #expect(log.count("Not authenticated") == 0)
    }
}
