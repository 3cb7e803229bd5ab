import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// The session's logic with plain values: answers are made up here exactly as qBittorrent 4.x
/// and 5.2 send them (see shared/reference), time is an explicit `now`.
@Suite struct QBittorrentSessionTests {
    static let url = try! HTTPURL(parsing: "http://127.0.0.1:8080")
    static let password = QBittorrentSettings.Authentication.password(username: "admin", password: Secret(value: "s3cr&t=+", origin: "test"))
    let start = Instant(nanoseconds: 5_000_000_000)

    /// The re-announce off unless asked for (`QBittorrentReannounceTests`): the other tests count
    /// requests without it.
    func settings(_ authentication: QBittorrentSettings.Authentication = password, interface: String? = nil,
                  reannounce: Bool = false) -> QBittorrentSettings {
        QBittorrentSettings(url: Self.url, authentication: authentication, interface: interface,
                            checkInterval: .seconds(300), checkListener: true, reannounce: reannounce)
    }

    /// Runs inputs through a session and records what it asked for.
    struct Driver {
        var session: QBittorrentSession
        var now: Instant
        var sent: [HTTPRequest] = []
        var logs: [(LogLevel, String)] = []
        var listenerChecks: [Port] = []
        /// The socket table's answer to a listener check, given at once; nil: the test answers.
        var listener: ListeningSockets.Check? = .listening
        /// The same before telling the trackers of a new port.
        var announceListener: ListeningSockets.Check? = .listening
        var announceListenerChecks: [Port] = []

        mutating func feed(_ input: QBittorrentSession.Input) {
            for effect in session.handle(input, now: now) {
                switch effect {
                case .send(let request, _): sent.append(request)
                case .log(let level, let message): logs.append((level, message))
                case .checkListener(let port):
                    listenerChecks.append(port)
                    if let listener { feed(.listenerChecked(listener)) }
                case .checkListenerBeforeAnnouncing(let port):
                    announceListenerChecks.append(port)
                    if let announceListener { feed(.listenerCheckedBeforeAnnouncing(announceListener)) }
                case .statusChanged: break
                }
            }
        }

        mutating func answer(_ status: Int, _ body: String = "", headers: HTTPHeaders = [:]) {
            feed(.responseReceived(HTTPResponse(status: status, headers: headers, body: Array(body.utf8))))
        }

        var lastTarget: String? { sent.last.map { "\($0.method) \($0.target)" } }
        var lastBody: String { sent.last.map { String(decoding: $0.body, as: UTF8.self) } ?? "" }
        func logged(_ text: String) -> Bool { logs.contains { $0.1.contains(text) } }
    }

    static func preferences(port: Int, upnp: Bool = false, interface: String = "") -> String {
        #"{"listen_port":\#(port),"random_port":false,"upnp":\#(upnp),"current_network_interface":"\#(interface)","dht":false}"#
    }

    func loggedIn(_ settings: QBittorrentSettings? = nil, port: Port = Port(51413)!) -> Driver {
        var driver = Driver(session: QBittorrentSession(settings: settings ?? self.settings()), now: start)
        driver.feed(.desiredPort(port))
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123; HttpOnly; path=/; SameSite=Strict"])
        driver.answer(200, "v4.5.2")
        return driver
    }

    @Test func aVersionWithLineBreaksBecomesOnePrintableLine() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123"])
        driver.answer(200, "v9\nWATCHDOG=trigger\nX")
        #expect(driver.session.status.version == #"v9\nWATCHDOG=trigger\nX"#)
        #expect(driver.logs.allSatisfy { !$0.1.contains("\n") })
    }

    @Test func aCookieThatCannotBeSentMeansANewLoginNotAnEndlessFailure() throws {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc\rdef; path=/"])
        let version = try #require(driver.sent.last)
        #expect(throws: HTTPRequestError.self) { try version.serialized() }
        driver.feed(.requestFailed(.invalidRequest(HTTPRequestError("header Cookie holds a line break or another control character"))))
        #expect(driver.logged("GET /api/v2/app/version: request not sent: header Cookie holds a line break or another control character"))
        driver.now = driver.session.nextDeadline ?? driver.now
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == "POST /api/v2/auth/login")
    }

    @Test func qBittorrent4LoginThenSetThenVerify() throws {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        let login = try #require(driver.sent.last)
        #expect(login.method == "POST" && login.target == "/api/v2/auth/login")
        #expect(String(decoding: login.body, as: UTF8.self) == "username=admin&password=s3cr%26t%3D%2B")
        #expect(login.headers["Host"] == "127.0.0.1:8080")
        #expect(login.headers["Referer"] == nil && login.headers["Origin"] == nil)

        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123; HttpOnly; path=/; SameSite=Strict"])
        #expect(driver.lastTarget == "GET /api/v2/app/version")
        #expect(driver.sent.last?.headers["Cookie"] == "SID=abc123")
        driver.answer(200, "v4.5.2")
        #expect(driver.session.status.version == "v4.5.2")
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        driver.answer(200, Self.preferences(port: 6881, upnp: true))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences")
        #expect(driver.lastBody == "json=" + FormEncoding.percentEncode(#"{"listen_port":51413,"random_port":false,"upnp":false}"#))
        driver.answer(200)
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified)
        #expect(driver.session.status.verifiedPort == Port(51413))
        #expect(driver.session.inFlight == nil)
        #expect(driver.session.nextDeadline == start + .seconds(300))
        #expect(driver.session.counters.logins == 1 && driver.session.counters.applies == 1)
        #expect(driver.logs.contains { $0.0 == .notice && $0.1 == "listen_port 51413 applied and verified" })
    }

    /// What qBittorrent says of its connectability, asked once verified: 4.5's answer has no
    /// external address, 5.1's has `last_external_address_v4` (empty while unknown); an odd
    /// answer changes nothing and fails nothing; a port write forgets what it said.
    @Test func transferInfoIsAskedOnceVerifiedAndForgottenWithTheSockets() {
        var driver = loggedIn()
        driver.feed(.observeConnection)
        #expect(driver.lastTarget == "GET /api/v2/app/preferences", "not before the port is verified")
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.lastTarget == "GET /api/v2/transfer/info")
        driver.answer(200, #"{"connection_status":"firewalled","dht_nodes":0,"dl_info_data":0,"last_external_address_v4":"203.0.113.132","last_external_address_v6":""}"#)
        #expect(driver.session.status.connection == ClientConnection(state: .firewalled, externalAddress: IPv4Address(203, 0, 113, 132)))
        #expect(driver.session.status.health == .verified)

        driver.feed(.observeConnection)
        driver.answer(200, #"{"connection_status":"connected","dht_nodes":0}"#)
        #expect(driver.session.status.connection == ClientConnection(state: .connected, externalAddress: nil), "4.5.2 says no address")
        driver.feed(.observeConnection)
        driver.answer(200, #"{"connection_status":"listening"}"#)
        #expect(driver.session.status.connection?.state == .connected && driver.session.status.health == .verified, "an odd answer changes nothing")
        let count = driver.sent.count
        driver.feed(.desiredPort(Port(40000)!))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences" && driver.sent.count == count + 1)
        #expect(driver.session.status.connection == nil, "said of the sockets the write replaces")
    }

    @Test func nothingIsWrittenWhenQBittorrentAlreadyHasThePort() {
        var driver = loggedIn()
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified)
        #expect(!driver.sent.contains { $0.target.hasSuffix("setPreferences") })
        let count = driver.sent.count
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.sent.count == count + 1 && driver.lastTarget == "GET /api/v2/app/preferences",
                "the same port again (a source that had none names it anew): one read")
        driver.answer(200, Self.preferences(port: 51413))
        #expect(!driver.sent.contains { $0.target.hasSuffix("setPreferences") }, "and no write when qBittorrent still has it")
        #expect(driver.session.status.health == .verified)
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, Self.preferences(port: 0))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences", "listen_port 0 is drift, repaired")
    }

    /// qBittorrent 5.1's `announce_port` (5.1.0's preferences answer carries it; 4.x's does not):
    /// when not 0 trackers hear of it, not of `listen_port`. Said once per value and port, and
    /// again when it changes; the port is applied either way.
    @Test func anAnnouncePortThatOverridesTheListenPortIsSaidOnce() {
        func preferences(port: Int, announce: Int) -> String {
            #"{"listen_port":\#(port),"random_port":false,"upnp":false,"current_network_interface":"","announce_port":\#(announce)}"#
        }
        func warnings(_ driver: Driver) -> [String] { driver.logs.filter { $0.0 == .warning && $0.1.contains("announce_port") }.map(\.1) }
        var driver = loggedIn()
        driver.answer(200, preferences(port: 51413, announce: 6881))
        #expect(driver.session.status.health == .verified)
        #expect(warnings(driver) == [#"qBittorrent's announce_port is 6881: trackers are told that port, not 51413 (Advanced → "Port reported to trackers"); set it to 0 and restart qBittorrent"#])
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(200, preferences(port: 51413, announce: 6881))
        #expect(warnings(driver).count == 1, "said once")
        driver.feed(.desiredPort(Port(40000)!))
        driver.answer(200)
        driver.answer(200, preferences(port: 40000, announce: 6881))
        #expect(warnings(driver).count == 2 && warnings(driver).last!.contains("not 40000"), "a new port: said again")
        driver.feed(.desiredPort(Port(40000)!))
        driver.answer(200, preferences(port: 40000, announce: 0))
        driver.feed(.desiredPort(Port(40000)!))
        driver.answer(200, preferences(port: 40000, announce: 40000))
        #expect(warnings(driver).count == 2, "0, or the port itself, is fine")
    }

    @Test func aNewPortAfterAVerifiedOneIsWrittenWithoutReadingFirst() {
        var driver = loggedIn()
        driver.answer(200, Self.preferences(port: 51413))
        let sent = driver.sent.count
        driver.feed(.desiredPort(Port(40000)!))
        #expect(driver.lastTarget == "POST /api/v2/app/setPreferences")
        #expect(driver.sent.count == sent + 1)
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 40000))
        #expect(driver.session.status == { var status = SinkStatus(); status.health = .verified; status.verifiedPort = Port(40000); status.version = "v4.5.2"
                                           status.inspection = ClientInspection(listenPorts: [51413]); return status }(), "the first read is the inspection")
        #expect(driver.sent.count == sent + 2, "one write, one read-back")
    }

    @Test func qBittorrent52LoginWith204AndItsCookieName() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(40000)!))
        driver.answer(204, headers: ["Set-Cookie": "QBT_SID_8080=xyz; HttpOnly; SameSite=Lax; path=/; Max-Age=3600"])
        #expect(driver.session.status.health == .applying)
        #expect(driver.sent.last?.headers["Cookie"] == "QBT_SID_8080=xyz")
        #expect(driver.session.counters.logins == 1)
    }

    @Test(arguments: [
        (200, "Fails.", "login failed: qBittorrent rejected the username \"admin\" or its password (200 Fails.)", 1),
        (401, "", "login failed (401): wrong username \"admin\" or password", 1),
        (403, "Your IP address has been banned after too many failed authentication attempts.", "banned this IP address", 0),
    ])
    func aRefusedLoginStopsAllLoginsUntilTheSettingsChange(status: Int, body: String, message: String, failures: Int) {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(status, body)
        #expect(driver.logged(message))
        #expect(driver.logged("no more logins until the configuration is reloaded or 65 min pass"))
        #expect(driver.session.isLoginRefused)
        guard case .loginRefused = driver.session.status.health else { Issue.record("not refused"); return }
        #expect(driver.session.counters.failedLogins == failures)
        let sent = driver.sent.count
        driver.feed(.desiredPort(Port(51414)!))
        driver.feed(.reassert)
        driver.now = driver.now + .seconds(600)
        driver.feed(.deadlineReached)
        #expect(driver.sent.count == sent, "nothing at all is sent while the login is refused")
        driver.feed(.settingsChanged(settings(.password(username: "admin", password: Secret(value: "fixed", origin: "test")))))
        #expect(driver.sent.count == sent + 1)
        #expect(driver.lastTarget == "POST /api/v2/auth/login")
    }

    @Test func failedLoginsStayFarBelowTheBanThresholdWhateverHappens() {
        // qBittorrent answers "Fails." to every login for ten hours while the port keeps changing.
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        for minute in 1...600 {
            if driver.session.inFlight == .login { driver.answer(200, "Fails.") }
            driver.now = start + .seconds(60 * minute)
            driver.feed(.deadlineReached)
            driver.feed(.desiredPort(Port(40000 + minute % 50)!))
            driver.feed(.reassert)
        }
        let logins = driver.sent.filter { $0.target == "/api/v2/auth/login" }.count
        #expect(driver.session.counters.failedLogins == logins)
        #expect(logins <= 10, "at most one failed login per 65 minutes: \(logins) in 10 h")
        #expect(logins >= 9, "but it does try again after the pause")
    }

    @Test func anExpiredSessionLogsInAgainOnceAndNeverLoops() {
        var driver = loggedIn()
        driver.answer(200, Self.preferences(port: 51413))
        driver.now = driver.now + .seconds(300)
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        driver.answer(403, "Forbidden")
        #expect(driver.lastTarget == "POST /api/v2/auth/login")
        #expect(driver.logged("session expired (403 on /api/v2/app/preferences); logging in again"))
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=new"])
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        #expect(driver.sent.last?.headers["Cookie"] == "SID=new")
        driver.answer(403, "Forbidden")
        #expect(driver.session.isLoginRefused, "a 403 right after a fresh login is not an expired session")
        #expect(driver.sent.filter { $0.target == "/api/v2/auth/login" }.count == 2)
    }

    @Test func unreachableQBittorrentIsRetriedWithCappedBackoffAndLoggedOnce() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        var delays: [Duration] = []
        for _ in 0..<8 {
            driver.feed(.requestFailed(.connect(.refused)))
            let deadline = driver.session.nextDeadline!
            delays.append(deadline - driver.now)
            driver.now = deadline
            driver.feed(.deadlineReached)
        }
        #expect(delays == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(15), .seconds(15), .seconds(15)])
        #expect(driver.logs.filter { $0.0 == .error }.count == 1)
        #expect(driver.session.status.health == .unreachable("qBittorrent at http://127.0.0.1:8080 is unreachable: connection refused"))
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=1"])
        driver.answer(200, "v4.5.2")
        driver.answer(200, Self.preferences(port: 51413))
        #expect(driver.session.status.health == .verified)
        #expect(driver.logged("qBittorrent is fine again"))
    }

    @Test(arguments: [
        ("<html>Login</html>", "answer to GET /api/v2/app/preferences is not a JSON object (unexpected character at byte 0): \"<html>Login</html>\""),
        (#"{"listen_port":1e999}"#, #"answer to GET /api/v2/app/preferences is not a JSON object (number out of range at byte 20): "{"listen_port":1e999}""#),
        ("[51413]", "answer to GET /api/v2/app/preferences is not a JSON object (an array): \"[51413]\""),
        (#"{"dht":true}"#, "answer to GET /api/v2/app/preferences has no listen_port"),
        (#"{"listen_port":"51413"}"#, "answer to GET /api/v2/app/preferences has no listen_port"),
        ("", "answer to GET /api/v2/app/preferences is not a JSON object (unexpected end of input at byte 0): \"\""),
    ])
    func badPreferencesAnswersAreClearErrors(body: String, message: String) {
        var driver = loggedIn()
        driver.answer(200, body)
        #expect(driver.session.status.health == .failing(message))
        #expect(driver.session.nextDeadline == driver.now + .milliseconds(500))
    }

    @Test func unexpectedStatusesAreNamed() {
        var driver = loggedIn()
        driver.answer(500, "Internal Server Error")
        #expect(driver.logged("unexpected answer to GET /api/v2/app/preferences: 500 \"Internal Server Error\""))
        var missing = Driver(session: QBittorrentSession(settings: settings(.none)), now: start)
        missing.feed(.desiredPort(Port(1000)!))
        missing.answer(404, "Not Found")
        #expect(missing.logged("GET /api/v2/app/version answered 404: is http://127.0.0.1:8080 qBittorrent's WebUI"))
    }

    @Test func aWriteThatDoesNotStickIsAnError() {
        var driver = loggedIn()
        driver.answer(200, Self.preferences(port: 1))
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 1))
        #expect(driver.session.status.health == .failing("qBittorrent still has listen_port 1 after being set to listen_port 51413"))
        #expect(driver.session.counters.failedApplies == 1)
    }

    @Test func apiKeysNeedNoLogin() {
        var driver = Driver(session: QBittorrentSession(settings: settings(.apiKey(Secret(value: "qbt_abcdefghijklmnopqrstuvwxyz12", origin: "t")))), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.lastTarget == "GET /api/v2/app/version")
        #expect(driver.sent.last?.headers["Authorization"] == "Bearer qbt_abcdefghijklmnopqrstuvwxyz12")
        driver.answer(403, "Forbidden")
        #expect(driver.logged("qBittorrent refused the API key (403 on /api/v2/app/version)"))
        #expect(driver.sent.count == 1)
    }

    @Test func bypassWithoutPasswordSaysWhatToDoOnA403() {
        var driver = Driver(session: QBittorrentSession(settings: settings(.none)), now: start)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.lastTarget == "GET /api/v2/app/version")
        driver.answer(403, "Forbidden")
        #expect(driver.logged("no password is configured: set [qbittorrent].password_file, or enable \"Bypass authentication for clients on localhost\""))
    }

    @Test func bindingChecksTheInterfaceListAndSetsIt() {
        var driver = loggedIn(settings(interface: "wg0"))
        #expect(driver.lastTarget == "GET /api/v2/app/networkInterfaceList")
        driver.answer(200, #"[{"name":"lo","value":"lo"},{"name":"eth0","value":"eth0"}]"#)
        #expect(driver.logged("qBittorrent does not list interface wg0 (it lists only interfaces that have an address: lo, eth0)"))
        driver.answer(200, Self.preferences(port: 51413, interface: ""))
        #expect(driver.lastBody.contains(FormEncoding.percentEncode(#""current_network_interface":"wg0""#)))
    }

    @Test func aNewPortDuringARequestIsAppliedRightAfterIt() {
        var driver = loggedIn()
        driver.feed(.desiredPort(Port(2000)!))
        driver.feed(.desiredPort(Port(3000)!))
        driver.answer(200, Self.preferences(port: 51413))
        // The preferences are current, so they are compared with the newest port: one write.
        #expect(driver.session.desired == Port(3000))
        #expect(driver.lastBody.contains("3000"))
        driver.feed(.desiredPort(Port(4000)!))
        driver.answer(200)
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        driver.answer(200, Self.preferences(port: 3000))
        #expect(driver.lastBody.contains("4000"), "a read-back for 3000 while 4000 is wanted is no failure: it writes 4000")
        driver.answer(200)
        driver.answer(200, Self.preferences(port: 4000))
        #expect(driver.session.status.health == .verified)
        #expect(driver.session.inFlight == nil, "nothing more to do")
        #expect(driver.session.counters.failedApplies == 0)
    }

}
