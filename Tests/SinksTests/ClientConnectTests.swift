import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// Transmission's and Deluge's connect (and doctor's `inspect`), with plain values: the port
/// settings read once before any port (`SinkStatus.inspection`), and a problem on the way kept
/// as a value (`SinkStatus.problem`).
@Suite struct ClientConnectTests {
    typealias TransmissionDriver = ClientSessionDriver<TransmissionSession>
    typealias DelugeDriver = ClientSessionDriver<DelugeSession>

    // MARK: Transmission

    func transmission(_ input: ClientSessionInput = .connect) -> TransmissionDriver {
        var driver = TransmissionDriver(TransmissionSession(settings: TransmissionSessionTests.settings))
        driver.feed(input)
        return driver
    }

    @Test func transmissionsConnectReadsItsPortSettingsInTheProbe() {
        var driver = transmission()
        driver.answer(Recorded.transmissionConflict)
        driver.answer(Recorded.transmissionJSON(#"{"arguments":{"peer-port":51413,"peer-port-random-on-start":true,"port-forwarding-enabled":true,"rpc-version":16,"version":"3.00 (bb6b5a062e)"},"result":"success","tag":\#(driver.tag)}"#))
        #expect(driver.session.status.inspection == ClientInspection(listenPorts: [51413], findings: [.randomPort, .portForwarding]))
        #expect(driver.session.status.version == "3.00 (bb6b5a062e)" && driver.session.status.health == .idle)
        #expect(driver.sent.count == 2 && !driver.session.isBusy, "nothing written, nothing more before a port")

        var plain = transmission(.inspect)
        plain.answer(Recorded.transmissionConflict)
        plain.answer(Recorded.transmissionProbe(port: 51999, tag: plain.tag))
        #expect(plain.session.status.inspection == ClientInspection(listenPorts: [51999]))
    }

    @Test func transmissionsRefusalsAreNamedAtTheLogin() {
        var refused = transmission()
        refused.answer(Recorded.transmissionUnauthorized)
        #expect(refused.session.status.problem == ClientProblem(.login, .credentialsRefused(status: 401, said: Recorded.transmissionUnauthorized.bodyExcerpt)))

        var whitelist = transmission()
        whitelist.answer(HTTPResponse(status: 403, body: Array("<h1>403: Forbidden</h1>".utf8)))
        #expect(whitelist.session.status.problem == ClientProblem(.login, .addressRefused(status: 403, said: "<h1>403: Forbidden</h1>")))

        var host = transmission()
        host.answer(HTTPResponse(status: 421))
        #expect(host.session.status.problem == ClientProblem(.login, .hostRefused("127.0.0.1:9091")))
    }

    @Test func a409WithoutAVersionAndAnAnswerWithoutOneAreNamed() throws {
        var malformed = transmission()
        malformed.answer(HTTPResponse(status: 409, headers: [TransmissionRPC.sessionIDHeader: "abc", TransmissionRPC.rpcVersionHeader: "six"]))
        let problem = try #require(malformed.session.status.problem)
        #expect(problem.step == .reach)
        guard case .unusableAnswer(let what) = problem.cause else { Issue.record("\(problem)"); return }
        #expect(what.contains(#"X-Transmission-Rpc-Version "six", which is not a version"#))

        var noVersion = transmission()
        noVersion.answer(Recorded.transmissionConflict)
        noVersion.answer(Recorded.transmissionJSON(#"{"arguments":{"peer-port":51413},"result":"success","tag":\#(noVersion.tag)}"#))
        #expect(noVersion.session.status.problem?.step == .version)
        #expect(noVersion.session.status.inspection == nil)
    }

    @Test func anUnreachableTransmissionIsNamedAtTheFirstStep() {
        var driver = transmission()
        driver.feed(.requestFailed(.connect(.refused)))
        #expect(driver.session.status.problem == ClientProblem(.reach, .noAnswer(.connect(.refused))))
    }

    // MARK: Deluge

    func deluge(_ input: ClientSessionInput = .connect, password: Secret? = DelugeSessionTests.settings.password) -> DelugeDriver {
        var settings = DelugeSessionTests.settings
        settings.password = password
        var driver = DelugeDriver(DelugeSession(settings: settings))
        driver.feed(input)
        return driver
    }

    @Test func delugesConnectReadsListenPortsOnce() {
        var driver = deluge()
        driver.answer(Recorded.delugeLogin(true, id: 1))
        driver.answer(Recorded.delugeConnected(true, id: 2))
        #expect(driver.lastBody.contains(#""method":"core.get_config_values""#))
        driver.answer(Recorded.delugeConfigValues(port: 6881, random: true, id: 3))
        #expect(driver.session.status.inspection == ClientInspection(listenPorts: [6881, 6881], findings: [.randomPort]))
        #expect(driver.sent.count == 3 && !driver.session.isBusy && driver.session.status.health == .idle)
    }

    /// The daemon's connect connects deluge-web to its daemon; doctor's inspect leaves it so.
    @Test func inspectLeavesDelugeWebUnconnectedWhereConnectConnectsIt() {
        var inspected = deluge(.inspect)
        inspected.answer(Recorded.delugeLogin(true, id: 1))
        inspected.answer(Recorded.delugeConnected(false, id: 2))
        #expect(inspected.sent.count == 2 && !inspected.session.isBusy, "no web.get_hosts, no web.connect")
        #expect(inspected.session.status.inspection == ClientInspection(listenPorts: [], findings: [.daemonNotConnected]))

        var connected = deluge(.connect)
        connected.answer(Recorded.delugeLogin(true, id: 1))
        connected.answer(Recorded.delugeConnected(false, id: 2))
        #expect(connected.lastBody.contains(#""method":"web.get_hosts""#))
        connected.answer(Recorded.delugeHosts(id: 3))
        connected.answer(Recorded.delugeConnect(true, id: 4))
        connected.answer(Recorded.delugeConfigValues(port: 6881, id: 5))
        #expect(connected.session.status.inspection == ClientInspection(listenPorts: [6881, 6881]))
    }

    @Test func delugesProblemsAreNamedAtTheirStep() {
        var refused = deluge()
        refused.answer(Recorded.delugeLogin(false, id: 1))
        #expect(refused.session.status.problem == ClientProblem(.login, .credentialsRefused(status: 200, said: "false")))

        var missing = deluge(password: nil)
        #expect(missing.sent.isEmpty)
        #expect(missing.session.status.problem == ClientProblem(.configuration, .credentialsMissing))
        missing.feed(.deadlineReached)

        var notDeluge = deluge()
        notDeluge.answer(HTTPResponse(status: 404, body: Array("Not Found".utf8)))
        #expect(notDeluge.session.status.problem == ClientProblem(.reach, .unexpectedAnswer(status: 404, said: "Not Found")))

        var noDaemon = deluge()
        noDaemon.answer(Recorded.delugeLogin(true, id: 1))
        noDaemon.answer(Recorded.delugeConnected(false, id: 2))
        noDaemon.answer(Recorded.delugeHosts(id: 3))
        noDaemon.answer(Recorded.delugeConnect(false, id: 4))
        #expect(noDaemon.session.status.problem?.step == .daemon)
    }

    /// What a problem quotes from the client goes through the same redaction as the health.
    @Test func aProblemQuotingTheSecretIsRedacted() {
        var driver = transmission()
        driver.answer(HTTPResponse(status: 403, body: Array("no entry for portsync:pa:ss&w=rd".utf8)))
        #expect(driver.session.status.problem == ClientProblem(.login, .addressRefused(status: 403, said: "no entry for portsync:<redacted>")))
    }
}
