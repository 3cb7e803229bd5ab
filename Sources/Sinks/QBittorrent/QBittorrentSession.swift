import Domain
import HTTP
import Reactor

/// The qBittorrent sink's logic, with no I/O: inputs in (a desired port, an HTTP answer, a
/// deadline), effects out (one HTTP request at a time, log lines, status). The shell
/// (`QBittorrentSink`) carries the effects out and arms a timer to `nextDeadline`.
///
/// A sync reads the preferences and writes only what differs, then reads them back to verify.
/// It logs in once per session, re-logs in once when the session expires (once per call that
/// was refused: a call refused again right after a fresh login is not the session but that
/// call, a failure with back-off), and never retries a
/// refused login until the settings change or `loginRetryDelay` passes: qBittorrent bans an IP
/// after 5 failed logins, and this way it sees at most one an hour. After a verified change of
/// port it tells the trackers (`torrents/reannounce`) once qBittorrent listens on it.
public struct QBittorrentSession {
    public private(set) var settings: QBittorrentSettings
    public internal(set) var status = SinkStatus()
    public internal(set) var counters = SinkCounters()
    public private(set) var desired: Port?
    public private(set) var inFlight: Request?
    /// The retry, drift check or end of a login refusal, by `deadlinePurpose`.
    var scheduled: Instant?
    var deadlinePurpose = DeadlinePurpose.retry
    var reannounce: ReannounceAllowance
    /// Tell the trackers as soon as qBittorrent is verified on the port with nothing in flight.
    var reannouncePending = false
    var listenerGate: ListenerGate
    /// What the gate knew of the listener when the re-announce went out.
    var announcedListener: ListenerGate.Listener?
    /// When to read what the trackers heard of a port; then due, read when nothing is in flight.
    var trackerCheck: (at: Instant, port: Port)?
    var trackerCheckDue: Port?
    /// What one torrent's trackers said after the last re-announce.
    public internal(set) var trackerReport: QBittorrentAPI.TrackerReport?
    /// The last re-announce qBittorrent accepted: the port, and what was known of its listener.
    var announced: (port: Port, listener: ListenerGate.Listener?)?
    /// The write in progress moves qBittorrent to another port (not a reassert, not only UPnP).
    var portMoves = false

    var login = Login.loggedOut
    private var interfacesChecked = false
    var reassertPending = false
    /// Why the last reassert for a listener was made (nothing listened, or which deaf
    /// socket): one reassert per cause, not repeated until the listener is fine again.
    var reassertedFor: String?
    /// The `announce_port` warning last given, so it is given once per value and port.
    var saidAnnounceProblem: String?
    /// Look at the listener when the next sync finds the port right: at start, after an
    /// interface change, at every drift check.
    private var checkListenerAfterSync: Bool
    var syncRequested = false
    /// Reach qBittorrent before any port is wanted: log in, read the version.
    private var connectRequested = false
    /// The port the last write asked for: a read-back verifies only that.
    private var writtenPort: Port?
    private var writeWithoutReading = false
    var consecutiveFailures = 0
    /// The kind of the last problem (see `fail`), or the message of a refusal.
    var lastProblem: String?
    /// The calls refused (403) on a session that worked, for each of which one fresh login was
    /// made; until a sync verifies, such a call refused again is not the session.
    var refusedDespiteLogin: Set<QBittorrentAPI.Endpoint> = []
    /// The settings' secrets in every form a peer may echo them.
    private var redaction: Redaction

    public init(settings: QBittorrentSettings) {
        self.settings = settings
        checkListenerAfterSync = settings.checkListener
        redaction = Self.redaction(settings)
        reannounce = ReannounceAllowance(enabled: settings.reannounce, interval: settings.reannounceInterval)
        listenerGate = ListenerGate(canSeeListener: settings.checkListener)
    }

    public var nextDeadline: Instant? { [scheduled, reannounce.dueAt, listenerGate.wakeAt, trackerCheck?.at].compactMap { $0 }.min() }

    public var isLoginRefused: Bool {
        if case .refused = login { true } else { false }
    }

    /// `name=value` of the session cookie (tests log the session out with it).
    var cookie: String? {
        if case .loggedIn(let cookie, _) = login { cookie } else { nil }
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        let before = status
        switch input {
        case .connect:
            connectRequested = true
            startSync(now, &effects)
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
            if isLoginRefused {
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
            redaction = Self.redaction(fresh)
            refusedDespiteLogin = []
            reannounce.enabled = fresh.reannounce
            reannounce.interval = fresh.reannounceInterval
            interfacesChecked = false
            consecutiveFailures = 0
            lastProblem = nil
            if credentialsChanged {
                status.version = nil
                if isLoginRefused { effects.append(.log(.info, "settings changed: trying to log in again")) }
                login = .loggedOut
            }
            if !isLoginRefused { startSync(now, &effects) }
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
                login = .loggedOut
            }
            if error.isUnreachable {
                fail("qBittorrent at \(settings.url) is unreachable: \(error)", unreachable: true, now, &effects)
            } else {
                fail("\(request.method) \(request.path): \(error)", now, &effects)
            }
        case .deadlineReached:
            announcementDeadlines(now, &effects)
            guard let deadline = scheduled, deadline <= now else { break }
            scheduled = nil
            switch deadlinePurpose {
            case .retry:
                break
            case .driftCheck:
                checkListenerAfterSync = settings.checkListener
            case .loginRefusalEnds:
                login = .loggedOut
                effects.append(.log(.info, "trying to log in to qBittorrent again after the pause"))
            }
            startSync(now, &effects)
        case .listenerChecked(let check):
            guard let port = desired else { break }
            listenerChecked(check, port: port, now, &effects)
        case .listenerCheckedBeforeAnnouncing(let check):
            take(listenerGate.listenerChecked(check, now), now, &effects)
        }
        if syncRequested && inFlight == nil && !isLoginRefused {
            syncRequested = false
            startSync(now, &effects)
        }
        return finish(effects, since: before)
    }

    /// Every secret taken out of what the session says (its log lines and its status quote
    /// qBittorrent), and a status that differs from `before` announced.
    private mutating func finish(_ effects: [Effect], since before: SinkStatus) -> [Effect] {
        status = status.redacted(by: redaction)
        var effects = effects.map { effect in
            guard case .log(let level, let message) = effect else { return effect }
            return .log(level, redaction(message))
        }
        if status != before { effects.append(.statusChanged(status)) }
        return effects
    }

    private static func redaction(_ settings: QBittorrentSettings) -> Redaction {
        switch settings.authentication {
        case .password(_, let password): Redaction([password])
        case .apiKey(let key): Redaction([key])
        case .none: .none
        }
    }

    // MARK: The sync

    mutating func startSync(_ now: Instant, _ effects: inout [Effect]) {
        guard !isLoginRefused, desired != nil || connectRequested else { return }
        guard inFlight == nil else {
            syncRequested = true
            return
        }
        if case .password = settings.authentication, case .loggedOut = login {
            send(.login, &effects)
        } else if status.version == nil {
            send(.version, &effects)
        } else if let wanted = desired {
            sync(wanted, &effects)
        } else {
            // Connected before any port: nothing more until one comes.
            connectRequested = false
        }
    }

    /// The rest of a sync, logged in and with the version known.
    private mutating func sync(_ wanted: Port, _ effects: inout [Effect]) {
        if settings.interface != nil && !interfacesChecked {
            send(.interfaces, &effects)
        } else if reannouncePending && status.health == .verified && status.verifiedPort == wanted {
            send(.reannounce, &effects)
        } else if let port = trackerCheckDue, status.health == .verified && status.verifiedPort == port && !writeWithoutReading {
            trackerCheckDue = nil
            send(.torrentSample, &effects)
        } else if writeWithoutReading, !reassertPending, let verified = status.verifiedPort, verified != desired {
            // qBittorrent was verified on the old port, so the new one needs a write: the read
            // before it is skipped (the read-back still verifies). This is the latency path.
            writeWithoutReading = false
            portMoves = true
            effects.append(.log(.info, "setting listen_port \(wanted) (was \(verified))"))
            send(.writePreferences(away: false, fields: wantedFields()), &effects)
        } else {
            writeWithoutReading = false
            send(.readPreferences(verify: false), &effects)
        }
    }

    mutating func send(_ request: Request, _ effects: inout [Effect]) {
        inFlight = request
        if case .writePreferences(false, _) = request { writtenPort = desired }
        counters.requests += 1
        effects.append(.send(httpRequest(for: request), retryIfStale: request != .login))
    }

    func httpRequest(for request: Request) -> HTTPRequest {
        let api = QBittorrentAPI(settings: settings)
        switch request {
        case .login:
            guard let login = api.login() else { preconditionFailure("login without a password") }
            return login
        case .writePreferences(_, let fields):
            return api.setPreferences(fields, cookie: cookie)
        case .version, .interfaces, .readPreferences:
            return api.request(request.endpoint, cookie: cookie)
        case .reannounce:
            return api.request(.reannounce, cookie: cookie, form: [("hashes", "all")])
        case .torrentSample:
            return api.request(.torrents, cookie: cookie, query: "limit=1")
        case .trackers(let hash, _):
            return api.request(.trackers, cookie: cookie, query: "hash=\(hash)")
        }
    }

    // MARK: Answers

    /// Another web application answered, not qBittorrent: said as such, not as a wrong password.
    private func foreignServer(_ response: HTTPResponse) -> String? {
        ForeignServer.identify(response, expected: "qBittorrent").map {
            "\(settings.url) answered as \($0), not qBittorrent (\(response.status)): [qbittorrent].url must be qBittorrent's WebUI"
        }
    }

    private mutating func handleLogin(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        let user: String
        if case .password(let username, _) = settings.authentication { user = username } else { user = "" }
        if let other = foreignServer(response) { return fail(other, kind: "another application", now, &effects) }
        switch QBittorrentAPI.loginOutcome(response) {
        case .loggedIn(let cookie):
            counters.logins += 1
            login = .loggedIn(cookie: cookie, confirmed: false)
            effects.append(.log(.info, "logged in to qBittorrent as \"\(user)\""))
            startSync(now, &effects)
        case .rejected(status: 200):
            refuseLogin("login failed: qBittorrent rejected the username \"\(user)\" or its password (200 Fails.)", failed: true, now, &effects)
        case .rejected:
            refuseLogin("login failed (401): wrong username \"\(user)\" or password, or qBittorrent rejected the Host header \(settings.url.hostHeader) (check [qbittorrent].url)", failed: true, now, &effects)
        case .banned:
            refuseLogin("qBittorrent has banned this IP address after too many failed logins: fix the password, then wait for the ban to end (WebUI ban duration, 1 h by default) or restart qBittorrent", failed: false, now, &effects)
        case .refused:
            refuseLogin("login refused (403 \"\(response.bodyExcerpt)\")", failed: false, now, &effects)
        case .unexpected:
            fail("unexpected answer to POST /api/v2/auth/login: \(response.status) \"\(response.bodyExcerpt)\"", kind: "login answered \(response.status)", now, &effects)
        }
    }

    private mutating func handle(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [Effect]) {
        // Best effort, whatever the answer: never taken for the session's state.
        if request == .reannounce { return reannounceAnswered(response, now, &effects) }
        if request.isTrackerRead { return trackerAnswer(response, to: request, now, &effects) }
        if !(200..<300).contains(response.status), let other = foreignServer(response) { return fail(other, kind: "another application", now, &effects) }
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
            return fail("unexpected answer to \(request.method) \(request.path): \(response.status) \"\(response.bodyExcerpt)\"",
                        kind: "\(request.path) answered \(response.status)", now, &effects)
        }
        if case .loggedIn(let cookie, false) = login { login = .loggedIn(cookie: cookie, confirmed: true) }
        switch request {
        case .login, .reannounce, .torrentSample, .trackers:
            preconditionFailure("login, re-announce and tracker answers are handled apart")
        case .version:
            guard let version = QBittorrentAPI.version(response) else {
                return fail("answer to GET /api/v2/app/version is not a version: \"\(response.bodyExcerpt)\"", kind: "not a version", now, &effects)
            }
            status.version = version
            effects.append(.log(.info, "connected to qBittorrent \(version) at \(settings.url)"))
            startSync(now, &effects)
        case .interfaces:
            guard let names = QBittorrentAPI.interfaceNames(response) else {
                return fail("answer to GET /api/v2/app/networkInterfaceList is not a JSON array: \"\(response.bodyExcerpt)\"", kind: "interfaces not a list", now, &effects)
            }
            interfacesChecked = true
            if let interface = settings.interface, !names.contains(interface) {
                effects.append(.log(.warning, "qBittorrent does not list interface \(interface) (it lists only interfaces that have an address: \(names.joined(separator: ", "))); binding anyway, it takes effect when the interface comes up"))
            }
            startSync(now, &effects)
        case .readPreferences(let verify):
            switch QBittorrentAPI.preferences(response) {
            case .success(let preferences): preferencesRead(preferences, verify: verify, now, &effects)
            case .failure(let error): fail("\(error)", kind: error.kind, now, &effects)
            }
        case .writePreferences(let away, _):
            if away {
                send(.writePreferences(away: false, fields: wantedFields()), &effects)
            } else {
                counters.applies += 1
                send(.readPreferences(verify: true), &effects)
            }
        }
    }

    private mutating func preferencesRead(_ preferences: QBittorrentAPI.Preferences, verify: Bool, _ now: Instant, _ effects: inout [Effect]) {
        guard let port = desired else { return }
        // These preferences are current, so they answer any sync asked for meanwhile; a
        // read-back made for a port that is no longer wanted is an ordinary check.
        syncRequested = false
        let verify = verify && writtenPort == port
        let differences = preferences.differences(from: settings, port: port)
        let announceProblem = preferences.announceProblem(port: port)
        if announceProblem != saidAnnounceProblem {
            if let announceProblem { effects.append(.log(.warning, announceProblem)) }
            saidAnnounceProblem = announceProblem
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
            portMoves = false
            counters.reasserts += 1
            let away = port.value == 65535 ? port.value - 1 : port.value + 1
            effects.append(.log(.info, "reasserting port \(port): moving qBittorrent to \(away) and back so it re-opens its sockets"))
            return send(.writePreferences(away: true, fields: ["listen_port": .number(Double(away)), "random_port": .bool(false)]), &effects)
        }
        guard differences.isEmpty else {
            portMoves = preferences.listenPort != Int(port.value)
            let drifted = status.verifiedPort == port && status.health == .verified
            if drifted {
                // Off its port until the write is read back: a repair in progress, as the status says.
                counters.driftRepairs += 1
                status.health = .applying
            }
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

    /// Everything the sink owns in qBittorrent's preferences, as it wants it.
    private func wantedFields() -> [String: JSONValue] {
        var fields: [String: JSONValue] = ["random_port": .bool(false)]
        if let desired { fields["listen_port"] = .number(Double(desired.value)) }
        if settings.disableUPnP { fields["upnp"] = .bool(false) }
        if let interface = settings.interface { fields["current_network_interface"] = .string(interface) }
        return fields
    }

    mutating func verified(_ port: Port, changed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        let moved = changed && portMoves && status.verifiedPort != port
        portMoves = false
        if changed {
            effects.append(.log(.notice, "listen_port \(port) applied and verified"))
        } else if status.verifiedPort != port || status.health != .verified {
            effects.append(.log(.info, "qBittorrent already listens on port \(port)"))
        }
        if lastProblem != nil { effects.append(.log(.info, "qBittorrent is fine again")) }
        consecutiveFailures = 0
        lastProblem = nil
        refusedDespiteLogin = []
        status.verifiedPort = port
        status.health = .verified
        schedule(now + settings.checkInterval, .driftCheck)
        reannounceIfDue(afterMove: moved, port, now, &effects)
    }
}
