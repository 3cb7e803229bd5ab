import HTTP
import Reactor
import Sinks

// MARK: Clients

extension Doctor {
    /// How long a client is given to be reached and its port settings read.
    static let clientPatience = Duration.seconds(20)

    /// Each client as the daemon reaches it: its own sink, asked to `inspect` (the connect,
    /// changing nothing), run in the loop until it has read the port settings or met a problem.
    /// The lines are made from its status; doctor speaks no client's protocol itself.
    func checkClient(_ settings: any PortSinkSettings, _ loop: EventLoop, _ report: Report) {
        let sink = settings.makeSink(loop: loop)
        sink.inspect()
        do {
            try loop.run(within: Self.clientPatience) { sink.status.inspection != nil || !sink.status.health.isPending }
        } catch {
            return report.fail("\(settings.summary): \(error)", "portsync needs sockets here")
        }
        let checks: ClientChecks
        switch settings {
        case let settings as QBittorrentSettings: checks = qBittorrentChecks(settings)
        case let settings as TransmissionSettings: checks = transmissionChecks(settings, sink as? TransmissionSink)
        case let settings as DelugeSettings: checks = delugeChecks(settings)
        default: return report.fail("\(settings.summary): no checks for this client", "report this as a bug")
        }
        checks.report(sink.status, report)
    }

    private func tlsFix(_ label: String) -> String {
        "set [\(label)].ca_file (its CA, or its certificate itself) or tls_fingerprint; http:// or https:// as its port serves"
    }

    private func qBittorrentChecks(_ settings: QBittorrentSettings) -> ClientChecks {
        let (url, label) = (settings.url, settings.label)
        let login: String, user: String, origin: String
        switch settings.authentication {
        case .password(let username, let password):
            (user, origin) = (username, password.origin)
            login = "login: logged in as \"\(username)\" (password from \(password.origin))"
        case .apiKey(let key):
            (user, origin) = ("", key.origin)
            login = "login: an API key (from \(key.origin)), no login needed"
        case .none:
            (user, origin) = ("", "")
            login = "login: no password configured; qBittorrent must bypass authentication for this client"
        }
        return ClientChecks(client: "qBittorrent", url: url, passes: [
            (.reach, { _ in "qBittorrent: \(url) answers" }),
            (.login, { _ in login }),
            (.version, { "version: qBittorrent \($0.version ?? "?")" }),
        ], failure: { step, cause in
            switch (step, cause) {
            case (_, .noAnswer(.tls(let error))):
                ("qBittorrent: \(url): \(error)", tlsFix(label))
            case (.reach, .noAnswer(let error)):
                ("qBittorrent: \(url) is unreachable: \(error)", "start qBittorrent with its WebUI on, or set [\(label)].url (WebUI address and port)")
            case (_, .foreignServer(let name, let status)):
                ("qBittorrent: \(url) answered as \(name), not qBittorrent (\(status))", "set [\(label)].url to qBittorrent's WebUI address and port")
            case (_, .proxy(let diagnosis)):
                ("qBittorrent: \(diagnosis.problem)", diagnosis.fix)
            case (.login, .addressRefused(_, let said)):
                ("login: qBittorrent refuses this IP (\(said))", "wait for the ban to end (1 h by default) or restart qBittorrent, after fixing the password")
            case (.login, .credentialsRefused(let status, let said)), (.login, .unexpectedAnswer(let status, let said)):
                ("login: qBittorrent rejected \"\(user)\" and its password (\(status) \(said))", "fix the password (\(origin)); qBittorrent bans an IP after 5 failures")
            case (.login, let cause):
                ("login: \(Self.describe(cause))", "check [\(label)].url")
            case (_, .credentialsMissing):
                ("\(Self.title(step, "qBittorrent")): qBittorrent wants a login (403)",
                 "\(passwordFix(label)), or enable \"Bypass authentication for clients on localhost\"")
            case (.interfaces, let cause):
                ("binding: cannot read qBittorrent's interface list (\(Self.describe(cause)))", "qBittorrent 4.2 or newer is needed")
            case (.settings, let cause):
                ("settings: cannot read qBittorrent's preferences (\(Self.describe(cause)))", "check qBittorrent's WebUI")
            case (_, .noAnswer(let error)):
                ("\(Self.title(step, "qBittorrent")): \(error)", "check qBittorrent")
            default:
                ("\(Self.title(step, "qBittorrent")): \(Self.describe(cause))", "is \(url) qBittorrent's WebUI?")
            }
        }, settings: { inspection, report in
            if let interface = settings.interface {
                let unlisted = inspection.findings.lazy.compactMap { if case .interfaceNotListed(_, let listed) = $0 { listed } else { nil } }.first
                if let listed = unlisted {
                    report.fail("binding: qBittorrent does not list \(interface) (it lists \(listed.joined(separator: ", ")))",
                                "connect the VPN first; qBittorrent lists only interfaces that have an address")
                } else {
                    report.pass("binding: qBittorrent knows interface \(interface)")
                }
            }
            let port = inspection.listenPorts.first.map(String.init) ?? "?"
            var notes: [String] = []
            if inspection.findings.contains(.randomPort) { notes.append("random_port is on") }
            if inspection.findings.contains(.portForwarding) { notes.append("UPnP/NAT-PMP is on") }
            if notes.isEmpty {
                report.pass("settings: listen_port \(port), random port off\(settings.disableUPnP ? ", UPnP off" : "")")
            } else {
                report.fail("settings: listen_port \(port); \(notes.joined(separator: ", "))",
                            "portsync run turns these off when it applies the port; or turn them off in qBittorrent now")
            }
            for case .announcePort(let announced) in inspection.findings {
                report.fail("trackers: announce_port is \(announced), so trackers hear of that port, whatever portsync sets",
                            "set Advanced → \"Port reported to trackers\" to 0 in qBittorrent and restart it")
            }
        })
    }

    /// `sink`: the RPC version and dialect its session learnt, for the version's line.
    private func transmissionChecks(_ settings: TransmissionSettings, _ sink: TransmissionSink?) -> ClientChecks {
        let client = settings.client
        let (url, label) = (client.url, settings.label)
        let origin = client.password.map { " (\($0.origin))" } ?? ""
        return ClientChecks(client: "Transmission", url: url, passes: [
            (.reach, { _ in "Transmission: \(url) answers" }),
            (.login, { _ in
                client.password.map { "login: accepted \"\(client.username)\" (password from \($0.origin))" }
                    ?? "login: no password configured, and Transmission asks for none"
            }),
            (.version, { status in
                let rpc = sink.flatMap { sink in sink.session.rpcVersion.map { " (\(sink.session.dialect.describe(rpcVersion: $0)))" } } ?? ""
                return "version: Transmission \(status.version ?? "?")\(rpc)"
            }),
        ], failure: { step, cause in
            switch (step, cause) {
            case (_, .noAnswer(.tls(let error))):
                ("Transmission: \(url): \(error)", tlsFix(label))
            case (.reach, .noAnswer(let error)):
                ("Transmission: \(url) is unreachable: \(error)", "start transmission-daemon, or set [\(label)].url (its RPC address and port)")
            case (.login, .credentialsRefused(let status, _)):
                ("login: Transmission refused \"\(client.username)\" and its password (\(status))",
                 "fix [\(label)].username and the password\(origin); Transmission locks its RPC after 100 failures")
            case (.login, .addressRefused(let status, let said)):
                ("login: Transmission refuses this address (\(status) \(said))", "add it to rpc-whitelist, or restart Transmission after a lock-out")
            case (.login, .hostRefused(let host)):
                ("login: Transmission refuses the Host header \(host) (421)", "add it to rpc-host-whitelist, or use an IP address in [\(label)].url")
            case (_, .noAnswer(let error)):
                ("\(Self.title(step, "Transmission")): \(error)", "check transmission-daemon")
            default:
                ("\(Self.title(step, "Transmission")): \(Self.describe(cause))", "is \(url) Transmission's RPC?")
            }
        }, settings: { inspection, report in
            let port = inspection.listenPorts.first.map(String.init) ?? "?"
            var notes: [String] = []
            if inspection.findings.contains(.randomPort) { notes.append("peer-port-random-on-start is on") }
            if inspection.findings.contains(.portForwarding) { notes.append("port forwarding (UPnP/NAT-PMP) is on") }
            if notes.isEmpty {
                report.pass("settings: peer-port \(port), random port off, port forwarding off")
            } else {
                report.fail("settings: peer-port \(port); \(notes.joined(separator: ", "))", "portsync run turns these off when it applies the port")
            }
        })
    }

    private func delugeChecks(_ settings: DelugeSettings) -> ClientChecks {
        let client = settings.client
        let (url, label) = (client.url, settings.label)
        let origin = client.password?.origin ?? ""
        return ClientChecks(client: "Deluge", url: url, passes: [
            (.reach, { _ in "Deluge: \(url) answers" }),
            (.login, { _ in "login: deluge-web accepted the password (from \(origin))" }),
            (.daemon, { status in
                status.inspection?.findings.contains(.daemonNotConnected) == true
                    ? "daemon: deluge-web is not connected to deluged; portsync run connects it (web.connect)"
                    : "daemon: deluge-web is connected to deluged"
            }),
        ], failure: { step, cause in
            switch (step, cause) {
            case (.configuration, _):
                ("login: no password configured for deluge-web", passwordFix(label))
            case (_, .noAnswer(.tls(let error))):
                ("Deluge: \(url): \(error)", tlsFix(label))
            case (.reach, _):
                ("Deluge: \(url) does not answer as deluge-web: \(Self.describe(cause))",
                 "start deluge-web, or set [\(label)].url (its address and port, 8112 by default)")
            case (.login, .credentialsRefused):
                ("login: deluge-web refused the password", "fix the password (\(origin))")
            case (.daemon, _):
                ("daemon: \(Self.describe(cause))", "start deluged, and add it in deluge-web's Connection Manager")
            case (.settings, _):
                ("settings: cannot read Deluge's listen_ports (\(Self.describe(cause)))", "check deluged")
            default:
                ("\(Self.title(step, "Deluge")): \(Self.describe(cause))", "is \(url) deluge-web?")
            }
        }, settings: { inspection, report in
            guard !inspection.findings.contains(.daemonNotConnected) else { return }
            let ports = "[\(inspection.listenPorts.map(String.init).joined(separator: ", "))]"
            if inspection.findings.contains(.randomPort) {
                report.fail("settings: listen_ports \(ports); random_port is on", "portsync run turns it off when it applies the port")
            } else {
                report.pass("settings: listen_ports \(ports), random port off")
            }
        })
    }

    /// What a line about a step begins with: "login", or the client's name for reaching it.
    static func title(_ step: ClientProblem.Step, _ client: String) -> String {
        switch step {
        case .configuration, .reach: client
        case .login: "login"
        case .version: "version"
        case .daemon: "daemon"
        case .interfaces: "binding"
        case .settings: "settings"
        }
    }

    /// A problem in words, where a check has none of its own for it.
    static func describe(_ cause: ClientProblem.Cause) -> String {
        switch cause {
        case .noAnswer(let error): "\(error)"
        case .foreignServer(let name, let status): "answered as \(name) (\(status))"
        case .proxy(let diagnosis): diagnosis.problem
        case .credentialsRefused(let status, let said): "the credentials were refused (\(status) \(said))"
        case .addressRefused(let status, let said): "this address is refused (\(status) \(said))"
        case .hostRefused(let host): "the Host header \(host) was refused"
        case .credentialsMissing: "a login is wanted, and no password is configured"
        case .unexpectedAnswer(let status, let said): "unexpected answer \(status) \(said)"
        case .unusableAnswer(let what): what
        }
    }
}

/// One client's lines, from its sink's status: a line for each step of reaching it that came
/// before the problem, the problem's line and fix, and nothing after it; with no problem, every
/// step's line and then what its port settings say.
struct ClientChecks {
    /// "qBittorrent"
    let client: String
    let url: HTTPURL
    /// The steps that have a line of their own when they pass, in order.
    let passes: [(step: ClientProblem.Step, line: (SinkStatus) -> String)]
    /// A problem's line and its fix.
    let failure: (ClientProblem.Step, ClientProblem.Cause) -> (String, String)
    /// The lines of the port settings read.
    let settings: (ClientInspection, Doctor.Report) -> Void

    func report(_ status: SinkStatus, _ report: Doctor.Report) {
        if let problem = status.problem {
            for pass in passes where pass.step < problem.step { report.pass(pass.line(status)) }
            let (text, fix) = failure(problem.step, problem.cause)
            return report.fail(text, fix)
        }
        guard let inspection = status.inspection else {
            switch status.health {
            case .unreachable(let message), .failing(let message), .loginRefused(let message):
                return report.fail("\(client): \(message)", "fix it, then run portsync doctor again")
            case .idle, .applying, .verified:
                return report.fail("\(client): no complete answer from \(url) within \(Doctor.clientPatience.components.seconds) s",
                                   "check that it runs and that portsync may reach it")
            }
        }
        for pass in passes { report.pass(pass.line(status)) }
        settings(inspection, report)
    }
}
