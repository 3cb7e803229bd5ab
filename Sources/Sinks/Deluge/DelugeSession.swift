import Domain
import HTTP
import Reactor

/// The Deluge sink's logic, with no I/O (as `QBittorrentSession`): inputs in, effects out, one
/// request at a time, `nextDeadline` for the shell's timer.
///
/// deluge-web stands between portsync and deluged: log in once (`auth.login`, cookie
/// `_session_id`), make sure deluge-web is connected to its daemon (`web.connected`; when not,
/// `web.get_hosts` and `web.connect`, except for an `.inspect`, which leaves it so), then read
/// `listen_ports` (a connect, once, before any port), write only what differs and read it back. A deluge-web without its daemon answers "Unknown method" to every `core.*` call; one
/// whose daemon went away unnoticed does not answer at all (the shell's timeout): both mean
/// "connect again", once: when `web.connected` then says it is connected all the same, the
/// "Unknown method" is a failure with back-off. A call refused as "Not authenticated" on a
/// session that works gets one fresh login; refused again before a sync verifies, it is not the
/// session, and fails with back-off instead (no login storm). A refused password stops all logins until the settings change or the pause
/// ends. After a verified change the trackers are told (`core.force_reannounce` with every
/// torrent's id), at most once a minute: issue 14 saw Deluge 2.0.3 not re-announce by itself
/// (the tests saw Debian's build, libtorrent 2.0.8, announce a new listen socket on its own).
public struct DelugeSession {
    /// The call in flight and its id.
    public private(set) var inFlight: (call: DelugeRPC.Call, id: Int)?
    public static let clientName = "Deluge"
    var core: ClientSessionCore
    private var cookie: String?
    /// deluge-web said it is connected to its daemon (and has not failed a core call since).
    private var daemonConnected = false
    /// A core call answered "Unknown method" and `web.connected` was asked again; until a core
    /// call succeeds, another "Unknown method" is a failure, not another round of asking.
    private var unknownMethodChecked = false
    /// `web.connect` just succeeded: an "Unknown method" now is not a missing connection.
    private var justConnected = false
    /// The daemon `web.connect` was asked for, for messages.
    private var connecting: DelugeRPC.Host?
    private var reannouncePending = false
    private var written: Port?
    private var lastID = 0
    /// "No password configured" was logged (once until the settings change).
    private var missingPasswordSaid = false

    public init(settings: ClientSettings) {
        core = ClientSessionCore(client: "Deluge", settings: settings)
    }

    public var isBusy: Bool { inFlight != nil }
    var isIdle: Bool { inFlight == nil && daemonConnected }

    mutating func forgetSession() {
        missingPasswordSaid = false
        cookie = nil
        daemonConnected = false
        unknownMethodChecked = false
    }

    mutating func received(_ response: HTTPResponse, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let (call, id) = inFlight else { return }
        inFlight = nil
        handle(response, to: call, id: id, now, &effects)
    }

    mutating func failed(_ error: HTTPClientError, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let (call, _) = inFlight else { return }
        inFlight = nil
        if call.isCore, error == .timedOut {
            daemonConnected = false
            core.fail("deluge-web did not answer \(call.method) in time: its daemon has gone away (deluge-web does not notice, nor reconnect); connecting it again",
                      problem: call.step.map { ClientProblem($0, .noAnswer(error)) }, now, &effects)
        } else {
            if error.isUnreachable { daemonConnected = false }
            core.requestFailed(call.method, error, step: call.step, now, &effects)
        }
    }

    mutating func reannounceBecameDue() {
        reannouncePending = true
    }

    // MARK: The sync

    mutating func startSync(_ effects: inout [ClientSessionEffect]) {
        guard core.hasWork, !isLoginRefused else { return }
        guard inFlight == nil else {
            core.syncRequested = true
            return
        }
        guard let password = settings.password else {
            // A configuration mistake, not a transient failure: said once, nothing retried, and the
            // health says so (not "applying" forever) until the settings change.
            let problem = "deluge-web needs its password: none is configured"
            if !missingPasswordSaid { effects.append(.log(.error, problem)) }
            missingPasswordSaid = true
            core.status.health = .failing(problem)
            core.status.problem = ClientProblem(.configuration, .credentialsMissing)
            return
        }
        guard core.login.isLoggedIn else { return send(.login(password), &effects) }
        guard daemonConnected else { return send(.connected, &effects) }
        guard let wanted = core.desired else {
            // Connected before any port: the port settings once, then nothing until a port comes.
            if core.connectRequested { send(.readPorts, &effects) }
            return
        }
        if let away = core.takeDetour() {
            send(.writePorts(away), &effects)
        } else if reannouncePending && core.status.health == .verified && core.status.verifiedPort == wanted {
            send(.torrents, &effects)
        } else if let verified = core.writeAtOnce(wanted) {
            effects.append(.log(.info, "setting Deluge's listen_ports to [\(wanted), \(wanted)] (was \(verified))"))
            send(.writePorts(wanted), &effects)
        } else {
            send(.readPorts, &effects)
        }
    }

    private mutating func send(_ call: DelugeRPC.Call, _ effects: inout [ClientSessionEffect]) {
        lastID += 1
        inFlight = (call, lastID)
        if case .writePorts(let port) = call { written = port }
        core.counters.requests += 1
        effects.append(.send(httpRequest(for: call, id: lastID), retryIfStale: true))
    }

    func httpRequest(for call: DelugeRPC.Call, id: Int) -> HTTPRequest {
        DelugeRPC.request(call, id: id, url: settings.url, cookie: cookie)
    }

    // MARK: Answers

    private mutating func handle(_ response: HTTPResponse, to call: DelugeRPC.Call, id: Int, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard response.status == 200 else {
            let address = settings.url.address(of: DelugeRPC.target(settings.url))
            let hint = response.status == 404 ? ": is that deluge-web?" : ""
            return core.fail("unexpected answer to \(call.method) from \(address): \(response.status) \"\(response.bodyExcerpt)\"\(hint)",
                             kind: "\(call.method) answered \(response.status)",
                             problem: call.step.map { ClientProblem($0, .unexpectedAnswer(status: response.status, said: response.bodyExcerpt)) }, now, &effects)
        }
        if let fresh = response.cookies.first(where: { $0.name == DelugeRPC.cookieName }) {
            cookie = "\(fresh.name)=\(fresh.value)"
        }
        let result: JSONValue
        switch DelugeRPC.parse(response.body, id: id) {
        case .failure(let error):
            return unusable("answer to \(call.method) \(error)", kind: "answer to \(call.method) \(error.kind)", call.step, now, &effects)
        case .success(.error(let code, let message)):
            return rejected(call, code: code, message: message, now, &effects)
        case .success(.result(let value)):
            result = value
        }
        if case .login = call {
            return loginAnswered(result, now, &effects)
        }
        core.login.confirm()
        if call.isCore { unknownMethodChecked = false }
        switch call {
        case .login:
            preconditionFailure("login answers are handled by loginAnswered")
        case .connected:
            if result.bool == true {
                daemonConnected = true
                startSync(&effects)
            } else if core.changesNothing && core.desired == nil {
                core.inspected(ClientInspection(listenPorts: [], findings: [.daemonNotConnected]), &effects)
            } else {
                effects.append(.log(.info, "deluge-web is not connected to its daemon; connecting it"))
                send(.hosts, &effects)
            }
        case .hosts:
            guard let hosts = DelugeRPC.Host.list(result), let host = hosts.first(where: \.isLoopback) ?? hosts.first else {
                return unusable("deluge-web has no daemon in its host list (web.get_hosts answered \(result.excerpt)); add deluged in its Connection Manager",
                                kind: "no daemon in the host list", call.step, now, &effects)
            }
            connecting = host
            send(.connect(hostID: host.id), &effects)
        case .connect:
            // The daemon's method list on success; null when deluge-web could not connect.
            let target = connecting.map { " at \($0)" } ?? ""
            guard let methods = result.array, !methods.isEmpty else {
                return unusable("deluge-web could not connect to its daemon\(target): is deluged running, with this host's user and password in its auth file?", call.step, now, &effects)
            }
            daemonConnected = true
            justConnected = true
            effects.append(.log(.info, "deluge-web connected to its daemon\(target)"))
            startSync(&effects)
        case .readPorts:
            justConnected = false
            portsRead(result, now, &effects)
        case .writePorts:
            core.counters.applies += 1
            send(.verifyPorts, &effects)
        case .verifyPorts:
            guard let written, let port = core.desired else { return }
            guard let pair = DelugeRPC.ports(result), pair == (Int(written.value), Int(written.value)) else {
                core.counters.failedApplies += 1
                return core.fail("Deluge still has listen_ports \(result.excerpt) after being set to [\(written), \(written)]",
                                 kind: "listen_ports not set", now, &effects)
            }
            guard written == port else { return startSync(&effects) }
            core.verified(port, changed: true, now, &effects)
            if core.reannounceDue(port, now, &effects) {
                reannouncePending = true
                startSync(&effects)
            }
        case .torrents:
            reannouncePending = false
            guard let ids = result.array?.compactMap(\.string), !ids.isEmpty else {
                return effects.append(.log(.debug, "Deluge has no torrents to re-announce"))
            }
            send(.reannounce(ids), &effects)
        case .reannounce(let ids):
            guard let port = core.status.verifiedPort else { return }
            core.reannounced(port, now)
            let when = core.announcedListener.map { " \($0)" } ?? ""
            effects.append(.log(.info, "asked Deluge to tell the trackers of \(ids.count) torrent\(ids.count == 1 ? "" : "s") about port \(port)\(when)"))
        }
    }

    private mutating func loginAnswered(_ result: JSONValue, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard result.bool == true else {
            return core.refuse("deluge-web refused the password (auth.login answered \(result.excerpt))", failed: true,
                               problem: ClientProblem(.login, .credentialsRefused(status: 200, said: result.excerpt)), now, &effects)
        }
        guard cookie != nil else {
            return unusable("deluge-web accepted the password but sent no \(DelugeRPC.cookieName) cookie", .login, now, &effects)
        }
        core.login.loggedIn()
        daemonConnected = false
        core.counters.logins += 1
        effects.append(.log(.info, "logged in to deluge-web at \(settings.url)"))
        startSync(&effects)
    }

    private mutating func portsRead(_ result: JSONValue, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        // These settings are current: they answer any sync asked for meanwhile.
        core.syncRequested = false
        guard let pair = DelugeRPC.ports(result["listen_ports"]) else {
            return unusable("answer to core.get_config_values has no listen_ports pair: \(result.excerpt)", kind: "no listen_ports pair", .settings, now, &effects)
        }
        let random = result["random_port"]?.bool == true
        core.inspected(ClientInspection(listenPorts: [pair.low, pair.high], findings: random ? [.randomPort] : []), &effects)
        guard let port = core.desired else { return }
        var differences: [String] = []
        if pair != (Int(port.value), Int(port.value)) { differences.append("listen_ports [\(pair.low), \(pair.high)]") }
        if random { differences.append("random_port true") }
        guard differences.isEmpty else {
            core.differs(differences, setting: "listen_ports [\(port), \(port)]", &effects)
            return send(.writePorts(port), &effects)
        }
        core.verified(port, changed: false, now, &effects)
    }

    private mutating func rejected(_ call: DelugeRPC.Call, code: Int, message: String, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        switch code {
        case 1:
            switch core.login.refused(call.method) {
            case .callRefused:
                unusable("deluge-web refuses \(call.method) (\"\(message)\") even with a fresh session, while the session's other calls work",
                         kind: "\(call.method) not authenticated", call.step, now, &effects)
            case .sessionEnded:
                // deluge-web restarted or the session expired: one fresh login.
                effects.append(.log(.info, "deluge-web ended the session (\(call.method): \"\(message)\"); logging in again"))
                cookie = nil
                daemonConnected = false
                startSync(&effects)
            case .sessionRefused:
                core.refuse("deluge-web accepted the password but refused the session (\(call.method): \"\(message)\")", failed: true,
                            problem: ClientProblem(.login, .credentialsRefused(status: 200, said: message)), now, &effects)
            }
        case 2 where call.isCore && !justConnected && unknownMethodChecked:
            daemonConnected = false
            unusable("deluge-web says it is connected to its daemon, yet answers \"Unknown method\" to \(call.method)",
                     kind: "\(call.method) unknown although connected", call.step, now, &effects)
        case 2 where call.isCore && !justConnected:
            unknownMethodChecked = true
            effects.append(.log(.warning, "deluge-web is not connected to its daemon: it answers \"Unknown method\" to \(call.method); connecting it"))
            daemonConnected = false
            startSync(&effects)
        case 2 where call.isCore:
            justConnected = false
            daemonConnected = false
            unusable("deluge-web answers \"Unknown method\" to \(call.method) even right after connecting to its daemon: is it Deluge 2?", call.step, now, &effects)
        default:
            unusable("deluge-web answered \(call.method) with error \(code) \"\(message)\"", kind: "\(call.method) error \(code)", call.step, now, &effects)
        }
    }

    /// An answer that is not what was asked for: failed with back-off, at `step` (if any).
    private mutating func unusable(_ message: String, kind: String? = nil, _ step: ClientProblem.Step?, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        core.fail(message, kind: kind, problem: step.map { ClientProblem($0, .unusableAnswer(message)) }, now, &effects)
    }
}

extension DelugeRPC.Call {
    /// The step of reaching Deluge this call is, if any: the login's answer says that
    /// deluge-web is there, its result that the password is right.
    var step: ClientProblem.Step? {
        switch self {
        case .login: .reach
        case .connected, .hosts, .connect: .daemon
        case .readPorts: .settings
        case .writePorts, .verifyPorts, .torrents, .reannounce: nil
        }
    }
}

extension DelugeRPC.Host {
    var isLoopback: Bool { host == "localhost" || host == "::1" || IPv4Address(host)?.isLoopback == true }
}
extension DelugeSession: CoreClientSession {}
