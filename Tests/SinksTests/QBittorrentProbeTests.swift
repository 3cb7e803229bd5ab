import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The connect's anonymous probe over a real loopback socket, against a stand-in for what a
/// real qbittorrent-nox cannot be (another application; qBittorrent behind a proxy that passes
/// the client's Host on): named at the first request, before any password goes on the wire.
@Suite(.serialized) final class QBittorrentProbeTests {
    let log = LogCapture()
    let loop: EventLoop
    static let password = "probe-secret"

    init() throws {
        loop = try EventLoop(logger: log.logger)
    }

    func connect(_ url: HTTPURL) throws -> QBittorrentSink {
        let settings = QBittorrentSettings(url: url, authentication: .password(username: "admin", password: Secret(value: Self.password, origin: "test")),
                                           retryInitial: .seconds(60))
        let sink = QBittorrentSink(loop: loop, settings: settings)
        sink.connect()
        #expect(try runUntil(loop, seconds: 5) { sink.status.problem != nil })
        return sink
    }

    @Test func anotherApplicationGetsNoLogin() throws {
        let transmission = try FakeHTTPServer(loop: loop) { _ in
            .answer(HTTPResponse(status: 409, headers: ["X-Transmission-Session-Id": "abc", "Server": "Transmission"], body: Array("<h1>409: Conflict</h1>".utf8)))
        }
        let sink = try connect(transmission.url)
        #expect(sink.status.problem == ClientProblem(.reach, .foreignServer("Transmission", status: 409)))
        #expect(transmission.requests.map(\.target) == ["/api/v2/app/webapiVersion"], "no login: the password never went to it")
        #expect(transmission.requests.allSatisfy { !$0.body.contains(Self.password) })
        #expect(log.count("answered as Transmission, not qBittorrent (409)") == 1, "the daemon says it, once")
    }

    @Test func aProxyPassingTheHostOnIsNamedWithoutALogin() throws {
        let proxy = try FakeHTTPServer(loop: loop) { _ in .answer(HTTPResponse(status: 401)) }
        let url = try HTTPURL(parsing: "http://127.0.0.1:\(proxy.port)/qbt")
        let sink = try connect(url)
        #expect(sink.status.problem == ClientProblem(.reach, .proxy(.hostPassedOn(url))))
        #expect(proxy.requests.map(\.target) == ["/qbt/api/v2/app/webapiVersion"])
        #expect(sink.counters.failedLogins == 0 && sink.status.health == .failing("\(ProxyDiagnosis.hostPassedOn(url).problem): \(ProxyDiagnosis.hostPassedOn(url).fix)"))
    }
}
