import Domain
import Foundation
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The Deluge session through its production shell against real deluged + deluge-web 2.0.3,
/// all of it (the session's sockets too) inside a namespace that has nothing but `lo`.
@Suite(.serialized, .enabled(if: DelugeInstance.available, "needs root, iproute2, deluged and deluge-web (./scripts/test installs them as root)"))
final class DelugeEndToEndTests {
    let log = LogCapture(trace: true)

    func shell(_ deluge: DelugeInstance, loop: EventLoop, password: String = DelugeInstance.webPassword,
               checkInterval: Duration = .seconds(300)) -> ClientSink<DelugeSession> {
        let settings = ClientSettings(url: deluge.url, password: Secret(value: password, origin: "test"), checkInterval: checkInterval,
                                      retryInitial: .milliseconds(200), retryMax: .seconds(1), requestTimeout: .seconds(3))
        return ClientSink<DelugeSession>(loop: loop, label: "deluge", settings: settings)
    }

    func verified(_ shell: ClientSink<DelugeSession>, _ loop: EventLoop, _ port: UInt16, seconds: Double = 20) throws -> Bool {
        try runUntil(loop, seconds: seconds) { shell.session.status.health == .verified && shell.session.status.verifiedPort?.value == port }
    }

    @Test func connectsTheWebUISetsAndVerifiesThePort() throws {
        let deluge = try DelugeInstance()
        try deluge.namespace.inside {
            let loop = try EventLoop(logger: log.logger)
            let shell = shell(deluge, loop: loop)
            shell.apply(Port(6901)!)
            #expect(try verified(shell, loop, 6901))
            #expect(log.count("deluge-web connected to its daemon at 127.0.0.1:58846") == 1)
            #expect(log.count("Deluge: port 6901 applied and verified") == 1)
            #expect(try runUntil(loop, seconds: 10) { (try? deluge.listens(on: 6901)) == true }, "deluged listens on the new port")
            #expect(shell.session.counters.logins == 1 && shell.session.counters.applies == 1)
            #expect(!log.text.contains(DelugeInstance.webPassword))
        }
    }

    @Test func aWrongPasswordIsRefusedOnceAndNeverRetriedInALoop() throws {
        let deluge = try DelugeInstance()
        try deluge.namespace.inside {
            let loop = try EventLoop(logger: log.logger)
            let shell = shell(deluge, loop: loop, password: "wrong")
            shell.apply(Port(6901)!)
            #expect(try runUntil(loop, seconds: 10) { shell.session.isLoginRefused })
            try runFor(loop, seconds: 1.5)
            shell.apply(Port(6902)!)
            try runFor(loop, seconds: 0.5)
            #expect(shell.counters.requests == 1)
            #expect(log.count("deluge-web refused the password (auth.login answered false)") == 1)
        }
    }

    @Test func aKilledDaemonIsConnectedAgainOnceItIsBack() throws {
        let deluge = try DelugeInstance(autoConnect: true)
        try deluge.namespace.inside {
            let loop = try EventLoop(logger: log.logger)
            let shell = shell(deluge, loop: loop)
            shell.apply(Port(6901)!)
            #expect(try verified(shell, loop, 6901))
            #expect(log.count("connected to its daemon") == 0, "deluge-web connected by itself (default_daemon)")

            deluge.stopDaemon(signal: SIGKILL)
            shell.apply(Port(6902)!)
            #expect(try runUntil(loop, seconds: 15) { shell.session.status.health != .applying })
            #expect(shell.session.status.health != .verified)
            try deluge.startDaemon()
            #expect(try verified(shell, loop, 6902, seconds: 30))
            #expect(log.count("deluge-web connected to its daemon") >= 1)
            #expect(try deluge.listens(on: 6902))
        }
    }

    /// deluge-web keeps its login sessions in web.conf across a restart, but not its
    /// connection to deluged: the session connects it again and logs in only when the session
    /// is gone (then once).
    @Test func aRestartedWebUIIsConnectedAgainAndLoggedInAgainOnlyWhenItForgotTheSession() throws {
        let deluge = try DelugeInstance()
        try deluge.namespace.inside {
            let loop = try EventLoop(logger: log.logger)
            let settings = ClientSettings(url: deluge.url, password: Secret(value: DelugeInstance.webPassword, origin: "test"),
                                          checkInterval: .milliseconds(500), reannounce: false,
                                          retryInitial: .milliseconds(200), retryMax: .seconds(1), requestTimeout: .seconds(3))
            let shell = ClientSink<DelugeSession>(loop: loop, label: "deluge", settings: settings)
            shell.apply(Port(6901)!)
            #expect(try verified(shell, loop, 6901))
            deluge.stopWeb()
            try deluge.startWeb()
            #expect(try runUntil(loop, seconds: 20) { log.count("deluge-web connected to its daemon") == 2 && shell.session.status.health == .verified })
            #expect(log.count("it answers \"Unknown method\" to core.get_config_values; connecting it") == 1)
            #expect(shell.session.counters.logins == 1)

            try deluge.restartWebForgettingSessions()
            #expect(try runUntil(loop, seconds: 20) { shell.session.counters.logins == 2 && shell.session.status.health == .verified })
            #expect(log.count("deluge-web ended the session") == 1)
            #expect(shell.session.counters.failedLogins == 0)
        }
    }

    /// deluge-web behind Debian's nginx at /deluge/: told its web root by `X-Deluge-Base`, as
    /// deluge's docs ask, deluge-web 2.0.3 sets the session cookie on /deluge/json (2.2 would on
    /// /deluge/; seen with curl); not told, on /json, which does not cover the /deluge/json that
    /// portsync asks the proxy for. Either way portsync sends it, and stays logged in.
    @Test(.enabled(if: NginxProxy.available && TestCertificates.available, "needs nginx, openssl and libssl3"),
          arguments: [[#"proxy_set_header X-Deluge-Base "/deluge/";"#], []])
    func behindAProxyAtAWebRootTheSessionHolds(_ locationSettings: [String]) throws {
        let deluge = try DelugeInstance()
        let certificates = try TestCertificates()
        try deluge.namespace.inside {
            let proxy = try NginxProxy(backendPort: deluge.webPort, certificate: certificates.server, key: certificates.key, location: "deluge",
                                       locationSettings: locationSettings)
            let loop = try EventLoop(logger: log.logger)
            let settings = ClientSettings(url: try HTTPURL(parsing: "https://127.0.0.1:\(proxy.port)/deluge"),
                                          tls: TLSOptions(verification: .chain(caFile: certificates.caCertificate)),
                                          password: Secret(value: DelugeInstance.webPassword, origin: "test"), checkInterval: .milliseconds(300),
                                          reannounce: false, retryInitial: .milliseconds(200), retryMax: .seconds(1), requestTimeout: .seconds(3))
            let shell = ClientSink<DelugeSession>(loop: loop, label: "deluge", settings: settings)
            shell.apply(Port(6901)!)
            #expect(try verified(shell, loop, 6901))
            let requests = shell.counters.requests
            #expect(try runUntil(loop, seconds: 10) { shell.counters.requests >= requests + 2 && shell.session.status.health == .verified },
                    "drift checks on the same session")
            #expect(shell.session.counters.logins == 1 && shell.session.counters.failedLogins == 0)
            #expect(log.count("Not authenticated") == 0)
            let access = try String(contentsOfFile: "\(proxy.directory)/access.log", encoding: .utf8)
            #expect(access.contains("POST /deluge/json HTTP/1.1\" 200"), "\(access)")
        }
    }

    /// After the verified change the session tells the trackers (`core.force_reannounce`) and
    /// the tracker hears the new port at once. (Issue 14 saw Deluge 2.0.3 stay silent; here,
    /// with Debian's libtorrent 2.0.8 and a loopback tracker, deluged also announced the new
    /// listen socket by itself, `event=started`, even with `reannounce` off: the call is the
    /// safety net the issue asks for, and this test cannot tell the two announces apart.)
    @Test func afterAVerifiedChangeTheTrackerHearsTheNewPort() throws {
        let deluge = try DelugeInstance(autoConnect: true)
        let tracker = try Tracker(in: deluge.namespace, directory: deluge.directory, port: 7070)
        #expect(try deluge.addTorrent(tracker.torrent(name: "portsync-test"), name: "portsync-test") != nil)
        #expect(waitFor(seconds: 20) { tracker.announcedPorts.contains(6900) }, "the torrent announces the configured port")
        try deluge.namespace.inside {
            let loop = try EventLoop(logger: log.logger)
            let shell = shell(deluge, loop: loop)
            shell.apply(Port(6905)!)
            #expect(try runUntil(loop, seconds: 20) { shell.session.counters.reannounces == 1 })
            if case .seen = shell.session.core.announcedListener {} else {
                Issue.record("told before deluged listened on 6905: \(String(describing: shell.session.core.announcedListener))")
            }
            #expect(waitFor(seconds: 5) { tracker.announcedPorts.contains(6905) }, "the tracker hears the new port at once, not after its 30 min interval")
        }
    }
}
