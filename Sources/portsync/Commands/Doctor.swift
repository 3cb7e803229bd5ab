import Domain
import Glibc
import HTTP
import Reactor
import Sinks
import Watchers

/// `portsync doctor`: checks each piece of the setup in order and prints one line per check,
/// ✓ or ✗ with what to do. Exit 0 only when every check passes. Sources and clients are the
/// daemon's own, run in the loop: it logs in to qBittorrent at most once and changes nothing.
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
        let clientLoop = clientsLoop() ?? loop
        for sink in plan.sinks {
            report.prefix = clients.count > 1 && !(sink is HookSettings) ? "\(sink.label): " : ""
            if let settings = sink as? HookSettings {
                checkHook(settings, report)
            } else {
                checkClient(sink, clientLoop, report)
            }
        }
        report.prefix = ""
        if let state = previous, let verdict = state.connectable {
            checkConnectability(verdict, daemonRunning: StatusCommand.isPortsync(state.pid), report)
        }
        ProcessEnvironment.printToStandardOutput(report.failures == 0 ? "all checks passed\n" : "\(report.failures) check(s) failed\n")
        return report.failures == 0 ? .success : .transientFailure
    }

    /// A loop for the clients' sinks that writes none of their log lines, when only errors would
    /// be written: each is a problem its check's line says already. With a fuller log (`--trace`,
    /// a `log_level` above info) they run in doctor's own loop and say what they do.
    private func clientsLoop() -> EventLoop? {
        guard !logger.isEnabled(.warning), !logger.traceEnabled else { return nil }
        return try? EventLoop(logger: Logger(level: .error, style: logger.style, output: { _ in }))
    }

    /// The running daemon's connectability verdict (doctor changes nothing, so it cannot make
    /// one of its own: the clients are not moved to the forwarded port here).
    private func checkConnectability(_ verdict: ConnectabilityRecord, daemonRunning: Bool, _ report: Report) {
        let when = "\(WallClock.text(verdict.checked)) (\(WallClock.age(verdict.checked)))"
        guard daemonRunning else {
            return report.pass("connectable: \(verdict.summary) when the daemon last ran, at \(when)")
        }
        guard verdict.kind == .notConnectable else {
            return report.pass("connectable: \(verdict.summary), as the running daemon judged it at \(when)")
        }
        let fix = switch verdict.why {
        case "no-forwarded-port": "see the source's lines above"
        case "not-listening", "deaf-listener": "portsync re-opens qBittorrent's listener once by itself; if it stays so, restart the client"
        case "listening-elsewhere": "set the client's network interface (or the address it binds to) to the tunnel's, or to any"
        case "address-mismatch": "connect to another server of the VPN"
        default: "see portsync status for the evidence"
        }
        report.fail("connectable: \(verdict.summary), as the running daemon judged it at \(when)", fix)
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
}
