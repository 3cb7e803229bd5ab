import CLinux
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

    final class Report {
        var failures = 0
        /// "qbittorrent.tv: " while that client is checked, when there are several.
        var prefix = ""
        func pass(_ text: String) { ProcessEnvironment.printToStandardOutput("✓ \(prefix)\(text)\n") }
        func fail(_ text: String, _ fix: String) {
            failures += 1
            ProcessEnvironment.printToStandardOutput("✗ \(prefix)\(text)\n    → \(fix)\n")
        }
    }

    /// A configuration that did not load: the first and only check.
    static func reportConfigurationError(_ error: ConfigurationError) -> ExitCode {
        ProcessEnvironment.printToStandardOutput("✗ configuration: \(error)\n    → fix it, then run portsync doctor again\n")
        return .transientFailure
    }

    func run() -> ExitCode {
        let report = Report()
        let configuration = loaded.configuration
        let plan = SyncPlan(loaded)
        report.pass("configuration: \(configuration.file ?? "none found, using the defaults") (strategy \(configuration.source.strategy.rawValue))")
        if let service = loaded.serviceCredentials { checkServiceCredentials(service, report) }
        guard let loop = try? EventLoop(logger: logger) else {
            report.fail("cannot create the event loop", "this system lacks epoll/timerfd: portsync needs Linux")
            return .unsupported
        }
        for source in plan.sources {
            switch source {
            case .portFile(_, let path, _, let portIndex): checkPortFile(path, portIndex: portIndex, report)
            case .natpmp(let natpmp): checkTunnel(natpmp, loop, report)
            case .gluetun(let settings): checkGluetun(settings, loop, report)
            }
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
        if let path = HookSink.executable(program, searching: settings.searchPath) {
            report.pass("hook: \(path), run when the port changes (not run by doctor)")
        } else {
            report.fail("hook: \(HookSink.notFound(program, searching: settings.searchPath))", "install it, or fix [hook].command")
        }
    }

    // MARK: Sources

    private func checkPortFile(_ path: String, portIndex: Int, _ report: Report) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "/"
        guard PortFileWatcher.isDirectory(directory) else {
            return report.fail("port file: \(directory) does not exist",
                               "start the ProtonVPN app and connect (P2P server, port forwarding on); portsync run waits for it")
        }
        switch PortFile.read(atPath: path, portIndex: portIndex) {
        case .port(let port, _):
            report.pass("port file: \(path) says \(port)")
        case .empty:
            report.fail("port file: \(path) is empty: no forwarded port right now", "connect to a P2P server with port forwarding on")
        case .missing:
            report.fail("port file: \(path) does not exist", "connect with port forwarding on in the ProtonVPN app")
        case .notARegularFile(let error):
            report.fail("port file: \(error)", "point the setting at the file the VPN writes")
        case .unreadable(let error):
            report.fail("port file: \(path): \(error)", "check what writes this file")
        case .garbage(let error):
            report.fail("port file: \(path): \(error)", "check what writes this file")
        case .noPortAtIndex(let count):
            report.fail("port file: \(path) lists \(count) port(s); port_index \(portIndex) is not among them", "set port_index below \(count)")
        }
    }

    private func checkTunnel(_ natpmp: SyncPlan.NATPMP, _ loop: EventLoop, _ report: Report) {
        let interface = natpmp.interface
        var state: TunnelTracker.State?
        let watcher = TunnelWatcher(loop: loop, interface: interface, gateway: natpmp.gateway) { state = $0 }
        defer { watcher.stop() }
        do {
            try watcher.start()
            try loop.run(within: .seconds(3)) { state != nil }
        } catch {
            return report.fail("VPN interface: \(error)", "portsync needs rtnetlink (AF_NETLINK allowed)")
        }
        let tunnel: Tunnel
        switch state {
        case .usable(let usable)?:
            tunnel = usable
        case .awaitingRoute(let waiting)?:
            return report.fail("VPN interface: \(interface) is up with \(waiting.address), but a packet to the gateway \(waiting.gateway) (\(waiting.gatewayRule)) would not leave through it",
                               "wait until the VPN has finished connecting; `ip route get \(waiting.gateway) from \(waiting.address)` shows the way; set [natpmp].gateway if the gateway is another address")
        case .unusable(let reason)?:
            return report.fail("VPN interface: \(reason)", "connect the VPN, or set [natpmp].interface (now \"\(interface)\")")
        case nil:
            return report.fail("VPN interface: no answer from rtnetlink", "portsync needs rtnetlink (AF_NETLINK allowed)")
        }
        report.pass("VPN interface: \(interface) is up with \(tunnel.address)")
        report.pass("NAT-PMP gateway: \(tunnel.gateway), \(tunnel.gatewayRule)")
        switch askExternalAddress(tunnel) {
        case .success(let answer): report.pass("NAT-PMP: the gateway \(tunnel.gateway) answers (\(answer))")
        case .failure(let problem): report.fail("NAT-PMP: \(problem.message)", problem.fix)
        }
    }

    struct Problem: Error {
        let message: String
        let fix: String
    }

    /// Opcode 0 from the NAT-PMP client's own kind of socket (bound to the tunnel address, kept
    /// on the tunnel), three tries (250, 500, 1000 ms).
    private func askExternalAddress(_ tunnel: Tunnel) -> Result<String, Problem> {
        let gateway = tunnel.gateway
        let fd: FileDescriptor
        do {
            fd = try NATPMPClient.openSocket(local: tunnel.address, gateway: gateway, interface: tunnel.index)
        } catch {
            return .failure(Problem(message: "cannot reach \(gateway): \(error)", fix: "set [natpmp].gateway to the VPN's NAT-PMP gateway"))
        }
        defer { fd.close() }
        var milliseconds: Int32 = 250
        for _ in 0..<3 {
            let answer: [UInt8]
            do {
                _ = try Socket(fd).send(NATPMP.externalAddressRequest())
                var ready = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, milliseconds)  // a failed or interrupted wait is one try less, no more
                if case .done(let bytes) = try fd.read(upTo: 64) { answer = bytes } else { answer = [] }
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                return .failure(Problem(message: "the gateway \(gateway) refuses NAT-PMP (port unreachable)",
                                        fix: "turn port forwarding on (ProtonVPN: a P2P server; WireGuard configs made with NAT-PMP on)"))
            } catch {
                answer = []  // the next try sends again
            }
            if !answer.isEmpty {
                switch try? NATPMP.decode(answer) {
                case .externalAddress(.success, let epoch, let address)?: return .success("external address \(address), up \(epoch) s")
                case .externalAddress(let result, _, _)?:
                    return .failure(Problem(message: "the gateway \(gateway) answered \(result)", fix: "see the VPN's port forwarding settings"))
                default:
                    return .failure(Problem(message: "the gateway \(gateway) sent something that is not NAT-PMP", fix: "check [natpmp].gateway"))
                }
            }
            milliseconds *= 2
        }
        return .failure(Problem(message: "no answer from \(gateway):5351",
                                fix: "the VPN may not forward ports: ProtonVPN needs a P2P server with port forwarding; check [natpmp].gateway"))
    }

    private func checkGluetun(_ settings: GluetunSettings, _ loop: EventLoop, _ report: Report) {
        let poller = GluetunPoller(loop: loop, settings: settings) { _ in }
        defer { poller.stop() }
        poller.start()
        _ = try? loop.run(within: .seconds(15)) { poller.lastPorts != nil || poller.lastProblem != nil }
        if let ports = poller.lastPorts {
            if ports.isEmpty {
                report.fail("Gluetun: the control server answers, but no port is forwarded yet",
                            "enable VPN_PORT_FORWARDING in Gluetun and use a provider and server that forward ports")
            } else {
                report.pass("Gluetun: forwards \(ports.map(\.description).joined(separator: ", ")) (\(poller.route))")
            }
        } else {
            report.fail("Gluetun: \(poller.lastProblem ?? "no answer from \(settings.url)")",
                        poller.refused ? "give portsync a role in Gluetun's auth config.toml (see the README) and set [gluetun].api_key_file"
                                       : "check [gluetun].url (Gluetun's HTTP control server, port 8000 by default)")
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
