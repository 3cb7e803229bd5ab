import Domain
import HTTP
import Reactor

/// The Transmission sink's logic, with no I/O (as `QBittorrentSession`): inputs in, effects
/// out, one request at a time, `nextDeadline` for the shell's timer.
///
/// A sync reads `peer-port` (the first read also learns the rpc-version, hence the names),
/// writes only when something differs, then reads the port back to verify. A 409 hands over a
/// new session id: the request is sent again once with it, never more (a second 409 in a row is
/// a failure with back-off, not a loop). A 401 is a refused login: nothing more is sent until
/// the settings change or the pause ends, and Transmission's lock-out after 100 failed logins is
/// never approached. Transmission re-announces by itself when its port changes, so there is no
/// re-announce call.
public struct TransmissionSession {
    /// The request in flight, by what it is for.
    public enum Request: Equatable, Sendable {
        /// `session-get` of the rpc-version and the settings, before the names are known.
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
    }

    public static let clientName = "Transmission"
    var core: ClientSessionCore
    public private(set) var inFlight: Request?
    /// The session id from the last 409; sent with every request.
    public private(set) var sessionID: String?
    public private(set) var rpcVersion: Int?
    private var retriedAfterConflict = false
    /// The port the last write asked for: its read-back verifies that.
    private var written: Port?
    private var tag = 0

    public init(settings: ClientSettings) {
        core = ClientSessionCore(client: "Transmission", settings: settings)
    }

    public var isBusy: Bool { inFlight != nil }
    var isIdle: Bool { inFlight == nil }

    mutating func forgetSession() {
        sessionID = nil
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
        core.requestFailed(request.name, error, now, &effects)
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
        if let verified = core.writeAtOnce(wanted) {
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
        tag += 1
        effects.append(.send(httpRequest(for: request), retryIfStale: true))
    }

    func httpRequest(for request: Request) -> HTTPRequest {
        let names = TransmissionRPC.Names(rpcVersion: rpcVersion ?? 0)
        let body: [UInt8]
        switch request {
        case .probe: body = TransmissionRPC.probe(tag: tag)
        case .read: body = TransmissionRPC.read(names, tag: tag)
        case .write(let port): body = TransmissionRPC.write(names, port: port, tag: tag)
        case .verify: body = TransmissionRPC.verify(names, tag: tag)
        }
        return TransmissionRPC.request(body, settings: settings, sessionID: sessionID)
    }

    // MARK: Answers

    private mutating func handle(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        let user = "\"\(settings.username)\""
        switch response.status {
        case 200:
            break
        case 409:
            return conflict(response, request, now, &effects)
        case 401:
            return core.refuse("Transmission refused the login (401): wrong username \(user) or password", failed: true, now, &effects)
        case 403 where response.text.contains("unsuccessful login attempts"):
            return core.refuse("Transmission locked its RPC after too many failed logins (403); fix the password, then restart transmission-daemon", failed: false, now, &effects)
        case 403:
            return core.refuse("Transmission refused this address (403 \"\(response.bodyExcerpt)\"): add it to rpc-whitelist", failed: false, now, &effects)
        case 421:
            return core.refuse("Transmission refused the Host header \(settings.url.hostHeader) (421): add it to rpc-host-whitelist or use an IP address in the URL", failed: false, now, &effects)
        case 404:
            return core.fail("POST \(settings.url.target(TransmissionRPC.path)) answered 404: is \(settings.url) Transmission's RPC?", now, &effects)
        default:
            return core.fail("unexpected answer to \(request.name): \(response.status) \"\(response.bodyExcerpt)\"",
                             kind: "\(request.name) answered \(response.status)", now, &effects)
        }
        let answer: TransmissionRPC.Answer
        switch TransmissionRPC.parse(response.body) {
        case .success(let parsed): answer = parsed
        case .failure(let error): return core.fail("answer to \(request.name) \(error)", kind: "answer to \(request.name) \(error.kind)", now, &effects)
        }
        guard answer.result == "success" else {
            return core.fail("Transmission answered \(request.name) with \"\(answer.result.oneLine(limit: 80))\"", kind: "\(request.name) unsuccessful", now, &effects)
        }
        switch request {
        case .probe:
            guard let version = answer.value("rpc-version")?.integer else {
                return core.fail("answer to session-get has no rpc-version: is \(settings.url) Transmission?", now, &effects)
            }
            rpcVersion = version
            let name = answer.value("version")?.string?.oneLine(limit: 40) ?? "?"
            core.status.version = name
            core.counters.logins += 1
            effects.append(.log(.info, "connected to Transmission \(name) (rpc-version \(version)) at \(settings.url)"))
            settingsRead(answer, now, &effects)
        case .read:
            settingsRead(answer, now, &effects)
        case .write:
            core.counters.applies += 1
            send(.verify, &effects)
        case .verify:
            guard let written, let port = core.desired else { return }
            guard let current = answer.value("peer-port")?.integer, current == Int(written.value) else {
                core.counters.failedApplies += 1
                return core.fail("Transmission still has peer-port \(answer.value("peer-port")?.excerpt ?? "(none)") after being set to \(written)",
                                 kind: "peer-port not set", now, &effects)
            }
            if written == port {
                core.verified(port, changed: true, now, &effects)
            } else {
                startSync(&effects)
            }
        }
    }

    private mutating func settingsRead(_ answer: TransmissionRPC.Answer, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let port = core.desired else { return }
        core.syncRequested = false
        guard let current = answer.value("peer-port")?.integer else {
            return core.fail("answer to session-get has no peer-port", now, &effects)
        }
        var differences: [String] = []
        if current != Int(port.value) { differences.append("peer-port \(current)") }
        if answer.value("peer-port-random-on-start")?.bool == true { differences.append("peer-port-random-on-start true") }
        if answer.value("port-forwarding-enabled")?.bool == true { differences.append("port-forwarding-enabled true") }
        guard differences.isEmpty else {
            core.differs(differences, setting: "peer-port \(port)", &effects)
            return send(.write(port), &effects)
        }
        core.verified(port, changed: false, now, &effects)
    }

    private mutating func conflict(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [ClientSessionEffect]) {
        guard let fresh = response.headers[TransmissionRPC.sessionIDHeader]?.trimmingSpaces, !fresh.isEmpty else {
            return core.fail("Transmission answered \(request.name) with 409 but no \(TransmissionRPC.sessionIDHeader)", now, &effects)
        }
        guard !retriedAfterConflict else {
            return core.fail("Transmission answered \(request.name) with 409 again right after handing out a session id; is a proxy dropping the \(TransmissionRPC.sessionIDHeader) header?", now, &effects)
        }
        effects.append(.log(.debug, sessionID == nil ? "Transmission handed out a session id" : "Transmission renewed its session id"))
        sessionID = fresh
        send(request, resent: true, &effects)
    }
}
extension TransmissionSession: CoreClientSession {}
