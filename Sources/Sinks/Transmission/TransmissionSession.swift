import Domain
import HTTP
import Reactor

/// The Transmission sink's logic, with no I/O (as `QBittorrentSession`): inputs in, effects
/// out, one request at a time, `nextDeadline` for the shell's timer.
///
/// A sync reads `peer-port` (the first read, the probe, also learns the RPC version and the
/// version), writes only when something differs, then reads the port back to verify. A 409 hands
/// over a new session id: the request is sent again once with it, never more (a second 409 in a
/// row is a failure with back-off, not a loop). The 409 also says the dialect
/// (`X-Transmission-Rpc-Version`, from Transmission 4.1 on: JSON-RPC 2.0; none: the legacy RPC),
/// kept until the next 409; a 409 that changes it (another daemon behind the URL) is answered
/// with a new probe. The first request of a session, before any 409, is legacy, which every
/// version understands. A 401 is a refused login: nothing more is sent until the settings change
/// or the pause ends, and Transmission's lock-out after 100 failed logins is never approached.
/// Transmission re-announces by itself when its port changes, so there is no re-announce call.
public struct TransmissionSession {
    /// The request in flight, by what it is for.
    public enum Request: Equatable, Sendable {
        /// `session-get` of the RPC version, the version and the settings: the first of a session.
        case probe
        case read
        case write(Port)
        case verify

        var name: String {
            switch self {
            case .probe, .read, .verify: "session-get"
            case .write: "session-set"
            }
        }

        /// The step of reaching Transmission an answer to this request is, if any.
        var step: ClientProblem.Step? {
            switch self {
            case .probe: .reach
            case .read: .settings
            case .write, .verify: nil
            }
        }
    }

    public static let clientName = "Transmission"
    var core: ClientSessionCore
    public private(set) var inFlight: Request?
    /// The session id from the last 409; sent with every request.
    public private(set) var sessionID: String?
    /// What the last 409 said the daemon speaks.
    public private(set) var dialect = TransmissionRPC.Dialect.legacy
    /// The RPC version the probe read (`rpc-version` "16", `rpc_version_semver` "6.0.1"); nil
    /// until the probe is answered.
    public private(set) var rpcVersion: String?
    private var retriedAfterConflict = false
    /// The port the last write asked for: its read-back verifies that.
    private var written: Port?
    /// The `tag` or `id` of the last request sent: its answer must carry it.
    private var id = 0

    public init(settings: ClientSettings) {
        core = ClientSessionCore(client: "Transmission", settings: settings)
    }

    public var isBusy: Bool { inFlight != nil }
    var isIdle: Bool { inFlight == nil }

    mutating func forgetSession() {
        sessionID = nil
        dialect = .legacy
        rpcVersion = nil
    }

    mutating func received(_ response: HTTPResponse, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let request = inFlight else { return }
        inFlight = nil
        handle(response, to: request, now, &effects)
    }

    mutating func failed(_ error: HTTPClientError, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let request = inFlight else { return }
        inFlight = nil
        core.requestFailed(dialect.name(request.name), error, step: request.step, now, &effects)
    }

    // MARK: The sync

    mutating func startSync(_ effects: inout [ClientSessionEffect]) {
        guard core.hasWork, !isLoginRefused else { return }
        guard inFlight == nil else {
            core.syncRequested = true
            return
        }
        guard rpcVersion != nil else { return send(.probe, &effects) }
        guard let wanted = core.desired else {
            // Connected before any port: nothing more until one comes.
            core.connectRequested = false
            return
        }
        if let away = core.takeDetour() {
            send(.write(away), &effects)
        } else if let verified = core.writeAtOnce(wanted) {
            effects.append(.log(.info, "setting Transmission's peer-port to \(wanted) (was \(verified))"))
            send(.write(wanted), &effects)
        } else {
            send(.read, &effects)
        }
    }

    private mutating func send(_ request: Request, resent: Bool = false, _ effects: inout [ClientSessionEffect]) {
        inFlight = request
        retriedAfterConflict = resent
        if case .write(let port) = request { written = port }
        core.counters.requests += 1
        id += 1
        effects.append(.send(httpRequest(for: request), retryIfStale: true))
    }

    func httpRequest(for request: Request) -> HTTPRequest {
        let body: [UInt8]
        switch request {
        case .probe: body = TransmissionRPC.probe(dialect, id: id)
        case .read: body = TransmissionRPC.read(dialect, id: id)
        case .write(let port): body = TransmissionRPC.write(dialect, port: port, id: id)
        case .verify: body = TransmissionRPC.verify(dialect, id: id)
        }
        return TransmissionRPC.request(body, settings: settings, sessionID: sessionID)
    }

    // MARK: Answers

    private mutating func handle(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        let user = "\"\(settings.username)\""
        let method = dialect.name(request.name)
        let said = response.bodyExcerpt
        func login(_ cause: ClientProblem.Cause) -> ClientProblem { ClientProblem(.login, cause) }
        let unexpected = request.step.map { ClientProblem($0, .unexpectedAnswer(status: response.status, said: said)) }
        switch response.status {
        case 200:
            break
        case 409:
            return conflict(response, request, now, &effects)
        case 401:
            return core.refuse("Transmission refused the login (401): wrong username \(user) or password", failed: true,
                               problem: login(.credentialsRefused(status: 401, said: said)), now, &effects)
        case 403 where response.text.contains("unsuccessful login attempts"):
            return core.refuse("Transmission locked its RPC after too many failed logins (403); fix the password, then restart transmission-daemon", failed: false,
                               problem: login(.addressRefused(status: 403, said: said)), now, &effects)
        case 403 where response.text.trimmingSpaces == "<h1>403: Forbidden</h1>":
            // 4.x says no more: its IP whitelist and its lock-out answer alike.
            return core.refuse("Transmission refused this address or locked its RPC after too many failed logins (403): add the address to rpc-whitelist, or fix the password and restart transmission-daemon", failed: false,
                               problem: login(.addressRefused(status: 403, said: said)), now, &effects)
        case 403:
            return core.refuse("Transmission refused this address (403 \"\(said)\"): add it to rpc-whitelist", failed: false,
                               problem: login(.addressRefused(status: 403, said: said)), now, &effects)
        case 421:
            return core.refuse("Transmission refused the Host header \(settings.url.hostHeader) (421): add it to rpc-host-whitelist or use an IP address in the URL", failed: false,
                               problem: login(.hostRefused(settings.url.hostHeader)), now, &effects)
        case 404:
            return core.fail("POST \(settings.url.target(TransmissionRPC.path)) answered 404: is \(settings.url) Transmission's RPC?", problem: unexpected, now, &effects)
        default:
            return core.fail("unexpected answer to \(method): \(response.status) \"\(said)\"",
                             kind: "\(method) answered \(response.status)", problem: unexpected, now, &effects)
        }
        // What the probe's answer says is its version; a read's, the settings.
        let step: ClientProblem.Step? = request == .probe ? .version : request.step
        let answer: TransmissionRPC.Fields
        switch TransmissionRPC.parse(response.body, dialect: dialect, id: id) {
        case .success(.succeeded(let fields)): answer = fields
        case .success(.failed(let said)):
            return unusable("Transmission answered \(method) with \(said)", kind: "\(method) unsuccessful", step, now, &effects)
        case .failure(let error):
            return unusable("answer to \(method) \(error)", kind: "answer to \(method) \(error.kind)", step, now, &effects)
        }
        switch request {
        case .probe:
            let field = dialect.versionField
            guard let version = answer.rpcVersion(dialect) else {
                return unusable("answer to \(method) has no \(dialect.name(field)): is \(settings.url) Transmission?", .version, now, &effects)
            }
            rpcVersion = version
            let name = answer.value("version")?.string?.oneLine(limit: 40) ?? "?"
            core.status.version = name
            core.counters.logins += 1
            effects.append(.log(.info, "connected to Transmission \(name) (\(dialect.describe(rpcVersion: version))) at \(settings.url)"))
            settingsRead(answer, now, &effects)
        case .read:
            settingsRead(answer, now, &effects)
        case .write:
            core.counters.applies += 1
            send(.verify, &effects)
        case .verify:
            guard let written, let port = core.desired else { return }
            let peerPort = dialect.name("peer-port")
            guard let current = answer.value("peer-port")?.integer, current == Int(written.value) else {
                core.counters.failedApplies += 1
                return core.fail("Transmission still has \(peerPort) \(answer.value("peer-port")?.excerpt ?? "(none)") after being set to \(written)",
                                 kind: "\(peerPort) not set", now, &effects)
            }
            if written == port {
                core.verified(port, changed: true, now, &effects)
            } else {
                startSync(&effects)
            }
        }
    }

    /// An answer that is not what was asked for: failed with back-off, at `step` (if any).
    private mutating func unusable(_ message: String, kind: String? = nil, _ step: ClientProblem.Step?, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        core.fail(message, kind: kind, problem: step.map { ClientProblem($0, .unusableAnswer(message)) }, now, &effects)
    }

    private mutating func settingsRead(_ answer: TransmissionRPC.Fields, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        var findings: [ClientInspection.Finding] = []
        if answer.value("peer-port-random-on-start")?.bool == true { findings.append(.randomPort) }
        if answer.value("port-forwarding-enabled")?.bool == true { findings.append(.portForwarding) }
        core.inspected(ClientInspection(listenPorts: answer.value("peer-port")?.integer.map { [$0] } ?? [], findings: findings), &effects)
        guard let port = core.desired else { return }
        core.syncRequested = false
        guard let current = answer.value("peer-port")?.integer else {
            return unusable("answer to \(dialect.name("session-get")) has no \(dialect.name("peer-port"))", .settings, now, &effects)
        }
        var differences: [String] = []
        if current != Int(port.value) { differences.append("\(dialect.name("peer-port")) \(current)") }
        for flag in ["peer-port-random-on-start", "port-forwarding-enabled"] where answer.value(flag)?.bool == true {
            differences.append("\(dialect.name(flag)) true")
        }
        guard differences.isEmpty else {
            core.differs(differences, setting: "\(dialect.name("peer-port")) \(port)", &effects)
            return send(.write(port), &effects)
        }
        core.verified(port, changed: false, now, &effects)
    }

    /// A 409: the session id to send from now on, and the dialect. The request is sent once
    /// more, in that dialect; a probe instead when the dialect changed after a probe (another
    /// daemon behind the URL: its version is learnt again).
    private mutating func conflict(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        let method = dialect.name(request.name)
        guard let fresh = response.headers[TransmissionRPC.sessionIDHeader]?.trimmingSpaces, !fresh.isEmpty else {
            return unusable("Transmission answered \(method) with 409 but no \(TransmissionRPC.sessionIDHeader)", .reach, now, &effects)
        }
        let header = response.headers[TransmissionRPC.rpcVersionHeader]
        guard let spoken = TransmissionRPC.Dialect(rpcVersionHeader: header) else {
            return unusable("Transmission answered \(method) with 409 and \(TransmissionRPC.rpcVersionHeader) \"\((header ?? "").oneLine(limit: 40))\", which is not a version",
                            kind: "409 with a malformed \(TransmissionRPC.rpcVersionHeader)", .reach, now, &effects)
        }
        guard !retriedAfterConflict else {
            return unusable("Transmission answered \(method) with 409 again right after handing out a session id; is a proxy dropping the \(TransmissionRPC.sessionIDHeader) header?", .reach, now, &effects)
        }
        effects.append(.log(.debug, sessionID == nil ? "Transmission handed out a session id" : "Transmission renewed its session id"))
        sessionID = fresh
        guard spoken != dialect else { return send(request, resent: true, &effects) }
        dialect = spoken
        guard rpcVersion != nil else { return send(request, resent: true, &effects) }
        rpcVersion = nil
        effects.append(.log(.info, "Transmission now speaks \(spoken) (\(TransmissionRPC.rpcVersionHeader) \(header.map { "\"\($0.oneLine(limit: 40))\"" } ?? "absent")): reading its version again"))
        send(.probe, resent: true, &effects)
    }
}
extension TransmissionSession: CoreClientSession {}
