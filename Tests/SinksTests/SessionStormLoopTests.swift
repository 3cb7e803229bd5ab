import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// Issue 20's storms end to end: the real shells (`DelugeSink`, `QBittorrentSink`) in a loop on
/// a clock that moves only when told, against a stand-in on loopback that answers as
/// deluge-web 2.0.3 or qBittorrent 4.5 do, except for the one kind of call it refuses. The
/// stand-in counts the logins: one fresh login at most, then one retry per back-off round.
@Suite(.serialized) final class SessionStormLoopTests {
    let log = LogCapture(level: .info)  // "still: …" is debug: each problem is said once
    let clock = ManualClock()
    let loop: EventLoop

    init() throws {
        loop = try EventLoop(clock: clock, logger: log.logger)
    }

    /// Runs the loop until the stand-in has had no request for ten turns (at most 400 turns,
    /// so that a storm ends the run, not the test).
    func settle(_ server: FakeHTTPServer) throws {
        var quiet = 0
        var seen = server.requests.count
        for _ in 0..<400 where quiet < 10 {
            try loop.runOnce(timeout: .milliseconds(5))
            quiet = server.requests.count == seen ? quiet + 1 : 0
            seen = server.requests.count
        }
    }

    /// `rounds` back-off rounds: each one 15 s (the longest back-off) on the loop's clock.
    func rounds(_ rounds: Int, _ server: FakeHTTPServer) throws -> [Int] {
        var perRound: [Int] = []
        try settle(server)
        for _ in 0..<rounds {
            let before = server.requests.count
            clock.advance(by: .seconds(15))
            try settle(server)
            perRound.append(server.requests.count - before)
        }
        return perRound
    }

    // MARK: deluge-web

    /// deluge-web: `auth.login` sets `_session_id`, `web.*` work, `core.*` answer `core`.
    func delugeWeb(core: @escaping (Int) -> String) throws -> FakeHTTPServer {
        try FakeHTTPServer(loop: loop) { request in
            let call = try? JSONValue.parse(Array(request.body.utf8))
            let id = call?["id"]?.integer ?? 0
            let method = call?["method"]?.string ?? ""
            let body: String
            var headers: HTTPHeaders = ["Content-Type": "application/json"]
            switch method {
            case "auth.login":
                headers.add("Set-Cookie", "_session_id=s\(id); Path=/json")
                body = #"{"result": true, "error": null, "id": \#(id)}"#
            case "web.connected":
                body = #"{"result": true, "error": null, "id": \#(id)}"#
            default:
                body = core(id)
            }
            return .answer(HTTPResponse(status: 200, headers: headers, body: Array(body.utf8)))
        }
    }

    func delugeSink(_ server: FakeHTTPServer) -> DelugeSink {
        DelugeSink(loop: loop, label: "deluge", settings: ClientSettings(url: server.url, password: Secret(value: "web-pass", origin: "test"), reannounce: false))
    }

    func logins(_ server: FakeHTTPServer) -> Int { server.requests.filter { $0.body.contains("auth.login") }.count }

    @Test func delugeCoreCallsNotAuthenticated() throws {
        let server = try delugeWeb { id in #"{"result": null, "error": {"message": "Not authenticated", "code": 1}, "id": \#(id)}"# }
        let sink = delugeSink(server)
        sink.apply(Port(52101)!)
        let perRound = try rounds(5, server)
        #expect(logins(server) == 2, "the first login and one fresh one")
        #expect(server.requests.count == 6 + 5 && perRound == [1, 1, 1, 1, 1], "one read a round: \(perRound)")
        #expect(sink.counters.failedLogins == 0 && !sink.session.isLoginRefused)
        #expect(log.count("refuses core.get_config_values") == 1)
    }

    @Test func delugeUnknownMethodAlthoughConnected() throws {
        let server = try delugeWeb { id in #"{"result": null, "error": {"message": "Unknown method", "code": 2}, "id": \#(id)}"# }
        let sink = delugeSink(server)
        sink.apply(Port(52101)!)
        let perRound = try rounds(5, server)
        #expect(logins(server) == 1)
        #expect(server.requests.count == 5 + 2 * 5 && perRound == [2, 2, 2, 2, 2], "web.connected and a read a round: \(perRound)")
        #expect(log.count("yet answers \"Unknown method\" to core.get_config_values") == 1)
    }

    // MARK: qBittorrent

    /// qBittorrent 4.5 (200 "Ok.", SID) in front of which something answers 403 to `forbidden`.
    func qBittorrent(forbidding forbidden: String) throws -> FakeHTTPServer {
        var listenPort = 6881
        var sessions = 0
        return try FakeHTTPServer(loop: loop) { request in
            func reply(_ status: Int, _ body: String = "", _ headers: HTTPHeaders = [:]) -> FakeHTTPServer.Reply {
                .answer(HTTPResponse(status: status, headers: headers, body: Array(body.utf8)))
            }
            if request.target == forbidden { return reply(403, "Forbidden") }
            switch request.target {
            case "/api/v2/auth/login":
                sessions += 1
                return reply(200, "Ok.", ["Set-Cookie": "SID=s\(sessions); HttpOnly; path=/"])
            case "/api/v2/app/version":
                return reply(200, "v4.5.2")
            case "/api/v2/app/preferences":
                return reply(200, #"{"listen_port":\#(listenPort),"random_port":false,"upnp":false}"#)
            case "/api/v2/app/setPreferences":
                if let json = request.form["json"], let port = (try? JSONValue.parse(Array(json.utf8)))?["listen_port"]?.integer { listenPort = port }
                return reply(200)
            default:
                return reply(200)
            }
        }
    }

    func qBittorrentSink(_ server: FakeHTTPServer) -> QBittorrentSink {
        QBittorrentSink(loop: loop, settings: QBittorrentSettings(url: server.url, authentication: .password(username: "admin", password: Secret(value: "adminadmin", origin: "test")),
                                                                  checkListener: false, reannounce: true))
    }

    func logins(qBittorrent server: FakeHTTPServer) -> Int { server.requests.filter { $0.target == "/api/v2/auth/login" }.count }

    @Test func aProxyForbiddingSetPreferences() throws {
        let server = try qBittorrent(forbidding: "/api/v2/app/setPreferences")
        let sink = qBittorrentSink(server)
        sink.apply(Port(51413)!)
        let perRound = try rounds(5, server)
        #expect(logins(qBittorrent: server) == 2, "the first login and one fresh one")
        #expect(server.requests.count == 7 + 2 * 5 && perRound == [2, 2, 2, 2, 2], "a read and a write a round: \(perRound)")
        #expect(sink.counters.failedLogins == 0)
        if case .failing = sink.status.health {} else { Issue.record("health \(sink.status.health)") }
    }

    @Test func aProxyForbiddingTheReannounce() throws {
        let server = try qBittorrent(forbidding: "/api/v2/torrents/reannounce")
        let sink = qBittorrentSink(server)
        sink.apply(Port(51413)!)
        try settle(server)
        // A remote qBittorrent's listener cannot be seen: it is given a second to open it.
        clock.advance(by: ListenerGate.remoteSettle)
        try settle(server)
        #expect(sink.status.health == .verified && sink.status.verifiedPort == Port(51413))
        #expect(log.count("POST /api/v2/torrents/reannounce answered 403 \"Forbidden\"") == 1)
        clock.advance(by: .seconds(120))
        sink.apply(Port(51414)!)
        try settle(server)
        clock.advance(by: ListenerGate.remoteSettle)
        try settle(server)
        #expect(sink.status.health == .verified && sink.status.verifiedPort == Port(51414), "\(sink.status.health)")
        #expect(log.count("POST /api/v2/torrents/reannounce answered 403 \"Forbidden\"") == 2, "a new port is told at once, whatever the last")
        #expect(logins(qBittorrent: server) == 1 && sink.counters.failedLogins == 0)
        #expect(log.count("noted, but not applied") == 0 && log.count("refused the session") == 0)
    }
}
