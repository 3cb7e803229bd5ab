import Domain
import Foundation
import HTTP
import Reactor
import TestSupport
import Testing
@testable import Watchers

@Suite struct GluetunAnswerTests {
    func ports(_ json: String) throws -> [Port] { try GluetunAnswer.ports(Array(json.utf8)) }

    @Test func everyShapeGluetunSends() throws {
        #expect(try ports(#"{"port":40000}"#) == [Port(40000)!])
        #expect(try ports(#"{"ports":[40000,40001]}"#) == [Port(40000)!, Port(40001)!])
        #expect(try ports(#"{"port":40000,"ports":[40000,40001]}"#) == [Port(40000)!, Port(40001)!])
        #expect(try ports(#"{"port":0}"#) == [], "port 0 is no port yet")
        #expect(try ports(#"{"port":0,"ports":null}"#) == [])
        #expect(try ports(#"{"ports":[]}"#) == [])
    }

    @Test func aHugeAnswerIsQuotedNotEchoed() {
        let huge = String(repeating: "x", count: 3_000_000)
        for json in [#"{"junk":"\#(huge)"}"#, #"{"port":"\#(huge)"}"#, #"{"ports":["\#(huge)"]}"#, "<html>\(huge)"] {
            do {
                _ = try ports(json)
                Issue.record("no error for a huge answer")
            } catch {
                #expect("\(error)".count < 300)
            }
        }
    }

    @Test(arguments: [
        ("<html>", "not a JSON object"), (#"{"port":1e999}"#, "not a JSON object (number out of range at byte 13)"), (#"{"status":"ok"}"#, "neither \"port\" nor \"ports\""),
        (#"{"port":70000}"#, "\"port\" is not a port"), (#"{"port":"40000"}"#, "\"port\" is not a port"),
        (#"{"ports":["a"]}"#, "\"ports\" holds something that is not a port"),
    ])
    func garbageIsAnError(json: String, message: String) {
        #expect { try ports(json) } throws: { ($0 as? GluetunAnswer.ParseError)?.message.contains(message) == true }
    }
}

@Suite struct GluetunSessionTests {
    let url = try! HTTPURL(parsing: "http://127.0.0.1:8000")
    let start = Instant(nanoseconds: 1_000_000_000)

    struct Driver {
        var session: GluetunSession
        var now: Instant
        var sent: [HTTPRequest] = []
        var reported: [[Port]] = []
        var logs: [(LogLevel, String)] = []

        mutating func feed(_ input: GluetunSession.Input) {
            for effect in session.handle(input, now: now) {
                switch effect {
                case .send(let request): sent.append(request)
                case .ports(let ports): reported.append(ports)
                case .log(let level, let message): logs.append((level, message))
                }
            }
        }

        mutating func answer(_ status: Int, _ body: String = "", headers: HTTPHeaders = [:]) {
            feed(.responseReceived(HTTPResponse(status: status, headers: headers, body: Array(body.utf8))))
        }

        mutating func poll() {
            now = session.nextDeadline!
            feed(.deadlineReached)
        }
    }

    func driver(_ settings: GluetunSettings? = nil) -> Driver {
        var driver = Driver(session: GluetunSession(settings: settings ?? GluetunSettings(url: url), jitter: { 0 }), now: start)
        driver.feed(.start)
        return driver
    }

    @Test func pollsAndReportsOnlyChanges() {
        var driver = driver()
        #expect(driver.sent.last?.target == "/v1/portforward")
        driver.answer(200, #"{"port":0}"#)
        driver.poll()
        driver.answer(200, #"{"port":40000}"#)
        driver.poll()
        driver.answer(200, #"{"port":40000}"#)
        driver.poll()
        driver.answer(200, #"{"port":40001}"#)
        #expect(driver.reported == [[], [Port(40000)!], [Port(40001)!]])
        #expect(driver.session.nextDeadline == driver.now + .seconds(10))
    }

    @Test func aNewRouteThatIsNotThereMeansTheOldOneRememberedSo() {
        var driver = driver()
        driver.answer(404, "404 page not found")
        #expect(driver.sent.last?.target == "/v1/openvpn/portforwarded")
        driver.answer(200, #"{"port":40000}"#)
        driver.poll()
        #expect(driver.sent.last?.target == "/v1/openvpn/portforwarded")
    }

    /// v3.39 and older have no auth and no /v1/portforward: their router answers 400
    /// "GET /portforward not found" (`handlerv1.go`); the old route serves the port.
    @Test func v339sNotFoundIsAMissingRouteToo() {
        var driver = driver()
        driver.answer(400, "GET /portforward not found\n")
        #expect(driver.sent.last?.target == "/v1/openvpn/portforwarded")
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.reported == [[Port(40000)!]])
        var other = self.driver()
        other.answer(400, "bad request")
        #expect(other.sent.count == 1, "any other 400 is not taken for a missing route")
    }

    @Test func aRedirectToAnInvalidPathIsNotFollowed() {
        for location in ["/v1/port\rforward", "/v1/port forward", "/v1/\r\nX-Injected: 1", "http://h:80:80/v1/portforward"] {
            var driver = driver()
            driver.answer(301, headers: ["Location": location])
            #expect(driver.sent.count == 1, "\(location.oneLine())")
            #expect(driver.logs.contains { $0.1.contains("without a usable Location") })
        }
    }

    @Test func aRedirectIsFollowed() {
        var driver = driver()
        driver.answer(404)
        driver.answer(301, headers: ["Location": "/v1/portforward"])
        #expect(driver.sent.last?.target == "/v1/portforward")
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.reported == [[Port(40000)!]])
        #expect(driver.session.route == "/v1/portforward")
        var absolute = self.driver()
        absolute.answer(308, headers: ["Location": "http://127.0.0.1:8000/v1/portforward"])
        #expect(absolute.sent.count == 2 && absolute.sent.last?.target == "/v1/portforward")
    }

    /// What Gluetun v3.40.0 does, read in its source (qdm12/gluetun at tag v3.40.0, compared with
    /// v3.41.0; v3.40.1–4 change nothing there):
    /// - `internal/server/handler.go`: the auth middleware wraps the router (`handler` → v0/v1):
    ///   roles are checked *before* routing. (`server.go` reads `config.toml`, `SetDefaults`,
    ///   `Validate`, then builds that handler.)
    /// - `internal/server/middlewares/auth/middleware.go`: the route is `Method + " " + URL.Path`
    ///   (`"GET /v1/portforward"`); with no role listing it, `http.Error(…, 401)`: status 401,
    ///   body `Unauthorized\n`, `Content-Type: text/plain; charset=utf-8`,
    ///   `X-Content-Type-Options: nosniff`, no `WWW-Authenticate`. When roles list it and all fail,
    ///   the same 401 (plus `WWW-Authenticate: Basic realm="restricted", charset="UTF-8"` from
    ///   `basic.go` when a basic role got no credentials); `apikey.go` reads `X-API-Key`, else the
    ///   `api_key` query parameter.
    /// - `internal/server/middlewares/auth/settings.go`: a role may list only `validRoutes`, which
    ///   at v3.40 have `GET /v1/openvpn/portforwarded` and not `GET /v1/portforward` (a config.toml
    ///   with it fails `Validate`: Gluetun does not start). The built-in "public" role (auth none,
    ///   with the old route) applies only when no roles are configured. So on v3.40
    ///   `GET /v1/portforward` is 401 whatever the credentials; it is never 404.
    /// - `internal/server/openvpn.go`: `GET /v1/openvpn/portforwarded` answers 200
    ///   `{"port":N}\n` (0 when none) or `{"ports":[…]}\n`; v3.41 answers it 301 to `/v1/portforward`.
    /// - `internal/server/handlerv1.go`: a route the router lacks, once auth let it through, is
    ///   400 `GET /portforward not found` (the path without `/v1`), not 404. Only the unreleased
    ///   main branch answers 404 for an unknown path, before checking roles.
    @Test func v340RefusesTheNewRouteSoTheOldOneIsAskedWithTheSameKeyAndRemembered() {
        var driver = driver(GluetunSettings(url: url, apiKey: Secret(value: "k", origin: "t")))
        driver.answer(401, "Unauthorized\n")
        #expect(driver.sent.map(\.target) == ["/v1/portforward", "/v1/openvpn/portforwarded"])
        #expect(driver.sent.last?.headers["X-API-Key"] == "k")
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.reported == [[Port(40000)!]])
        #expect(!driver.session.refused && driver.session.lastProblem == nil)
        #expect(!driver.logs.contains { $0.0 == .error })
        driver.poll()
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.sent.count == 3 && driver.sent.last?.target == "/v1/openvpn/portforwarded", "the old route, remembered")
        #expect(driver.logs.filter { $0.1 == "Gluetun answers on /v1/openvpn/portforwarded (v3.40 or older)" }.map(\.0) == [.info])
    }

    @Test func aRefusalOnBothRoutesIsSaidOnceAndNotHammered() {
        var driver = driver(GluetunSettings(url: url, apiKey: Secret(value: "gluetun-s3cret", origin: "t")))
        #expect(driver.sent.last?.headers["X-API-Key"] == "gluetun-s3cret")
        driver.answer(401, "Unauthorized")
        driver.answer(401, "Unauthorized")
        #expect(driver.session.refused && driver.session.nextDeadline == start + .seconds(300))
        let errors = { driver.logs.filter { $0.0 == .error }.map(\.1) }
        #expect(errors().count == 1)
        #expect(errors().first?.contains("refused GET /v1/portforward (401) and GET /v1/openvpn/portforwarded (401) with the API key ([gluetun].api_key_file)") == true)
        driver.poll()
        driver.answer(401)
        driver.answer(401)
        #expect(errors().count == 1)
        #expect(driver.sent.count == 4, "two requests per 5 minutes while refused")
        #expect(driver.sent.allSatisfy { $0.headers["X-API-Key"] == "gluetun-s3cret" }, "the same key on both routes")
        #expect(!driver.logs.contains { $0.1.contains("gluetun-s3cret") }, "the key is never logged")
    }

    @Test func anUpgradeTo341IsFollowedAndNeverLoops() {
        var driver = driver()
        driver.answer(401)
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.session.route == "/v1/openvpn/portforwarded")
        // Upgraded to v3.41, whose role lists both routes: the old one redirects.
        driver.poll()
        driver.answer(301, headers: ["Location": "/v1/portforward"])
        driver.answer(200, #"{"port":40000}"#)
        #expect(driver.session.route == "/v1/portforward")
        #expect(driver.logs.contains { $0 == (.info, "Gluetun answers on /v1/portforward (v3.41 or later)") })
        // A v3.41 whose role lists only the old route: it redirects to a route that refuses.
        driver.poll()
        let before = driver.sent.count
        driver.answer(401)
        driver.answer(301, headers: ["Location": "/v1/portforward"])
        #expect(driver.sent.count - before == 1, "at most two requests in a poll")
        #expect(driver.session.refused)
        #expect(driver.logs.last?.1.contains("refused GET /v1/portforward (401) with no credentials") == true)
        // A Gluetun without the old route (404) and with the new one refused: a refusal, not a puzzle.
        var missing = self.driver()
        missing.answer(401)
        missing.answer(404, "Not Found")
        #expect(missing.session.refused && missing.sent.count == 2)
    }

    @Test func basicAuthenticationHeader() {
        let driver = driver(GluetunSettings(url: url, username: "portsync", password: Secret(value: "s3cret", origin: "t")))
        #expect(driver.sent.last?.headers["Authorization"] == "Basic cG9ydHN5bmM6czNjcmV0")
    }

    /// Issue 20: an answer that echoes the request's headers (a proxy's error page) does not
    /// put the API key or the basic-auth password into a log line or the last problem.
    @Test(arguments: [true, false])
    func anEchoedKeyOrPasswordIsRedacted(apiKey: Bool) throws {
        let settings = apiKey ? GluetunSettings(url: url, apiKey: Secret(value: "k3y/with+chars", origin: "test"))
                              : GluetunSettings(url: url, username: "portsync", password: Secret(value: "pa ss@word", origin: "test"))
        var driver = driver(settings)
        let request = try #require(driver.sent.last)
        let echoed = request.headers.map { "\($0.name): \($0.value)" }.reversed().joined(separator: "\r\n")
        // Echoed: the key as it is, the password as Basic credentials; quoted later: each as it is.
        let secrets = apiKey ? ["k3y/with+chars"] : [try #require(request.headers["Authorization"]).dropFirst(6).description, "pa ss@word"]
        #expect(echoed.contains(secrets[0]))
        driver.answer(500, echoed)
        driver.poll()
        driver.answer(200, "{\"error\": \"\(secrets.last!)\"}")
        let texts = driver.logs.map(\.1) + [driver.session.lastProblem ?? ""]
        #expect(driver.logs.filter { $0.1.contains("<redacted>") }.count == 2, "\(texts)")
        #expect(!texts.contains { text in secrets.contains { text.contains($0) } }, "\(texts)")
    }

    @Test func pollsAreSpreadByJitter() {
        var late = Driver(session: GluetunSession(settings: GluetunSettings(url: url), jitter: { 1 }), now: start)
        late.feed(.start)
        late.answer(200, #"{"port":1}"#)
        #expect(late.session.nextDeadline == start + .seconds(11))
        var early = Driver(session: GluetunSession(settings: GluetunSettings(url: url), jitter: { -1 }), now: start)
        early.feed(.start)
        early.answer(200, #"{"port":1}"#)
        #expect(early.session.nextDeadline == start + .seconds(9))
    }

    @Test func base64() {
        #expect(Base64.encode(Array("".utf8)) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
    }
}

/// The poller in a loop against the stand-in Gluetun (python3).
@Suite(.serialized, .enabled(if: NetworkLab.python != nil, "python3 is not installed"))
final class GluetunPollerTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/gluetun_server.py").standardized.path

    @Test func aServerThatHangsTimesOutAndIsAskedAgain() throws {
        let gluetun = try FakeGluetun(script: Self.script)
        try gluetun.set(["mode": "hang", "ports": [40000]])
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        var seen: [Port?] = []
        let poller = GluetunPoller(loop: loop, settings: GluetunSettings(url: try HTTPURL(parsing: gluetun.url), pollInterval: .seconds(1),
                                                                      requestTimeout: .milliseconds(300))) { seen.append($0.port) }
        poller.start()
        #expect(try runUntil(loop, seconds: 5) { poller.lastProblem?.contains("failed: no answer in time") == true })
        try gluetun.set(["mode": "normal"])
        #expect(try runUntil(loop, seconds: 5) { seen == [Port(40000)] })
        #expect(log.count("Gluetun's control server answers again") == 1)
        poller.stop()
    }
}
