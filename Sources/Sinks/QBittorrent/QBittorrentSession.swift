import Domain
import HTTP
import Reactor

/// The qBittorrent sink's logic, with no I/O: inputs in (a desired port, an HTTP answer, a
/// deadline), effects out (one HTTP request at a time, log lines, status). The shell
/// (`QBittorrentSink`) carries the effects out and arms a timer to `nextDeadline`. What every
/// client session does alike (the status, the login's state, failures and their back-off, a
/// refused login's pause, the drift check, when to tell the trackers) is its
/// `ClientSessionCore`'s; this speaks qBittorrent's WebUI API around it.
///
/// A connect (before any port) begins with one anonymous request, the probe, which names another
/// application or a proxy in the way before any password is sent; it then logs in, reads the
/// version (and the interfaces, with `interface`) and reads the preferences once, kept as the
/// status's `inspection`. A sync reads the preferences and writes only what differs, then reads
/// them back to verify.
/// It logs in once per session, re-logs in once when the session expires (once per call that
/// was refused: a call refused again right after a fresh login is not the session but that
/// call, a failure with back-off), and never retries a
/// refused login until the settings change or `loginRetryDelay` passes: qBittorrent bans an IP
/// after 5 failed logins, and this way it sees at most one an hour. After a verified change of
/// port it tells the trackers (`torrents/reannounce`) once qBittorrent listens on it.
///
/// Telling the trackers: qBittorrent 4.5 does not re-announce after its port changes (unless
/// its advanced `reannounce_when_address_changed` is on), so trackers would hand out the dead
/// port until their next interval. After a verified change of port (not a check that found it
/// right, not a reassert of the same port) one `torrents/reannounce` with `hashes=all`, sent
/// once qBittorrent listens on the new port (`ListenerGate`): a new port at once, the same
/// port again at most once per `reannounceInterval`. A few seconds later one torrent's
/// trackers are read (`torrents/trackers`) and what they say is logged and kept
/// (`trackerReport`). All of it is best effort: a refusal is a warning and never touches the
/// session.
public struct QBittorrentSession {
    static let trackerCheckDelay = Duration.seconds(3)

    public private(set) var settings: QBittorrentSettings
    private(set) var core: ClientSessionCore
    public private(set) var inFlight: Request?
    /// `name=value` of the cookie the last login set.
    private var loginCookie: String?
    /// Tell the trackers as soon as qBittorrent is verified on the port with nothing in flight.
    private var reannouncePending = false
    /// When to read what the trackers heard of a port; then due, read when nothing is in flight.
    private var trackerCheck: (at: Instant, port: Port)?
    private var trackerCheckDue: Port?
    /// What one torrent's trackers said after the last re-announce.
    public private(set) var trackerReport: QBittorrentAPI.TrackerReport?
    /// The last re-announce qBittorrent accepted: the port, and what was known of its listener.
    private(set) var announced: (port: Port, listener: ListenerGate.Listener?)?
    /// The write in progress moves qBittorrent to another port (not a reassert, not only UPnP).
    private var portMoves = false
    /// The connect's probe was answered by qBittorrent (until the URL or the account changes).
    private var probed = false
    /// `transfer/info` is to be asked once the port is verified (`.observeConnection`).
    private var connectionWanted = false
    private var interfacesChecked = false
    /// The interfaces qBittorrent listed last (`interface` set).
    private var listedInterfaces: [String]?
    private var reassertPending = false
    /// Why the last reassert for a listener was made (nothing listened, or which deaf
    /// socket): one reassert per cause, not repeated until the listener is fine again.
    private var reassertedFor: String?
    /// The `announce_port` warning last given, so it is given once per value and port.
    private var saidAnnounceProblem: String?
    /// Look at the listener when the next sync finds the port right: at start, after an
    /// interface change, at every drift check.
    private var checkListenerAfterSync: Bool
    /// The port the last write asked for: a read-back verifies only that.
    private var writtenPort: Port?

    public init(settings: QBittorrentSettings) {
        self.settings = settings
        core = ClientSessionCore(client: "qBittorrent", settings: settings.client, portSetting: "listen_port")
        checkListenerAfterSync = settings.checkListener
    }

    public var desired: Port? { core.desired }
    public var nextDeadline: Instant? { [core.nextDeadline, trackerCheck?.at].compactMap { $0 }.min() }

    /// `name=value` of the session cookie (tests log the session out with it).
    var cookie: String? { core.login.isLoggedIn ? loginCookie : nil }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        let before = core.status
        switch input {
        case .connect:
            core.connectRequested = true
            startSync(&effects)
        case .desiredPort(let port):
            let next = core.desire(port, idle: inFlight == nil && !reassertPending, &effects)
            core.writeWithoutReading = next.skipRead
            if next.sync { startSync(&effects) }
        case .reassert:
            reassertPending = true
            interfacesChecked = false
            startSync(&effects)
        case .interfacesChanged:
            interfacesChecked = false
            if settings.checkListener {
                checkListenerAfterSync = true
            } else {
                effects.append(.log(.info, "the tunnel changed; qBittorrent is not on this machine, so its sockets cannot be seen: reasserting its port"))
                reassertPending = true
            }
            startSync(&effects)
        case .settingsChanged(let fresh):
            settings = fresh
            if core.update(fresh.client, &effects) { probed = false }
            interfacesChecked = false
            startSync(&effects)
        case .responseReceived(let response):
            guard let request = inFlight else { break }
            inFlight = nil
            if request == .login {
                loginAnswered(response, now, &effects)
            } else {
                received(response, to: request, now, &effects)
            }
        case .requestFailed(let error):
            guard let request = inFlight else { break }
            inFlight = nil
            if case .invalidRequest = error, cookie != nil {
                // The session cookie cannot go on the wire (a broken server or proxy sent it):
                // the retry logs in afresh instead of failing the same way forever.
                core.login.logOut()
            }
            core.requestFailed("\(request.method) \(request.path)", error, step: request.step, now, &effects)
        case .deadlineReached:
            deadlinesReached(now, &effects)
        case .listenerChecked(let check):
            guard let port = core.desired else { break }
            listenerChecked(check, port: port, now, &effects)
        case .observeConnection:
            connectionWanted = true
        case .listenerCheckedBeforeAnnouncing(let check):
            if core.listenerChecked(check, now, &effects) { announce(&effects) }
        }
        if core.syncRequested && inFlight == nil && !isLoginRefused {
            core.syncRequested = false
            startSync(&effects)
        }
        // `transfer/info` goes once the port is verified and nothing else is to be asked.
        if connectionWanted && inFlight == nil && !reassertPending, let port = core.desired, isVerified(on: port) {
            connectionWanted = false
            send(.transferInfo, &effects)
        }
        core.finish(since: before, &effects)
        return effects
    }

    private mutating func deadlinesReached(_ now: Instant, _ effects: inout [Effect]) {
        let due = core.deadlinesReached(now, &effects)
        if due.reannounce { announce(&effects) }
        if let check = trackerCheck, check.at <= now {
            trackerCheck = nil
            trackerCheckDue = check.port
            startSync(&effects)
        }
        if due.driftCheck { checkListenerAfterSync = settings.checkListener }
        if due.sync { startSync(&effects) }
    }

    // MARK: The sync

    private mutating func startSync(_ effects: inout [Effect]) {
        guard !isLoginRefused, core.hasWork else { return }
        guard inFlight == nil else {
            core.syncRequested = true
            return
        }
        if core.connectRequested && !probed {
            send(.probe, &effects)
        } else if case .password = settings.authentication, !core.login.isLoggedIn {
            send(.login, &effects)
        } else if core.status.version == nil {
            send(.version, &effects)
        } else if settings.interface != nil && !interfacesChecked {
            send(.interfaces, &effects)
        } else if let wanted = core.desired {
            sync(wanted, &effects)
        } else if core.connectRequested {
            // Connected before any port: the preferences once, then nothing until a port comes.
            send(.readPreferences(verify: false), &effects)
        }
    }

    /// The rest of a sync, logged in, with the version and the interfaces known.
    private mutating func sync(_ wanted: Port, _ effects: inout [Effect]) {
        if reannouncePending && isVerified(on: wanted) {
            send(.reannounce, &effects)
        } else if let port = trackerCheckDue, isVerified(on: port) && !core.writeWithoutReading {
            trackerCheckDue = nil
            send(.torrentSample, &effects)

        } else if !reassertPending, let verified = core.writeAtOnce(wanted) {
            // qBittorrent was verified on the old port, so the new one needs a write: the read
            // before it is skipped (the read-back still verifies). This is the latency path.
            portMoves = true
            effects.append(.log(.info, "setting listen_port \(wanted) (was \(verified))"))
            send(.writePreferences(away: false, fields: wantedFields()), &effects)
        } else {
            core.writeWithoutReading = false
            send(.readPreferences(verify: false), &effects)
        }
    }

    private func isVerified(on port: Port) -> Bool {
        core.status.health == .verified && core.status.verifiedPort == port
    }

    private mutating func send(_ request: Request, _ effects: inout [Effect]) {
        inFlight = request
        // What it said of its connectability was about the sockets a port write replaces.
        if case .writePreferences = request { core.status.connection = nil }
        if case .writePreferences(false, _) = request { writtenPort = core.desired }
        core.counters.requests += 1
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
        case .probe:
            return api.request(.webAPIVersion, cookie: nil)
        case .version, .interfaces, .readPreferences:
            return api.request(request.endpoint, cookie: cookie)
        case .reannounce:
            return api.request(.reannounce, cookie: cookie, form: [("hashes", "all")])
        case .torrentSample:
            return api.request(.torrents, cookie: cookie, query: "limit=1")
        case .transferInfo:
            return api.request(.transferInfo, cookie: cookie)
        case .trackers(let hash, _):
            return api.request(.trackers, cookie: cookie, query: "hash=\(hash)")
        }
    }

    // MARK: Answers

    /// Another web application answered, not qBittorrent: said as such, not as a wrong password.
    /// Whether it was one.
    private mutating func foreignServer(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [Effect]) -> Bool {
        guard let other = ForeignServer.identify(response, expected: "qBittorrent") else { return false }
        core.fail("\(settings.url) answered as \(other), not qBittorrent (\(response.status)): [qbittorrent].url must be qBittorrent's WebUI",
                  kind: "another application", problem: request.step.map { ClientProblem($0, .foreignServer(other, status: response.status)) }, now, &effects)
        return true
    }

    /// The probe's answer, whatever its status (qBittorrent answers 403 without a session): not
    /// another application, and no proxy in the way (`ProxyDiagnosis`; not with an API key,
    /// whose refusal is a 401 too).
    private mutating func probeAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        if foreignServer(response, .probe, now, &effects) { return }
        var anonymous = true
        if case .apiKey = settings.authentication { anonymous = false }
        if anonymous, let diagnosis = ProxyDiagnosis(probe: response, url: settings.url, path: Request.probe.path) {
            return core.fail("\(diagnosis.problem): \(diagnosis.fix)", kind: "in the way", problem: ClientProblem(.reach, .proxy(diagnosis)), now, &effects)
        }
        probed = true
        startSync(&effects)
    }

    private mutating func loginAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        let user: String
        if case .password(let username, _) = settings.authentication { user = username } else { user = "" }
        if foreignServer(response, .login, now, &effects) { return }
        let said = response.bodyExcerpt
        switch QBittorrentAPI.loginOutcome(response) {
        case .loggedIn(let cookie):
            core.counters.logins += 1
            core.login.loggedIn()
            loginCookie = cookie
            effects.append(.log(.info, "logged in to qBittorrent as \"\(user)\""))
            startSync(&effects)
        case .rejected(status: 200):
            refuse("login failed: qBittorrent rejected the username \"\(user)\" or its password (200 Fails.)", failed: true,
                   problem: ClientProblem(.login, .credentialsRefused(status: 200, said: said)), now, &effects)
        case .rejected(let status):
            refuse("login failed (401): wrong username \"\(user)\" or password, or qBittorrent rejected the Host header \(settings.url.hostHeader) (check [qbittorrent].url)", failed: true,
                   problem: ClientProblem(.login, .credentialsRefused(status: status, said: said)), now, &effects)
        case .banned:
            refuse("qBittorrent has banned this IP address after too many failed logins: fix the password, then wait for the ban to end (WebUI ban duration, 1 h by default) or restart qBittorrent", failed: false,
                   problem: ClientProblem(.login, .addressRefused(status: 403, said: said)), now, &effects)
        case .refused:
            refuse("login refused (403 \"\(said)\")", failed: false, problem: ClientProblem(.login, .addressRefused(status: 403, said: said)), now, &effects)
        case .unexpected:
            core.fail("unexpected answer to POST /api/v2/auth/login: \(response.status) \"\(said)\"", kind: "login answered \(response.status)",
                      problem: ClientProblem(.login, .unexpectedAnswer(status: response.status, said: said)), now, &effects)
        }
    }

    private mutating func received(_ response: HTTPResponse, to request: Request, _ now: Instant, _ effects: inout [Effect]) {
        // Best effort, whatever the answer: never taken for the session's state.
        if request == .reannounce { return reannounceAnswered(response, now, &effects) }
        if request.isTrackerRead { return trackerAnswer(response, to: request, &effects) }
        if request == .transferInfo { return connectionAnswered(response, &effects) }
        if request == .probe { return probeAnswered(response, now, &effects) }
        if !(200..<300).contains(response.status), foreignServer(response, request, now, &effects) { return }
        let said = response.bodyExcerpt
        let unexpected = request.step.map { ClientProblem($0, .unexpectedAnswer(status: response.status, said: said)) }
        switch response.status {
        case 200..<300:
            break
        case 403:
            return forbidden(response, request, now, &effects)
        case 401:
            return refuse("\(request.method) \(request.path) answered 401: qBittorrent rejected the Host header \(settings.url.hostHeader) or the credentials; [qbittorrent].url must be the WebUI's own address and port", failed: false,
                          problem: request.step.map { ClientProblem($0, .credentialsRefused(status: 401, said: said)) }, now, &effects)
        case 404:
            return core.fail("\(request.method) \(request.path) answered 404: is \(settings.url) qBittorrent's WebUI (4.1 or newer)?", problem: unexpected, now, &effects)
        default:
            return core.fail("unexpected answer to \(request.method) \(request.path): \(response.status) \"\(said)\"",
                             kind: "\(request.path) answered \(response.status)", problem: unexpected, now, &effects)
        }
        core.login.confirm()
        switch request {
        case .probe, .login, .reannounce, .torrentSample, .trackers, .transferInfo:
            preconditionFailure("probe, login, re-announce, tracker and transfer answers are handled apart")
        case .version:
            guard let version = QBittorrentAPI.version(response) else {
                return unusable("answer to GET /api/v2/app/version is not a version: \"\(said)\"", kind: "not a version", .version, now, &effects)
            }
            core.status.version = version
            effects.append(.log(.info, "connected to qBittorrent \(version) at \(settings.url)"))
            startSync(&effects)
        case .interfaces:
            guard let names = QBittorrentAPI.interfaceNames(response) else {
                return unusable("answer to GET /api/v2/app/networkInterfaceList is not a JSON array: \"\(said)\"", kind: "interfaces not a list", .interfaces, now, &effects)
            }
            interfacesChecked = true
            listedInterfaces = names
            if let interface = settings.interface, !names.contains(interface) {
                effects.append(.log(.warning, "qBittorrent does not list interface \(interface) (it lists only interfaces that have an address: \(names.joined(separator: ", "))); binding anyway, it takes effect when the interface comes up"))
            }
            startSync(&effects)
        case .readPreferences(let verify):
            switch QBittorrentAPI.preferences(response) {
            case .success(let preferences): preferencesRead(preferences, verify: verify, now, &effects)
            case .failure(let error): core.fail("\(error)", kind: error.kind, problem: request.step.map { ClientProblem($0, .unusableAnswer("\(error)")) }, now, &effects)
            }
        case .writePreferences(let away, _):
            if away {
                send(.writePreferences(away: false, fields: wantedFields()), &effects)
            } else {
                core.counters.applies += 1
                send(.readPreferences(verify: true), &effects)
            }
        }
    }

    /// An answer that is not what was asked for: failed with back-off.
    private mutating func unusable(_ message: String, kind: String, _ step: ClientProblem.Step, _ now: Instant, _ effects: inout [Effect]) {
        core.fail(message, kind: kind, problem: ClientProblem(step, .unusableAnswer(message)), now, &effects)
    }

    /// A 403: banned, the session ended (one fresh login), the call refused, or a login the
    /// settings do not make.
    private mutating func forbidden(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [Effect]) {
        let said = response.bodyExcerpt
        func problem(_ cause: ClientProblem.Cause) -> ClientProblem? { request.step.map { ClientProblem($0, cause) } }
        if response.text.lowercased().contains("banned") {
            return refuse("qBittorrent has banned this IP address after too many failed logins", failed: false,
                          problem: problem(.addressRefused(status: 403, said: said)), now, &effects)
        }
        switch settings.authentication {
        case .password:
            switch core.login.refused(request.path) {
            case .callRefused:
                core.fail("qBittorrent (or a proxy in front of it) refuses \(request.method) \(request.path) with 403 even with a fresh session, while the session's other calls work",
                          kind: "\(request.path) forbidden", problem: problem(.unexpectedAnswer(status: 403, said: said)), now, &effects)
            case .sessionEnded:
                // The session expired or qBittorrent restarted: log in again, once.
                effects.append(.log(.info, "qBittorrent session expired (403 on \(request.path)); logging in again"))
                send(.login, &effects)
            case .sessionRefused:
                refuse("qBittorrent accepted the login but refused the session (403 on \(request.path))", failed: true,
                       problem: problem(.credentialsRefused(status: 403, said: said)), now, &effects)
            }
        case .none:
            refuse("qBittorrent wants a login (403 on \(request.path)) but no password is configured: set [qbittorrent].password_file, or enable \"Bypass authentication for clients on localhost\" in qBittorrent", failed: false,
                   problem: problem(.credentialsMissing), now, &effects)
        case .apiKey:
            refuse("qBittorrent refused the API key (403 on \(request.path)); API keys need qBittorrent 5.2 or newer", failed: false,
                   problem: problem(.credentialsRefused(status: 403, said: said)), now, &effects)
        }
    }

    /// No more requests until the settings change or the pause ends; nothing more is told.
    private mutating func refuse(_ message: String, failed: Bool, problem: ClientProblem?, _ now: Instant, _ effects: inout [Effect]) {
        core.refuse(message, failed: failed, problem: problem, now, &effects)
        reassertPending = false
        reannouncePending = false
        trackerCheck = nil
        trackerCheckDue = nil
    }

    private mutating func preferencesRead(_ preferences: QBittorrentAPI.Preferences, verify: Bool, _ now: Instant, _ effects: inout [Effect]) {
        core.inspected(inspection(preferences), &effects)
        guard let port = core.desired else { return }
        // These preferences are current, so they answer any sync asked for meanwhile; a
        // read-back made for a port that is no longer wanted is an ordinary check.
        core.syncRequested = false
        let verify = verify && writtenPort == port
        let differences = preferences.differences(from: settings, port: port)
        let announceProblem = preferences.announceProblem(port: port)
        if announceProblem != saidAnnounceProblem {
            if let announceProblem { effects.append(.log(.warning, announceProblem)) }
            saidAnnounceProblem = announceProblem
        }
        if verify {
            guard differences.isEmpty else {
                core.counters.failedApplies += 1
                return core.fail("qBittorrent still has \(differences.joined(separator: ", ")) after being set to listen_port \(port)", now, &effects)
            }
            return verified(port, changed: true, now, &effects)
        }
        if reassertPending {
            reassertPending = false
            portMoves = false
            core.counters.reasserts += 1
            let away = port.neighbour.value
            effects.append(.log(.info, "reasserting port \(port): moving qBittorrent to \(away) and back so it re-opens its sockets"))
            return send(.writePreferences(away: true, fields: ["listen_port": .number(Double(away)), "random_port": .bool(false)]), &effects)
        }
        guard differences.isEmpty else {
            portMoves = preferences.listenPort != Int(port.value)
            core.differs(differences, setting: "listen_port \(port)", &effects)
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

    /// What the preferences (and the interfaces listed) say stands in the way of the port.
    private func inspection(_ preferences: QBittorrentAPI.Preferences) -> ClientInspection {
        var findings: [ClientInspection.Finding] = []
        if preferences.randomPort { findings.append(.randomPort) }
        if settings.disableUPnP && preferences.upnp { findings.append(.portForwarding) }
        if preferences.announcePort != 0 { findings.append(.announcePort(preferences.announcePort)) }
        if let interface = settings.interface, let listed = listedInterfaces, !listed.contains(interface) {
            findings.append(.interfaceNotListed(interface, listed: listed))
        }
        return ClientInspection(listenPorts: [preferences.listenPort], findings: findings)
    }

    /// Everything the sink owns in qBittorrent's preferences, as it wants it.
    private func wantedFields() -> [String: JSONValue] {
        var fields: [String: JSONValue] = ["random_port": .bool(false)]
        if let desired = core.desired { fields["listen_port"] = .number(Double(desired.value)) }
        if settings.disableUPnP { fields["upnp"] = .bool(false) }
        if let interface = settings.interface { fields["current_network_interface"] = .string(interface) }
        return fields
    }

    /// The port read back; after a move to it, the trackers are to be told.
    private mutating func verified(_ port: Port, changed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        let moved = changed && portMoves && core.status.verifiedPort != port
        portMoves = false
        core.verified(port, changed: changed, now, &effects)
        if moved {
            // The new port is told on its own; nothing still waiting for the old one goes out.
            reannouncePending = false
            if core.reannounceDue(port, now, &effects) { announce(&effects) }
        } else if reannouncePending && inFlight == nil {
            send(.reannounce, &effects)
        }
    }

    /// The look at the kernel's socket table that ends a drift check (qBittorrent on this
    /// host): one reassert per cause (nothing listens; a socket bound to a vanished interface),
    /// then a clear failure until the listener is fine again.
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
            core.persists("\(cause), even after a reassert; is qBittorrent bound to an interface that is down?",
                          health: .failing("not listening on port \(port)"), now, &effects)
        } else {
            effects.append(.log(.warning, "\(cause); making it re-open its sockets"))
            reassertedFor = cause
            reassertPending = true
            core.counters.listenerRepairs += 1
            core.status.health = .applying
            startSync(&effects)
        }
    }

    // MARK: Telling the trackers

    /// qBittorrent listens on the verified port (or was given its time): tell the trackers.
    private mutating func announce(_ effects: inout [Effect]) {
        reannouncePending = true
        startSync(&effects)
    }

    private mutating func reannounceAnswered(_ response: HTTPResponse, _ now: Instant, _ effects: inout [Effect]) {
        reannouncePending = false
        guard let port = core.status.verifiedPort else { return }
        guard (200..<300).contains(response.status) else {
            return effects.append(.log(.warning, "POST \(Request.reannounce.path) answered \(response.status) \"\(response.bodyExcerpt)\": the trackers hear of port \(port) at their next announce"))
        }
        core.reannounced(port, now)
        announced = (port, core.announcedListener)
        let when = core.announcedListener.map { " \($0)" } ?? ""
        effects.append(.log(.info, "asked qBittorrent to tell the trackers of every torrent about port \(port)\(when)"))
        trackerCheck = (now + Self.trackerCheckDelay, port)
    }

    /// `transfer/info`'s answer: what qBittorrent says of its connectability. Best effort (an
    /// older or odd answer changes nothing); never taken for the session's state.
    private mutating func connectionAnswered(_ response: HTTPResponse, _ effects: inout [Effect]) {
        guard (200..<300).contains(response.status), let connection = QBittorrentAPI.connection(response) else {
            return effects.append(.log(.debug, "GET \(Request.transferInfo.path) answered \(response.status) without a connection_status: \"\(response.bodyExcerpt)\""))
        }
        core.status.connection = connection
    }

    /// The answers to the tracker read: `torrents/info?limit=1`, then its `torrents/trackers`.
    private mutating func trackerAnswer(_ response: HTTPResponse, to request: Request, _ effects: inout [Effect]) {
        guard let port = core.status.verifiedPort, (200..<300).contains(response.status) else {
            return effects.append(.log(.warning, "\(request.method) \(request.path) answered \(response.status) \"\(response.bodyExcerpt)\": what the trackers heard is not known"))
        }
        switch request {
        case .torrentSample:
            switch QBittorrentAPI.firstTorrent(response) {
            case .none:
                effects.append(.log(.warning, "answer to GET \(request.path) is not a list of torrents: \"\(response.bodyExcerpt)\""))
            case .some(.none):
                effects.append(.log(.info, "qBittorrent has no torrents: no tracker to hear of port \(port)"))
            case .some(.some(let torrent)):
                send(.trackers(hash: torrent.hash, torrent: torrent.name), &effects)
            }
        case .trackers(_, let torrent):
            guard let report = QBittorrentAPI.trackerReport(response, torrent: torrent, port: port) else {
                return effects.append(.log(.warning, "answer to GET \(request.path) is not a list of trackers: \"\(response.bodyExcerpt)\""))
            }
            trackerReport = report
            let worrying = report.notWorking > 0 || (report.trackers > 0 && report.working == 0)
            effects.append(.log(worrying ? .warning : .info, "\(report)"))
        default:
            break
        }
    }
}

extension QBittorrentSession: ClientSessionCoreOwner {}
