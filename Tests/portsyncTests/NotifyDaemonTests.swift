import Coordination
import Domain
import Foundation
import Glibc
import HTTP
import Reactor
import Sinks
import TestSupport
import Testing
@testable import portsync

/// `[notify]` in the daemon, in the test's own loop on a clock that moves only when told: a
/// local receiver (plain, and behind Debian's nginx for https) gets each port change once every
/// client answered, a client's failure once, connectability from the daemon's entry point; a 429
/// is waited out, a receiver that never answers holds nothing up, a reload keeps or replaces the
/// notifier. The clients are an unreachable qBittorrent and the command hook (`/bin/true`).
@Suite(.serialized) final class NotifyDaemonTests {
    let directory = TemporaryDirectory()
    let clock = ManualClock()
    let log = LogCapture(level: .debug, trace: true)
    let loop: EventLoop
    static let token = "tk_daemon-notify-s3cret"

    init() throws {
        loop = try EventLoop(clock: clock, logger: log.logger)
        directory.write("token", Self.token + "\n")
    }

    var portFile: String { "\(directory.path)/run/forwarded_port" }

    func writePort(_ port: UInt16) {
        directory.write("run/forwarded_port", String(port))
    }

    /// A configuration file: the port file, qBittorrent where nothing listens, the hook, and
    /// `notify` as the `[notify]` table's lines.
    @discardableResult
    func configuration(_ notify: String) -> String {
        directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(portFile)"
            [qbittorrent]
            url = "http://127.0.0.1:\(Self.closedPort)"
            [hook]
            command = ["/bin/true"]
            [daemon]
            state_file = "\(directory.path)/state.json"
            \(notify)
            """)
    }

    /// A loopback port nothing listens on: qBittorrent there is unreachable.
    static let closedPort = freePort()

    func startDaemon() throws -> Daemon {
        let configurationLoader = loader(file: "\(directory.path)/config.toml")
        let daemon = Daemon(loop: loop, loader: configurationLoader, loaded: try configurationLoader.load(), environment: [:])
        try daemon.start()
        return daemon
    }

    /// Runs the loop until `condition` holds, at most 150 wake-ups of at most 100 ms (the
    /// manual clock measures no time of its own); whether it held.
    func settle(_ condition: () -> Bool) throws -> Bool {
        try runUntil(loop, limit: 150, condition)
        return condition()
    }

    static func json(_ request: FakeHTTPServer.Request) -> [String: JSONValue] {
        (try? JSONValue.object(Array(request.body.utf8)).get()) ?? [:]
    }

    static func events(_ server: FakeHTTPServer) -> [String] {
        server.requests.map { json($0)["event"]?.string ?? "?" }
    }

    static func answering(_ status: Int, headers: HTTPHeaders = [:], body: String = "") -> FakeHTTPServer.Reply {
        .answer(HTTPResponse(status: status, headers: headers, body: Array(body.utf8)))
    }

    @Test func theReceiverGetsThePortChangesTheFailingClientAndConnectabilityAsJSON() throws {
        let receiver = try FakeHTTPServer(loop: loop) { _ in Self.answering(200, body: "{}") }
        writePort(51413)
        configuration("""
            [notify]
            url = "http://127.0.0.1:\(receiver.port)/hooks/portsync"
            token_file = "\(directory.path)/token"
            """)
        let daemon = try startDaemon()
        defer { daemon.stop() }
        #expect(try settle { receiver.requests.count == 2 }, "\(log.text)")
        #expect(Set(Self.events(receiver)) == ["client-failing", "port-changed"])
        // Nothing listens: a verdict once a listener had its time (the clock is the test's).
        clock.advance(by: ConnectabilityMonitor.listenerPatience)
        #expect(try settle { receiver.requests.count == 3 }, "\(log.text)")
        #expect(Self.events(receiver).last == "connectability-lost")
        for request in receiver.requests {
            #expect(request.method == "POST" && request.target == "/hooks/portsync")
            #expect(request.headers["Authorization"] == "Bearer \(Self.token)" && request.headers["Content-Type"] == "application/json")
        }
        let failing = try #require(receiver.requests.map(Self.json).first { $0["event"]?.string == "client-failing" })
        #expect(failing["client"]?.string == "qbittorrent" && failing["trouble"]?.string == "unreachable")
        let started = try #require(receiver.requests.map(Self.json).first { $0["event"]?.string == "port-changed" })
        #expect(started["port"]?.integer == 51413 && started["previous_port"] == .null)
        #expect(started["source"]?.string == "proton-file" && started["reason"]?.string == "start")
        let results = (started["clients"]?.array ?? []).map { "\($0["client"]?.string ?? "") \($0["result"]?.string ?? "")" }
        #expect(results == ["qbittorrent failed", "hook verified"], "every client answered before the message went")

        // qBittorrent keeps failing through its retries: no second message about it.
        for _ in 0..<4 {
            clock.advance(by: .seconds(30))
            try loop.runOnce(timeout: .milliseconds(50))
        }
        // The verdict, from the first port on: qBittorrent is down, so nothing listens.
        let lost = try #require(receiver.requests.map(Self.json).first { $0["event"]?.string == "connectability-lost" })
        #expect(lost["port"]?.integer == 51413 && lost["why"]?.string == "qbittorrent does not listen on port 51413", "\(lost)")

        writePort(51414)
        #expect(try settle { receiver.requests.count == 4 }, "\(log.text)")
        let moved = Self.json(receiver.requests[3])
        #expect(moved["event"]?.string == "port-changed" && moved["port"]?.integer == 51414 && moved["previous_port"]?.integer == 51413)
        #expect(moved["reason"]?.string == "source-changed")
        #expect(Self.events(receiver).filter { $0 == "client-failing" }.count == 1, "once per trouble, not per retry")

        // Still not connectable on the new port: a loss is told once, not per cause.
        for _ in 0..<4 {
            clock.advance(by: .seconds(30))
            try loop.runOnce(timeout: .milliseconds(50))
        }
        #expect(receiver.requests.count == 4, "\(Self.events(receiver))")
        #expect(daemon.notifications.counters?.sent == [.portChanged: 2, .clientFailing: 1, .connectabilityLost: 1])
        let metrics = MetricsEndpoint.metrics(daemon.snapshot())
        #expect(metrics.contains("portsync_notifications_sent_total{event=\"port-changed\"} 2"))
        #expect(metrics.contains("portsync_notifications_failed_total{event=\"port-changed\"} 0"))
        #expect(log.count("notifications to http://127.0.0.1:\(receiver.port) (json)") == 1, "the start line names it")
        #expect(!log.text.contains(Self.token) && !log.text.contains("/hooks/portsync"), "no token and no path in the log or the trace")
    }

    @Test func a429IsWaitedOutAsItsRetryAfterSaysAndTheMessageGoesOnce() throws {
        var answers: [FakeHTTPServer.Reply] = [Self.answering(429, headers: ["Retry-After": "3"], body: #"{"retry_after": 3}"#)]
        let receiver = try FakeHTTPServer(loop: loop) { _ in answers.isEmpty ? Self.answering(204) : answers.removeFirst() }
        writePort(51413)
        configuration("""
            [notify]
            url = "http://127.0.0.1:\(receiver.port)/"
            events = ["port-changed"]
            """)
        let daemon = try startDaemon()
        defer { daemon.stop() }
        #expect(try settle { receiver.requests.count == 1 && daemon.notifications.notifier?.session.nextDeadline != nil })
        let asked = try #require(daemon.notifications.notifier?.session.nextDeadline)
        #expect(asked == loop.now + .seconds(3), "the server's Retry-After")
        clock.advance(by: .seconds(2))
        try loop.runOnce(timeout: .milliseconds(50))
        #expect(receiver.requests.count == 1, "not before it")
        clock.advance(by: .seconds(1))
        #expect(try settle { daemon.notifications.counters?.sent[.portChanged] == 1 })
        #expect(receiver.requests.count == 2 && receiver.requests[0].body == receiver.requests[1].body)
        #expect(daemon.notifications.counters?.failed == [:] && daemon.notifications.counters?.attempts == 2)
    }

    @Test func aReceiverThatNeverAnswersHoldsUpNoPort() throws {
        let receiver = try FakeHTTPServer(loop: loop) { _ in .silence }
        writePort(51413)
        configuration("""
            [notify]
            url = "http://127.0.0.1:\(receiver.port)/"
            events = ["port-changed"]
            """)
        let daemon = try startDaemon()
        defer { daemon.stop() }
        func hookPort() -> Domain.Port? { daemon.sinks.clients.first { $0.label == "hook" }?.status.verifiedPort }
        #expect(try settle { receiver.requests.count == 1 }, "\(log.text)")
        #expect(hookPort() == Port(51413))
        // A second on (not a burst, well inside the request's 10 s timeout).
        clock.advance(by: .seconds(1))
        writePort(51414)
        #expect(try settle { hookPort() == Port(51414) }, "\(log.text)")
        #expect(daemon.notifications.notifier?.session.inFlight?.attempt == 1, "the first message still waits for its answer")
        #expect(receiver.requests.count == 1 && daemon.notifications.counters?.sent == [:])
        #expect(daemon.sinks.verifiedPort == Port(51414), "the port is the clients' business, not the receiver's")
    }

    @Test func aReloadKeepsTheNotifierReplacesItsConnectionAndDropsIt() throws {
        let first = try FakeHTTPServer(loop: loop) { _ in Self.answering(200) }
        let second = try FakeHTTPServer(loop: loop) { _ in Self.answering(200) }
        writePort(51413)
        configuration("[notify]\nurl = \"http://127.0.0.1:\(first.port)/\"\nevents = [\"connectability-lost\"]")
        let daemon = try startDaemon()
        defer { daemon.stop() }
        let notifier = try #require(daemon.notifications.notifier)
        daemon.notifications.notify(.connectabilityLost(port: Port(51413), why: "firewalled"))
        #expect(try settle { daemon.notifications.counters?.sent[.connectabilityLost] == 1 })

        // Only the recovery now: the daemon's own verdict (qBittorrent is not there, so nothing
        // listens) is a loss that is no longer told.
        configuration("[notify]\nurl = \"http://127.0.0.1:\(second.port)/\"\nevents = [\"connectability-recovered\"]")
        daemon.reload()
        #expect(daemon.notifications.notifier === notifier, "kept, with what it told")
        clock.advance(by: .seconds(61))
        daemon.notifications.notify(.connectabilityRecovered(port: Port(51413)))
        #expect(try settle { second.requests.count == 1 })
        #expect(first.requests.count == 1 && Self.json(second.requests[0])["event"]?.string == "connectability-recovered")
        #expect(try settle { notifier.counters.sent[.connectabilityRecovered] == 1 })
        #expect(notifier.counters.sent == [.connectabilityLost: 1, .connectabilityRecovered: 1])

        configuration("")
        daemon.reload()
        #expect(daemon.notifications.notifier == nil && daemon.snapshot().notifications == nil)
        #expect(!MetricsEndpoint.metrics(daemon.snapshot()).contains("portsync_notifications"))
    }

    /// The real binary with `--trace` at debug, against a hostile receiver that echoes what it
    /// was sent: neither the token nor the topic reaches its output, nor `portsync config`'s.
    @Test func theTokenNeverAppearsInPortsyncsOutput() throws {
        let receiver = try FakeHTTPServer(loop: loop) { request in
            Self.answering(403, body: "denied: \(request.headers["Authorization"] ?? "") on \(request.target)")
        }
        writePort(51413)
        let file = configuration("""
            [notify]
            url = "http://127.0.0.1:\(receiver.port)/secret-topic-name"
            preset = "ntfy"
            token_file = "\(directory.path)/token"
            """)
        let daemon = try Child(["run", "--config", file, "--trace", "--log-level", "debug"])
        #expect(try settle { receiver.requests.count >= 2 }, "\(daemon.output)")
        #expect(receiver.requests.first?.headers["Authorization"] == "Bearer \(Self.token)")
        let output = daemon.waitForOutput(containing: "was not delivered: HTTP 403")
        #expect(output.contains("notify.http: the "), "\(output)")
        #expect(!output.contains(Self.token) && !output.contains("daemon-notify-s3cret") && !output.contains("secret-topic-name"), "\(output)")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
        let (_, printed) = try Child.run(["config", "--config", file])
        #expect(printed.contains("# notify token: set (file \(directory.path)/token)") && !printed.contains(Self.token), "\(printed)")
    }
}

/// The notifier over https: Gotify's request through Debian's nginx, its certificate from the
/// test's CA, checked with `ca_file`.
@Suite(.serialized, .enabled(if: TestCertificates.available && NginxProxy.available, "needs openssl, libssl3 and nginx"))
final class NotifyHTTPSDaemonTests {
    @Test func gotifyGetsItsMessageOverHTTPSWithTheAppToken() throws {
        let directory = TemporaryDirectory()
        let certificates = try TestCertificates()
        let loop = try EventLoop(logger: LogCapture().logger)
        let receiver = try FakeHTTPServer(loop: loop) { _ in .answer(HTTPResponse(status: 200, body: Array(#"{"id":1}"#.utf8))) }
        let proxy = try NginxProxy(backendPort: receiver.port, certificate: certificates.server, key: certificates.key,
                                   location: "gotify", locationSettings: [])
        directory.write("run/forwarded_port", "51413")
        directory.write("gotify-token", "AbCdEf.gotify-app-token\n")
        let file = directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(directory.path)/run/forwarded_port"
            [qbittorrent]
            url = "http://127.0.0.1:\(freePort())"
            [notify]
            url = "https://localhost:\(proxy.port)/gotify/"
            preset = "gotify"
            events = ["port-changed"]
            token_file = "\(directory.path)/gotify-token"
            ca_file = "\(certificates.caCertificate)"
            [daemon]
            state_file = "\(directory.path)/state.json"
            """)
        let configurationLoader = loader(file: file)
        let daemon = Daemon(loop: loop, loader: configurationLoader, loaded: try configurationLoader.load(), environment: [:])
        try daemon.start()
        defer { daemon.stop() }
        #expect(try runUntil(loop, seconds: 15) { daemon.notifications.counters?.sent[.portChanged] == 1 }, "\(proxy.errorLog)")
        let request = try #require(receiver.requests.first)
        #expect(request.method == "POST" && request.target == "/message" && request.headers["X-Gotify-Key"] == "AbCdEf.gotify-app-token")
        let body = try JSONValue.object(Array(request.body.utf8)).get()
        #expect(body["title"]?.string == "portsync: port changed" && body["priority"]?.integer == 5)
        #expect(body["message"]?.string?.hasPrefix("portsync: port 51413 (port file: the first port since portsync started); qBittorrent failed") == true,
                "\(body)")
    }
}
