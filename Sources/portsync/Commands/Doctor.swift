import Domain
import Glibc
import HTTP
import Reactor
import Sinks
import Watchers

/// `portsync doctor`: checks each piece of the setup in order and prints one line per check,
/// ✓ or ✗ with what to do. Exit 0 only when every check passes. It logs in to qBittorrent at
/// most once.
struct Doctor {
    let loaded: LoadedConfiguration
    let logger: Logger

    /// Prints each check, every configured secret taken out of it: a check quotes what a server
    /// answered, and a server may echo what it was sent (a login form, its headers).
    final class Report {
        var failures = 0
        /// "qbittorrent.tv: " while that client is checked, when there are several.
        var prefix = ""
        private let redaction: Redaction

        init(redaction: Redaction) {
            self.redaction = redaction
        }

        func pass(_ text: String) { ProcessEnvironment.printToStandardOutput("✓ \(prefix)\(redaction(text))\n") }
        func fail(_ text: String, _ fix: String) {
            failures += 1
            ProcessEnvironment.printToStandardOutput("✗ \(prefix)\(redaction(text))\n    → \(redaction(fix))\n")
        }
    }

    /// A configuration that did not load: the first and only check.
    static func reportConfigurationError(_ error: ConfigurationError) -> ExitCode {
        ProcessEnvironment.printToStandardOutput("✗ configuration: \(error)\n    → fix it, then run portsync doctor again\n")
        return .transientFailure
    }

    func run() -> ExitCode {
        let report = Report(redaction: Redaction(loaded.credentials.all))
        let configuration = loaded.configuration
        let plan = SyncPlan(loaded)
        report.pass("configuration: \(configuration.file ?? "none found, using the defaults") (strategy \(configuration.source.strategy.rawValue))")
        if let service = loaded.serviceCredentials { checkServiceCredentials(service, report) }
        guard let loop = try? EventLoop(logger: logger) else {
            report.fail("cannot create the event loop", "this system lacks epoll/timerfd: portsync needs Linux")
            return .unsupported
        }
        let previous = (try? StateStore(path: configuration.daemon.stateFile).load()) ?? nil
        for settings in plan.sources.settings {
            checkSource(settings, previous?.memory(for: settings.identity) ?? SourceMemory(), loop, report)
        }
        // Each client's lines carry its label when there are several; the hook's name themselves.
        let clients = plan.sinks.filter { !($0 is HookSettings) }
        for sink in plan.sinks {
            report.prefix = clients.count > 1 && !(sink is HookSettings) ? "\(sink.label): " : ""
            switch sink {
            case let settings as QBittorrentSettings: checkQBittorrent(settings, loop, report)
            case let settings as TransmissionSettings: checkTransmission(settings, loop, report)
            case let settings as DelugeSettings: checkDeluge(settings, loop, report)
            case let settings as HookSettings: checkHook(settings, report)
            default: report.fail("\(sink.summary): no checks for this client", "report this as a bug")
            }
        }
        report.prefix = ""
        ProcessEnvironment.printToStandardOutput(report.failures == 0 ? "all checks passed\n" : "\(report.failures) check(s) failed\n")
        return report.failures == 0 ? .success : .transientFailure
    }

    /// The secrets the system unit hands the service, which doctor (run by root) used: each
    /// file must exist, or systemd does not start the service.
    private func checkServiceCredentials(_ service: ServiceCredentials, _ report: Report) {
        for (id, path) in service.sources {
            if FileContents.exists(path) {
                report.pass("credentials: \(id) from \(path), as \(service.unitFile) hands it to the service")
            } else {
                report.fail("credentials: \(service.unitFile) loads \(id) from \(path), which does not exist: systemd will not start the service",
                            "install -Dm600 /dev/stdin \(path)   (type the secret, then Ctrl-D)")
            }
        }
    }

    /// Where a client's password goes, for the setup at hand. The hardened system service runs
    /// as a throwaway user that cannot read /etc/portsync: its secrets go through systemd
    /// (`LoadCredential=`), never `password_file`, so the advice must not say `password_file`.
    func passwordFix(_ label: String) -> String {
        let id = "\(label)-password"
        if let service = loaded.serviceCredentials, let path = service.path(of: id) {
            return "put the Web UI password in \(path) (root's, chmod 600): \(service.unitFile) hands it to the service; leave password_file unset, the service's own user cannot read it"
        }
        if ProcessEnvironment.userID == 0, loaded.configuration.file?.hasPrefix("/etc/") == true {
            return "put the Web UI password in /etc/portsync/\(id) (chmod 600) and add LoadCredential=\(id):/etc/portsync/\(id) to the service's unit; leave password_file unset, the hardened service's own user cannot read it"
        }
        return "set [\(label)].password_file (or $CREDENTIALS_DIRECTORY/\(id))"
    }

    /// The hook's program is there; doctor does not run it.
    private func checkHook(_ settings: HookSettings, _ report: Report) {
        let program = settings.command[0]
        if let path = ChildEnvironment.executable(program, searching: settings.searchPath) {
            report.pass("hook: \(path), run when the port changes (not run by doctor)")
        } else {
            report.fail("hook: \(ChildEnvironment.notFound(program, searching: settings.searchPath))", "install it, or fix [hook].command")
        }
    }

    // MARK: Sources

    /// How long a source is given to name a port or say why not.
    static let sourcePatience = Duration.seconds(5)

    /// Each source as the daemon runs it, in the loop, until it names a port or says why not:
    /// its tunnel, then the port and where it came from, or the problem and its fix.
    private func checkSource(_ settings: any PortSourceSettings, _ memory: SourceMemory, _ loop: EventLoop, _ report: Report) {
        let title = settings.identity.title
        let source = settings.makeSource(loop: loop, memory: memory)
        defer { source.stop(final: false) }
        var ports: [Port] = []
        source.onObservation = { observation in if observation.port != nil { ports = observation.ports } }
        do {
            try source.start()
            _ = try loop.run(within: Self.sourcePatience) { source.status.state.isDecided }
        } catch {
            return report.fail("\(title): \(error)", "portsync needs inotify, rtnetlink and sockets here")
        }
        let status = source.status
        if case .usable(let tunnel)? = status.link {
            report.pass(tunnel.gatewayRule == .defaultRoute
                ? "network: \(tunnel.interface) is up with \(tunnel.address), its default route's gateway \(tunnel.gateway)"
                : "VPN interface: \(tunnel.interface) is up with \(tunnel.address)")
        }
        let from = status.detail.map { " from \($0)" } ?? ""
        switch status.state {
        case .forwarding(let port):
            let named = ports.isEmpty ? [port] : ports
            report.pass("\(title): port \(named.map(\.description).joined(separator: ", "))\(from)")
        case .standingBy(let reason):
            report.pass("\(title): not asked: \(reason)")
        case .starting:
            report.fail("\(title): no answer from \(settings.summary) within \(Self.sourcePatience.components.seconds) s",
                        "check that it runs and that portsync may reach it")
        case .waiting(let problem), .unavailable(let problem), .failing(let problem), .misconfigured(let problem):
            report.fail("\(title): \(problem.message)", problem.fix)
        }
    }

    // MARK: qBittorrent

    private func checkQBittorrent(_ settings: QBittorrentSettings, _ loop: EventLoop, _ report: Report) {
        let url = settings.url
        let api = QBittorrentAPI(settings: settings)
        let client = Self.client(loop, settings.label, url, settings.tls)
        var cookie: String?
        func call(_ request: HTTPRequest) -> Result<HTTPResponse, HTTPClientError> {
            Self.call(request, client, loop)
        }
        func get(_ endpoint: QBittorrentAPI.Endpoint) -> Result<HTTPResponse, HTTPClientError> {
            call(api.request(endpoint, cookie: cookie))
        }

        let probe = get(.webAPIVersion)
        if case .failure(.tls(let error)) = probe {
            return report.fail("qBittorrent: \(url): \(error)",
                               "set [qbittorrent].ca_file (its CA, or its certificate itself) or tls_fingerprint; http:// or https:// as its port serves")
        }
        if case .failure(let error) = probe {
            report.fail("qBittorrent: \(url) is unreachable: \(error)",
                        "start qBittorrent with its WebUI on, or set [\(settings.label)].url (WebUI address and port)")
            return
        }
        if case .success(let response) = probe, let other = ForeignServer.identify(response, expected: "qBittorrent") {
            return report.fail("qBittorrent: \(url) answered as \(other), not qBittorrent (\(response.status))",
                               "set [\(settings.label)].url to qBittorrent's WebUI address and port")
        }
        var anonymousProbe = true
        if case .apiKey = settings.authentication { anonymousProbe = false }  // a bad key is answered 401 too
        if case .success(let response) = probe, anonymousProbe,
           let finding = ProxyDiagnosis.diagnose(probe: response, url: url, path: QBittorrentAPI.Endpoint.webAPIVersion.rawValue) {
            return report.fail("qBittorrent: \(finding.problem)", finding.fix)
        }
        report.pass("qBittorrent: \(url) answers")

        switch settings.authentication {
        case .password(let username, let password):
            switch call(api.login()!).map({ ($0, QBittorrentAPI.loginOutcome($0)) }) {
            case .success((_, .loggedIn(let sessionCookie))):
                cookie = sessionCookie
                report.pass("login: logged in as \"\(username)\" (password from \(password.origin))")
            case .success((let response, .banned)), .success((let response, .refused)):
                return report.fail("login: qBittorrent refuses this IP (\(response.bodyExcerpt))",
                                   "wait for the ban to end (1 h by default) or restart qBittorrent, after fixing the password")
            case .success((let response, _)):
                return report.fail("login: qBittorrent rejected \"\(username)\" and its password (\(response.status) \(response.bodyExcerpt))",
                                   "fix the password (\(password.origin)); qBittorrent bans an IP after 5 failures")
            case .failure(let error):
                return report.fail("login: \(error)", "check [\(settings.label)].url")
            }
        case .apiKey(let key):
            report.pass("login: an API key (from \(key.origin)), no login needed")
        case .none:
            report.pass("login: no password configured; qBittorrent must bypass authentication for this client")
        }

        switch get(.version) {
        case .success(let response) where response.status == 200:
            report.pass("version: qBittorrent \(QBittorrentAPI.version(response) ?? response.bodyExcerpt)")
        case .success(let response) where response.status == 403:
            return report.fail("version: qBittorrent wants a login (403)",
                               "\(passwordFix(settings.label)), or enable \"Bypass authentication for clients on localhost\"")
        case .success(let response):
            return report.fail("version: unexpected answer \(response.status) \(response.bodyExcerpt)", "is \(url) qBittorrent's WebUI?")
        case .failure(let error):
            return report.fail("version: \(error)", "check qBittorrent")
        }

        if let interface = settings.interface {
            if case .success(let response) = get(.interfaces), let names = QBittorrentAPI.interfaceNames(response) {
                if names.contains(interface) {
                    report.pass("binding: qBittorrent knows interface \(interface)")
                } else {
                    report.fail("binding: qBittorrent does not list \(interface) (it lists \(names.joined(separator: ", ")))",
                                "connect the VPN first; qBittorrent lists only interfaces that have an address")
                }
            } else {
                report.fail("binding: cannot read qBittorrent's interface list", "qBittorrent 4.2 or newer is needed")
            }
        }

        guard case .success(let response) = get(.preferences), case .success(let preferences) = QBittorrentAPI.preferences(response) else {
            return report.fail("settings: cannot read qBittorrent's preferences", "check qBittorrent's WebUI")
        }
        var notes: [String] = []
        if preferences.randomPort { notes.append("random_port is on") }
        if settings.disableUPnP && preferences.upnp { notes.append("UPnP/NAT-PMP is on") }
        if notes.isEmpty {
            report.pass("settings: listen_port \(preferences.listenPort), random port off\(settings.disableUPnP ? ", UPnP off" : "")")
        } else {
            report.fail("settings: listen_port \(preferences.listenPort); \(notes.joined(separator: ", "))",
                        "portsync run turns these off when it applies the port; or turn them off in qBittorrent now")
        }
        if preferences.announcePort != 0 {
            report.fail("trackers: announce_port is \(preferences.announcePort), so trackers hear of that port, whatever portsync sets",
                        "set Advanced → \"Port reported to trackers\" to 0 in qBittorrent and restart it")
        }
    }
}
