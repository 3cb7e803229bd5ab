import Domain
import HTTP
import Reactor
@testable import Sinks
import Testing

/// Issue 20: a server or proxy whose error page echoes the request (the login form, the JSON
/// body, the headers) must not put a secret into the log, the status (`/healthz`, `STATUS=`,
/// the state file, `portsync status`), in any form it was sent in. Each client's own request
/// is echoed back here, as such a page does.
@Suite struct SecretEchoTests {
    static let password = Secret(value: "p@ss w0rd&=+", origin: "test")
    static let forms = ["p@ss w0rd&=+", FormEncoding.percentEncode(password.value), "p%40ss+w0rd%26%3D%2B", #"p@ss w0rd&=+"#]

    /// The request's body and headers as an error page that echoes them shows them.
    static func echo(_ request: HTTPRequest) -> String {
        String(decoding: request.body, as: UTF8.self) + "\n\n" + request.headers.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
    }

    static func expectNoSecret(_ texts: [String], _ secrets: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        for text in texts {
            for secret in secrets {
                #expect(!text.contains(secret), "\(text)", sourceLocation: sourceLocation)
            }
            #expect(!text.contains("\n"), "one line: \(text)", sourceLocation: sourceLocation)
        }
    }

    static func texts(_ health: SinkStatus.Health) -> [String] {
        switch health {
        case .failing(let text), .unreachable(let text), .loginRefused(let text): [text]
        case .idle, .applying, .verified: []
        }
    }

    @Test func qBittorrentsLoginFormEchoedInAnErrorPage() throws {
        let settings = QBittorrentSettings(url: QBittorrentSessionTests.url, authentication: .password(username: "admin", password: Self.password))
        var driver = QBittorrentSessionTests.Driver(session: QBittorrentSession(settings: settings), now: Instant(nanoseconds: 1))
        driver.feed(.desiredPort(Port(51413)!))
        let login = try #require(driver.sent.last)
        #expect(String(decoding: login.body, as: UTF8.self).contains("password=p%40ss%20w0rd%26%3D%2B"))
        for status in [500, 403] {
            driver.feed(.responseReceived(HTTPResponse(status: status, body: Array("<pre>\(Self.echo(login))</pre>".utf8))))
            Self.expectNoSecret(driver.logs.map(\.1) + Self.texts(driver.session.status.health), Self.forms)
            #expect(driver.logs.contains { $0.1.contains("password=<redacted>") })
            driver.feed(.settingsChanged(settings))
        }
    }

    @Test func qBittorrentsAPIKeyEchoedInAnAnswer() throws {
        let key = "qbt_0123456789abcdef"
        let settings = QBittorrentSettings(url: QBittorrentSessionTests.url, authentication: .apiKey(Secret(value: key, origin: "test")))
        var driver = QBittorrentSessionTests.Driver(session: QBittorrentSession(settings: settings), now: Instant(nanoseconds: 1))
        driver.feed(.desiredPort(Port(51413)!))
        let request = try #require(driver.sent.last)
        driver.feed(.responseReceived(HTTPResponse(status: 200, body: Array("Bearer \(key)".utf8))))
        driver.feed(.responseReceived(HTTPResponse(status: 502, body: Array(Self.echo(request).utf8))))
        Self.expectNoSecret(driver.logs.map(\.1) + Self.texts(driver.session.status.health) + [driver.session.status.version ?? ""], [key])
    }

    @Test func transmissionsBasicCredentialsEchoedInAnErrorPage() throws {
        let settings = ClientSettings(url: try HTTPURL(parsing: "http://127.0.0.1:9091"), username: "portsync", password: Self.password)
        var driver = ClientSessionDriver(TransmissionSession(settings: settings))
        driver.feed(.desiredPort(Port(52001)!))
        let request = try #require(driver.sent.last)
        let basic = Base64.encode(Array("portsync:\(Self.password.value)".utf8))
        #expect(request.headers["Authorization"] == "Basic \(basic)")
        driver.answer(HTTPResponse(status: 500, body: Array("Authorization: Basic \(basic)".utf8)))
        driver.reachDeadline()
        driver.answer(HTTPResponse(status: 403, body: Array("denied: \(Self.password.value)".utf8)))
        Self.expectNoSecret(driver.logs.map(\.1) + driver.statuses.flatMap { Self.texts($0.health) }, Self.forms + [basic])
    }

    @Test func delugesLoginBodyEchoedInAnErrorAndInAnErrorPage() throws {
        let settings = ClientSettings(url: try HTTPURL(parsing: "http://127.0.0.1:8112"), password: Secret(value: "we\"b p@ss\\", origin: "test"))
        var driver = ClientSessionDriver(DelugeSession(settings: settings))
        driver.feed(.desiredPort(Port(52101)!))
        let login = try #require(driver.sent.last)
        let body = String(decoding: login.body, as: UTF8.self)
        #expect(body.contains(#"we\"b p@ss\\"#))
        driver.answer(HTTPResponse(status: 500, body: Array("<pre>\(Self.echo(login))</pre>".utf8)))
        driver.reachDeadline()
        let escaped = JSONValue.quoted("bad request: \(body)")
        driver.answer(Recorded.deluge(#"{"result": null, "id": null, "error": {"code": 5, "message": \#(escaped)}}"#, cookie: false))
        #expect(driver.logs.filter { $0.1.contains("<redacted>") }.count == 2, "\(driver.allLogText)")
        Self.expectNoSecret(driver.logs.map(\.1) + driver.statuses.flatMap { Self.texts($0.health) }, [#"we\"b p@ss\\"#, #"we"b p@ss\"#, "we%22b%20p%40ss%5C"])
    }
}
