import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// `.connect` at the daemon's start (and doctor's `inspect`): qBittorrent is reached before any
/// port: an anonymous probe, the login, the version, the interfaces (with `interface`) and the
/// preferences, read once and kept as the status's `inspection`; a problem on the way is kept
/// as a value (`SinkStatus.problem`), and a wrong password shows then, tried once.
extension QBittorrentSessionTests {
    /// qBittorrent's answer to a request without a session.
    static let forbidden = "Forbidden"

    /// Connected: the probe, the login and the version answered.
    func connected(_ settings: QBittorrentSettings? = nil) -> Driver {
        var driver = Driver(session: QBittorrentSession(settings: settings ?? self.settings()), now: start)
        driver.feed(.connect)
        driver.answer(403, Self.forbidden)
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123"])
        driver.answer(200, "v5.1.0")
        return driver
    }

    @Test func connectProbesLogsInAndReadsTheVersionAndThePreferencesBeforeAnyPort() throws {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        #expect(driver.lastTarget == "GET /api/v2/app/webapiVersion")
        let probe = try #require(driver.sent.last)
        #expect(probe.headers["Cookie"] == nil && probe.body.isEmpty, "anonymous: nothing of the account goes to a server not yet known to be qBittorrent")
        driver.answer(403, Self.forbidden)
        #expect(driver.lastTarget == "POST /api/v2/auth/login")
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123"])
        #expect(driver.lastTarget == "GET /api/v2/app/version")
        driver.answer(200, "v5.1.0")
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        #expect(driver.session.status.inspection == nil && driver.session.status.health == .idle)
        driver.answer(200, #"{"listen_port":6881,"random_port":true,"upnp":true,"announce_port":6882,"current_network_interface":""}"#)
        #expect(driver.session.inFlight == nil && driver.sent.count == 4, "no port yet: nothing more")
        #expect(driver.session.status.inspection == ClientInspection(listenPorts: [6881], findings: [.randomPort, .portForwarding, .announcePort(6882)]))
        #expect(driver.session.status.version == "v5.1.0" && driver.session.status.health == .idle && driver.session.status.problem == nil)
        #expect(driver.session.nextDeadline == nil)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.lastTarget == "GET /api/v2/app/preferences", "the port then needs no second login, nor another probe")
        #expect(driver.session.counters.logins == 1)
    }

    @Test func upnpIsAFindingOnlyWhenPortsyncTurnsItOff() {
        var settings = settings()
        settings.disableUPnP = false
        var driver = connected(settings)
        driver.answer(200, #"{"listen_port":6881,"random_port":false,"upnp":true,"announce_port":0}"#)
        #expect(driver.session.status.inspection == ClientInspection(listenPorts: [6881]))
    }

    @Test func anInterfaceQBittorrentDoesNotListIsAFindingWithWhatItLists() {
        var driver = connected(settings(interface: "wg0"))
        #expect(driver.lastTarget == "GET /api/v2/app/networkInterfaceList")
        driver.answer(200, #"[{"name":"lo","value":"lo"},{"name":"eth0","value":"eth0"}]"#)
        #expect(driver.lastTarget == "GET /api/v2/app/preferences")
        driver.answer(200, Self.preferences(port: 6881))
        #expect(driver.session.status.inspection == ClientInspection(listenPorts: [6881], findings: [.interfaceNotListed("wg0", listed: ["lo", "eth0"])]))
        #expect(driver.sent.count == 5)

        var listed = connected(settings(interface: "eth0"))
        listed.answer(200, #"[{"name":"lo","value":"lo"},{"name":"eth0","value":"eth0"}]"#)
        listed.answer(200, Self.preferences(port: 6881, interface: "eth0"))
        #expect(listed.session.status.inspection == ClientInspection(listenPorts: [6881]))
    }

    /// The probe's answer says another application answered: no password goes to it.
    @Test func anotherApplicationIsNamedByTheProbeBeforeAnyLogin() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        driver.answer(409, "<h1>409: Conflict</h1>", headers: ["X-Transmission-Session-Id": "abc", "Server": "Transmission"])
        #expect(driver.session.status.problem == ClientProblem(.reach, .foreignServer("Transmission", status: 409)))
        #expect(driver.session.status.health == .failing("http://127.0.0.1:8080 answered as Transmission, not qBittorrent (409): [qbittorrent].url must be qBittorrent's WebUI"))
        #expect(driver.sent.count == 1 && driver.session.counters.failedLogins == 0)
    }

    /// A 401 to the anonymous probe is the Host-header check, said as such (`ProxyDiagnosis`),
    /// and no login is tried; with an API key it is left to the calls (a bad key is a 401 too).
    @Test func a401ToTheProbeIsTheWayThereNotThePassword() throws {
        let proxied = try HTTPURL(parsing: "https://home.example/qbt")
        var driver = Driver(session: QBittorrentSession(settings: QBittorrentSettings(url: proxied, authentication: Self.password)), now: start)
        driver.feed(.connect)
        #expect(driver.lastTarget == "GET /qbt/api/v2/app/webapiVersion")
        driver.answer(401)
        #expect(driver.session.status.problem == ClientProblem(.reach, .proxy(.hostPassedOn(proxied))))
        #expect(driver.sent.count == 1 && driver.session.counters.failedLogins == 0 && !driver.session.isLoginRefused)
        #expect(driver.session.nextDeadline != nil, "tried again with back-off: a fixed proxy is seen")

        let key = QBittorrentSettings.Authentication.apiKey(Secret(value: "qbt_0123456789abcdefghijklmnopqr", origin: "test"))
        var withKey = Driver(session: QBittorrentSession(settings: settings(key)), now: start)
        withKey.feed(.connect)
        #expect(withKey.sent.last?.headers["Authorization"] == "Bearer qbt_0123456789abcdefghijklmnopqr")
        withKey.answer(401)
        #expect(withKey.lastTarget == "GET /api/v2/app/version")
        withKey.answer(401)
        #expect(withKey.session.status.problem == ClientProblem(.version, .credentialsRefused(status: 401, said: "")))
    }

    @Test func aWrongPasswordAtConnectIsRefusedOnceAndNotRetried() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        driver.answer(403, Self.forbidden)
        driver.answer(200, "Fails.")
        #expect(driver.session.isLoginRefused && driver.session.counters.failedLogins == 1)
        #expect(driver.session.status.problem == ClientProblem(.login, .credentialsRefused(status: 200, said: "Fails.")))
        driver.now = start + .seconds(600)
        driver.feed(.deadlineReached)
        driver.feed(.desiredPort(Port(51413)!))
        #expect(driver.sent.count == 2, "the probe and one login, then nothing until the pause ends or the settings change")
    }

    @Test func aBanAndNoPasswordAreNamedAtTheirStep() {
        var banned = Driver(session: QBittorrentSession(settings: settings()), now: start)
        banned.feed(.connect)
        banned.answer(403, Self.forbidden)
        banned.answer(403, "Your IP address has been banned after too many failed authentication attempts.")
        #expect(banned.session.status.problem == ClientProblem(.login, .addressRefused(status: 403, said: "Your IP address has been banned after too many failed authentication attempts.")))

        var anonymous = Driver(session: QBittorrentSession(settings: settings(.none)), now: start)
        anonymous.feed(.connect)
        anonymous.answer(403, Self.forbidden)
        #expect(anonymous.lastTarget == "GET /api/v2/app/version")
        anonymous.answer(403, Self.forbidden)
        #expect(anonymous.session.status.problem == ClientProblem(.version, .credentialsMissing))
    }

    @Test func anUnreachableQBittorrentAtConnectIsRetriedWithBackOffAndIsFineOnceReached() {
        var driver = Driver(session: QBittorrentSession(settings: settings()), now: start)
        driver.feed(.connect)
        driver.feed(.requestFailed(.connect(.refused)))
        if case .unreachable = driver.session.status.health {} else { Issue.record("\(driver.session.status.health)") }
        #expect(driver.session.status.problem == ClientProblem(.reach, .noAnswer(.connect(.refused))))
        #expect(driver.session.nextDeadline == start + .milliseconds(500))
        driver.now = start + .milliseconds(500)
        driver.feed(.deadlineReached)
        #expect(driver.lastTarget == "GET /api/v2/app/webapiVersion" && driver.sent.count == 2)
        driver.answer(403, Self.forbidden)
        driver.answer(200, "Ok.", headers: ["Set-Cookie": "SID=abc123"])
        driver.answer(200, "v5.1.0")
        driver.answer(200, Self.preferences(port: 6881))
        #expect(driver.session.status.health == .idle && driver.session.status.problem == nil && driver.session.nextDeadline == nil)
        #expect(driver.logged("qBittorrent is fine again"))
    }

    @Test func unreadablePreferencesAreAProblemOfTheSettingsStep() {
        var driver = connected()
        driver.answer(200, "<html>")
        guard case .unusableAnswer? = driver.session.status.problem?.cause, driver.session.status.problem?.step == .settings else {
            Issue.record("\(String(describing: driver.session.status.problem))")
            return
        }
        #expect(driver.session.status.inspection == nil)
    }
}
