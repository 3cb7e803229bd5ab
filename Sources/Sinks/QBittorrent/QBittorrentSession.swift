import HTTP
import Reactor

/// The qBittorrent sink's logic, with no I/O: inputs in (a desired port, an HTTP answer, a
/// deadline), effects out (one HTTP request at a time, log lines, status). The shell
/// (`QBittorrentSink`) carries the effects out and arms a timer to `nextDeadline`.
///
/// A sync reads the preferences and writes only what differs, then reads them back to verify.
/// It logs in once per session, re-logs in once when the session expires, and never retries a
/// refused login until the settings change or `loginRetryDelay` passes: qBittorrent bans an IP
/// after 5 failed logins, and this way it sees at most one an hour.
public struct QBittorrentSession {
    public enum Input {
        case desiredPort(Port)
        /// Make qBittorrent re-open its listening sockets.
        case reassert
        /// The network interfaces changed (the tunnel came back or was recreated): look at the
        /// listener when it can be seen (qBittorrent on this machine), else reassert blindly.
        case interfacesChanged
        case settingsChanged(QBittorrentSettings)
        case responseReceived(HTTPResponse)
        case requestFailed(HTTPClientError)
        case deadlineReached
        /// The answer to `.checkListener`.
        case listenerChecked(ListeningSockets.Check)
    }

    public enum Effect: Equatable {
        /// Send this request; its answer comes back as `.responseReceived` or `.requestFailed`.
        /// `retryIfStale`: safe to resend on a fresh connection if the kept-alive one was dead.
        case send(HTTPRequest, retryIfStale: Bool)
        /// Look in the socket table whether something listens on the port, on an interface
        /// that exists; answer with `.listenerChecked`.
        case checkListener(Port)
        case log(LogLevel, String)
        case statusChanged(QBittorrentStatus)
    }

    /// The request in flight, by what it is for.
    public enum Request: Equatable, Sendable {
        case login
        case version
        case interfaces
        case readPreferences(verify: Bool)
        /// `away`: the first half of a reassert (a neighbouring port), then the real one.
        case writePreferences(away: Bool, fields: [String: JSONValue])

        var method: String {
            switch self {
            case .login, .writePreferences: "POST"
            case .version, .interfaces, .readPreferences: "GET"
            }
        }

        var path: String {
            switch self {
            case .login: "/api/v2/auth/login"
            case .version: "/api/v2/app/version"
            case .interfaces: "/api/v2/app/networkInterfaceList"
            case .readPreferences: "/api/v2/app/preferences"
            case .writePreferences: "/api/v2/app/setPreferences"
            }
        }
    }

    private enum DeadlinePurpose {
        case retry
        case driftCheck
        case loginRefusalEnds
    }

    public private(set) var settings: QBittorrentSettings
    public private(set) var status = QBittorrentStatus()
    public private(set) var counters = QBittorrentCounters()
    public private(set) var desired: Port?
    public private(set) var inFlight: Request?
    public private(set) var nextDeadline: Instant?
    private var deadlinePurpose = DeadlinePurpose.retry

    /// `name=value` of the session cookie (tests log the session out with it).
    private(set) var cookie: String?
    private var loggedIn = false
    /// An authenticated call succeeded since the last login: a later 403 means "expired".
    private var sessionConfirmed = false
    private var interfacesChecked = false
    private var reassertPending = false
    /// Why the last reassert for a listener was made (nothing listened, or which deaf
    /// socket): one reassert per cause, not repeated until the listener is fine again.
    private var reassertedFor: String?
    /// Look at the listener when the next sync finds the port right: at start, after an
    /// interface change, at every drift check.
    private var checkListenerAfterSync: Bool
    private var syncRequested = false
    /// The port the last write asked for: a read-back verifies only that.
    private var writtenPort: Port?
    private var writeWithoutReading = false
    private var refusedUntil: Instant?
    private var consecutiveFailures = 0
    private var lastProblem: String?

    public init(settings: QBittorrentSettings) {
        self.settings = settings
        checkListenerAfterSync = settings.checkListener
    }

    public var isLoginRefused: Bool { refusedUntil != nil }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        let before = status
        switch input {
        case .desiredPort(let port):
            if port == desired && status.verifiedPort == port && status.health == .verified && inFlight == nil && !reassertPending {
                // The same port again (a source that had none names it anew): qBittorrent may
                // have been set elsewhere meanwhile (to 0, by a VPN's "down" hook); one read
                // tells, and writes only what differs.
                effects.append(.log(.debug, "port \(port) again: checking that qBittorrent still has it"))
                startSync(now, &effects)
                break
            }
            desired = port
            // Verified on the old port with nothing pending: the new one can be written at once.
            writeWithoutReading = status.health == .verified && status.verifiedPort != nil && inFlight == nil
            if refusedUntil != nil {
                effects.append(.log(.warning, "port \(port) noted, but not applied: the qBittorrent login is refused (see above)"))
                break
            }
            status.health = .applying
            startSync(now, &effects)
        case .reassert:
            reassertPending = true
            interfacesChecked = false
            startSync(now, &effects)
        case .interfacesChanged:
            interfacesChecked = false
            if settings.checkListener {
                checkListenerAfterSync = true
            } else {
                effects.append(.log(.info, "the tunnel changed; qBittorrent is not on this machine, so its sockets cannot be seen: reasserting its port"))
                reassertPending = true
            }
            startSync(now, &effects)
        case .settingsChanged(let fresh):
            let credentialsChanged = fresh.authentication != settings.authentication || fresh.url != settings.url
            settings = fresh
            interfacesChecked = false
            consecutiveFailures = 0
            lastProblem = nil
            if credentialsChanged {
                cookie = nil
                loggedIn = false
                sessionConfirmed = false
                status.version = nil
                if refusedUntil != nil { effects.append(.log(.info, "settings changed: trying to log in again")) }
                refusedUntil = nil
            }
            if refusedUntil == nil { startSync(now, &effects) }
        case .responseReceived(let response):
            guard let request = inFlight else { break }
            inFlight = nil
            if request == .login {
                handleLogin(response, now, &effects)
            } else {
                handle(response, to: request, now, &effects)
            }
        case .requestFailed(let error):
            guard let request = inFlight else { break }
            inFlight = nil
            if case .invalidRequest = error, cookie != nil {
                // The session cookie cannot go on the wire (a broken server or proxy sent it):
                // the retry logs in afresh instead of failing the same way forever.
                cookie = nil
                loggedIn = false
            }
            if error.isUnreachable {
                fail("qBittorrent at \(settings.url) is unreachable: \(error)", unreachable: true, now, &effects)
            } else {
                fail("\(request.method) \(request.path): \(error)", now, &effects)
            }
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now else { break }
            nextDeadline = nil
            switch deadlinePurpose {
            case .retry:
                break
            case .driftCheck:
                checkListenerAfterSync = settings.checkListener
            case .loginRefusalEnds:
                refusedUntil = nil
                effects.append(.log(.info, "trying to log in to qBittorrent again after the pause"))
            }
            startSync(now, &effects)
        case .listenerChecked(let check):
            guard let port = desired else { break }
            listenerChecked(check, port: port, now, &effects)
        }
        if syncRequested && inFlight == nil && refusedUntil == nil {
            syncRequested = false
            startSync(now, &effects)
        }
        if status != before { effects.append(.statusChanged(status)) }
        return effects
    }

    // MARK: The sync

    private mutating func startSync(_ now: Instant, _ effects: inout [Effect]) {
        guard let wanted = desired, refusedUntil == nil else { return }
        guard inFlight == nil else {
            syncRequested = true
            return
        }
        if case .password = settings.authentication, !loggedIn {
            send(.login, &effects)
        } else if status.version == nil {
            send(.version, &effects)
        } else if settings.interface != nil && !interfacesChecked {
            send(.interfaces, &effects)
        } else if writeWithoutReading, !reassertPending, let verified = status.verifiedPort, verified != desired {
            // qBittorrent was verified on the old port, so the new one needs a write: the read
            // before it is skipped (the read-back still verifies). This is the latency path.
            writeWithoutReading = false
            effects.append(.log(.info, "setting listen_port \(wanted) (was \(verified))"))
            send(.writePreferences(away: false, fields: wantedFields()), &effects)
        } else {
            writeWithoutReading = false
            send(.readPreferences(verify: false), &effects)
        }
    }

    private mutating func send(_ request: Request, _ effects: inout [Effect]) {
        inFlight = request
        if case .writePreferences(false, _) = request { writtenPort = desired }
        counters.requests += 1
        effects.append(.send(httpRequest(for: request), retryIfStale: request != .login))
    }

    func httpRequest(for request: Request) -> HTTPRequest {
        var headers: HTTPHeaders = ["Host": settings.url.hostHeader, "User-Agent": "portsync/0.1"]
        switch settings.authentication {
        case .apiKey(let key): headers.add("Authorization", "Bearer \(key.value)")
        case .none, .password: break
        }
        if let cookie, request != .login { headers.add("Cookie", cookie) }
        let target = settings.url.target(request.path)
        switch request {
        case .login:
            guard case .password(let username, let password) = settings.authentication else {
                preconditionFailure("login without a password")
            }
            return .form(target, fields: [("username", username), ("password", password.value)], headers: headers)
        case .writePreferences(_, let fields):
            return .form(target, fields: [("json", JSONValue.object(fields).serialized)], headers: headers)
        case .version, .interfaces, .readPreferences:
            return HTTPRequest(method: "GET", target: target, headers: headers)
        }
    }

    // MARK: Answers

    private mutating func handleLogin(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        let body = response.text.trimmingSpaces
        let user: String
        if case .password(let username, _) = settings.authentication { user = username } else { user = "" }
        // 4.x-5.1: 200 "Ok." or "Fails."; 5.2+: 204 or 401. The cookie's name differs too (SID,
        // QBT_SID_<port>): it is taken as sent. Success is a 2xx that is not "Fails."; the first
        // authenticated call then confirms it.
        let succeeded = response.status == 204 || (response.status == 200 && body != "Fails.")
        switch response.status {
        case _ where succeeded:
            counters.logins += 1
            loggedIn = true
            sessionConfirmed = false
            if let first = response.cookies.first { cookie = "\(first.name)=\(first.value)" }
            effects.append(.log(.info, "logged in to qBittorrent as \"\(user)\""))
            startSync(now, &effects)
        case 200:
            refuseLogin("login failed: qBittorrent rejected the username \"\(user)\" or its password (200 Fails.)", failed: true, now, &effects)
        case 401:
            refuseLogin("login failed (401): wrong username \"\(user)\" or password, or qBittorrent rejected the Host header \(settings.url.hostHeader) (check [qbittorrent].url)", failed: true, now, &effects)
        case 403 where body.lowercased().contains("banned"):
            refuseLogin("qBittorrent has banned this IP address after too many failed logins: fix the password, then wait for the ban to end (WebUI ban duration, 1 h by default) or restart qBittorrent", failed: false, now, &effects)
        case 403:
            refuseLogin("login refused (403 \"\(response.bodyExcerpt)\")", failed: false, now, &effects)
        default:
            fail("unexpected answer to POST /api/v2/auth/login: \(response.status) \"\(response.bodyExcerpt)\"", now, &effects)
        }
    }

    private mutating func handle(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [Effect]) {
        switch response.status {
        case 200..<300:
            break
        case 403:
            return forbidden(response, request, now, &effects)
        case 401:
            return refuseLogin("\(request.method) \(request.path) answered 401: qBittorrent rejected the Host header \(settings.url.hostHeader) or the credentials; [qbittorrent].url must be the WebUI's own address and port", failed: false, now, &effects)
        case 404:
            return fail("\(request.method) \(request.path) answered 404: is \(settings.url) qBittorrent's WebUI (4.1 or newer)?", now, &effects)
        default:
            return fail("unexpected answer to \(request.method) \(request.path): \(response.status) \"\(response.bodyExcerpt)\"", now, &effects)
        }
        sessionConfirmed = true
        switch request {
        case .login:
            preconditionFailure("login answers are handled by handleLogin")
        case .version:
            let version = response.text.trimmingSpaces
            guard !version.isEmpty, version.count < 40, !version.utf8.contains(UInt8(ascii: "<")) else {
                return fail("answer to GET /api/v2/app/version is not a version: \"\(response.bodyExcerpt)\"", now, &effects)
            }
            status.version = version.oneLine(limit: 40)
            effects.append(.log(.info, "connected to qBittorrent \(version.oneLine(limit: 40)) at \(settings.url)"))
            startSync(now, &effects)
        case .interfaces:
            guard let list = (try? JSONValue.parse(response.body))?.array else {
                return fail("answer to GET /api/v2/app/networkInterfaceList is not a JSON array: \"\(response.bodyExcerpt)\"", now, &effects)
            }
            interfacesChecked = true
            let names = list.compactMap { $0["value"]?.string }
            if let interface = settings.interface, !names.contains(interface) {
                effects.append(.log(.warning, "qBittorrent does not list interface \(interface) (it lists only interfaces that have an address: \(names.joined(separator: ", "))); binding anyway, it takes effect when the interface comes up"))
            }
            startSync(now, &effects)
        case .readPreferences(let verify):
            guard let preferences = try? JSONValue.parse(response.body), case .object = preferences else {
                return fail("answer to GET /api/v2/app/preferences is not a JSON object: \"\(response.bodyExcerpt)\"", now, &effects)
            }
            guard let current = preferences["listen_port"]?.integer else {
                return fail("answer to GET /api/v2/app/preferences has no listen_port", now, &effects)
            }
            preferencesRead(preferences, listenPort: current, verify: verify, now, &effects)
        case .writePreferences(let away, _):
            if away {
                send(.writePreferences(away: false, fields: wantedFields()), &effects)
            } else {
                counters.applies += 1
                send(.readPreferences(verify: true), &effects)
            }
        }
    }

    private mutating func preferencesRead(_ preferences: JSONValue, listenPort: Int, verify: Bool,
                                          _ now: Instant, _ effects: inout [Effect]) {
        guard let port = desired else { return }
        // These preferences are current, so they answer any sync asked for meanwhile; a
        // read-back made for a port that is no longer wanted is an ordinary check.
        syncRequested = false
        let verify = verify && writtenPort == port
        var differences: [String] = []
        if listenPort != Int(port.value) { differences.append("listen_port \(listenPort)") }
        if preferences["random_port"]?.bool == true { differences.append("random_port true") }
        if settings.disableUPnP && preferences["upnp"]?.bool == true { differences.append("upnp true") }
        if let interface = settings.interface, preferences["current_network_interface"]?.string != interface {
            differences.append("interface \"\(preferences["current_network_interface"]?.string ?? "")\"")
        }
        if verify {
            guard differences.isEmpty else {
                counters.failedApplies += 1
                return fail("qBittorrent still has \(differences.joined(separator: ", ")) after being set to listen_port \(port)", now, &effects)
            }
            return verified(port, changed: true, now, &effects)
        }
        if reassertPending {
            reassertPending = false
            counters.reasserts += 1
            let away = port.value == 65535 ? port.value - 1 : port.value + 1
            effects.append(.log(.info, "reasserting port \(port): moving qBittorrent to \(away) and back so it re-opens its sockets"))
            return send(.writePreferences(away: true, fields: ["listen_port": .number(Double(away)), "random_port": .bool(false)]), &effects)
        }
        guard differences.isEmpty else {
            let drifted = status.verifiedPort == port && status.health == .verified
            effects.append(drifted
                ? .log(.warning, "qBittorrent's settings changed behind portsync's back (\(differences.joined(separator: ", "))); restoring listen_port \(port)")
                : .log(.info, "qBittorrent has \(differences.joined(separator: ", ")); setting listen_port \(port)"))
            return send(.writePreferences(away: false, fields: wantedFields()), &effects)
        }
        if checkListenerAfterSync {
            // The drift check ends with a look at the socket table; its answer completes it.
            checkListenerAfterSync = false
            effects.append(.checkListener(port))
            return
        }
        verified(port, changed: false, now, &effects)
    }

    /// One reassert per cause (nothing listens; a socket bound to a vanished interface), then
    /// a clear failure until the listener is fine again.
    private mutating func listenerChecked(_ check: ListeningSockets.Check, port: Port, _ now: Instant, _ effects: inout [Effect]) {
        let cause: String
        switch check {
        case .listening, .unknown:
            if case .unknown(let why) = check { effects.append(.log(.debug, "cannot read the socket table (\(why)); taking the listener as fine")) }
            reassertedFor = nil
            return verified(port, changed: false, now, &effects)
        case .absent:
            cause = "qBittorrent has listen_port \(port) but nothing listens on it"
        case .stale(let listener):
            cause = "qBittorrent's socket on port \(port) (\(listener.address)) is bound to interface index \(listener.interfaceIndex), which no longer exists (the tunnel was recreated): it refuses every connection"
        }
        if reassertedFor == cause {
            problem("\(cause), even after a reassert; is qBittorrent bound to an interface that is down?",
                    health: .failing("not listening on port \(port)"), &effects)
            schedule(now + settings.checkInterval, .driftCheck)
        } else {
            effects.append(.log(.warning, "\(cause); making it re-open its sockets"))
            reassertedFor = cause
            reassertPending = true
            startSync(now, &effects)
        }
    }

    /// Everything the sink owns in qBittorrent's preferences, as it wants it.
    private func wantedFields() -> [String: JSONValue] {
        var fields: [String: JSONValue] = ["random_port": .bool(false)]
        if let desired { fields["listen_port"] = .number(Double(desired.value)) }
        if settings.disableUPnP { fields["upnp"] = .bool(false) }
        if let interface = settings.interface { fields["current_network_interface"] = .string(interface) }
        return fields
    }

    private mutating func verified(_ port: Port, changed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        if changed {
            effects.append(.log(.notice, "listen_port \(port) applied and verified"))
        } else if status.verifiedPort != port || status.health != .verified {
            effects.append(.log(.info, "qBittorrent already listens on port \(port)"))
        }
        if lastProblem != nil { effects.append(.log(.info, "qBittorrent is fine again")) }
        consecutiveFailures = 0
        lastProblem = nil
        status.verifiedPort = port
        status.health = .verified
        schedule(now + settings.checkInterval, .driftCheck)
    }

    // MARK: Failures

    private mutating func forbidden(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [Effect]) {
        if response.text.lowercased().contains("banned") {
            return refuseLogin("qBittorrent has banned this IP address after too many failed logins", failed: false, now, &effects)
        }
        switch settings.authentication {
        case .password:
            if sessionConfirmed {
                // The session expired or qBittorrent restarted: log in again, once.
                effects.append(.log(.info, "qBittorrent session expired (403 on \(request.path)); logging in again"))
                cookie = nil
                loggedIn = false
                sessionConfirmed = false
                send(.login, &effects)
            } else {
                refuseLogin("qBittorrent accepted the login but refused the session (403 on \(request.path))", failed: true, now, &effects)
            }
        case .none:
            refuseLogin("qBittorrent wants a login (403 on \(request.path)) but no password is configured: set [qbittorrent].password_file, or enable \"Bypass authentication for clients on localhost\" in qBittorrent", failed: false, now, &effects)
        case .apiKey:
            refuseLogin("qBittorrent refused the API key (403 on \(request.path)); API keys need qBittorrent 5.2 or newer", failed: false, now, &effects)
        }
    }

    /// Stops all requests until the settings change or `loginRetryDelay` passes.
    private mutating func refuseLogin(_ message: String, failed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        if failed { counters.failedLogins += 1 }
        cookie = nil
        loggedIn = false
        sessionConfirmed = false
        syncRequested = false
        reassertPending = false
        let until = now + settings.loginRetryDelay
        refusedUntil = until
        lastProblem = message
        status.health = .loginRefused(message)
        effects.append(.log(.error, "\(message); no more logins until the configuration is reloaded or \(settings.loginRetryDelay.minutesText) pass"))
        schedule(until, .loginRefusalEnds)
    }

    /// A transient failure: retried with capped exponential back-off. Logged once per change
    /// of problem, not once per retry.
    private mutating func fail(_ message: String, unreachable: Bool = false, _ now: Instant, _ effects: inout [Effect]) {
        consecutiveFailures += 1
        problem(message, health: unreachable ? .unreachable(message) : .failing(message), &effects)
        let exponent = min(consecutiveFailures - 1, 20)
        let delay = min(settings.retryInitial * (1 << exponent), settings.retryMax)
        schedule(now + delay, .retry)
    }

    private mutating func problem(_ message: String, health: QBittorrentStatus.Health, _ effects: inout [Effect]) {
        if message != lastProblem {
            effects.append(.log(.error, message))
        } else {
            effects.append(.log(.debug, "still: \(message)"))
        }
        lastProblem = message
        status.health = health
    }

    private mutating func schedule(_ deadline: Instant, _ purpose: DeadlinePurpose) {
        nextDeadline = deadline
        deadlinePurpose = purpose
    }
}

extension Duration {
    /// "65 min", "30 s": for messages about long pauses.
    var minutesText: String {
        let seconds = components.seconds
        return seconds >= 120 ? "\(seconds / 60) min" : "\(seconds) s"
    }
}
