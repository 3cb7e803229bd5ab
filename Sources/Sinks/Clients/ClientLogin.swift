import Reactor

/// Where a client session stands with the client's authentication, the same for every client
/// (`ClientSessionCore` keeps one per session): qBittorrent's and deluge-web's logins, and the
/// pause after a refused login, which Transmission's credentials on every call can end in too.
/// A call refused as unauthenticated on a session that worked gets one fresh login; refused
/// again before a sync verifies, it is not the session but that call (a proxy's rule), and no
/// further login is made: no login storm, and never near a client's ban.
struct ClientLogin: Equatable {
    enum State: Equatable {
        case loggedOut
        /// `confirmed`: an authenticated call succeeded since the login, so a later refusal
        /// means the session ended.
        case loggedIn(confirmed: Bool)
        /// No requests at all until then, or until the settings change.
        case refused(until: Instant)
    }

    /// What a call refused as unauthenticated (qBittorrent's 403, deluge-web's "Not
    /// authenticated") means.
    enum Refusal: Equatable {
        /// The session worked: it ended (the client restarted, the session expired). The
        /// session is logged out; the next sync logs in again, once for this call.
        case sessionEnded
        /// Refused again with a fresh session that works for other calls: that call is refused,
        /// not the session. Another login would change nothing.
        case callRefused
        /// Refused before any call worked: the client took the login but not the session.
        case sessionRefused
    }

    private(set) var state = State.loggedOut
    /// The calls refused on a session that worked, for each of which one fresh login was made.
    private var refusedDespiteLogin: Set<String> = []

    var isLoggedIn: Bool {
        if case .loggedIn = state { true } else { false }
    }

    var refusedUntil: Instant? {
        if case .refused(let until) = state { until } else { nil }
    }

    /// The client took the login; the first authenticated call that works confirms it.
    mutating func loggedIn() {
        state = .loggedIn(confirmed: false)
    }

    /// An authenticated call worked.
    mutating func confirm() {
        if isLoggedIn { state = .loggedIn(confirmed: true) }
    }

    /// The session cannot be used any more (its cookie cannot be sent): the next sync logs in.
    mutating func logOut() {
        if isLoggedIn { state = .loggedOut }
    }

    mutating func refuse(until: Instant) {
        state = .refused(until: until)
    }

    /// Whether the pause after a refusal is over at `now` (logged out again if so).
    mutating func pauseEnds(_ now: Instant) -> Bool {
        guard let until = refusedUntil, until <= now else { return false }
        state = .loggedOut
        return true
    }

    mutating func refused(_ call: String) -> Refusal {
        guard state == .loggedIn(confirmed: true) else { return .sessionRefused }
        guard !refusedDespiteLogin.contains(call) else { return .callRefused }
        refusedDespiteLogin.insert(call)
        state = .loggedOut
        return .sessionEnded
    }

    /// A sync verified: a call refused before may be the session again.
    mutating func verified() {
        refusedDespiteLogin = []
    }

    /// New settings; a changed URL or account ends the session and a refusal.
    mutating func settingsChanged(accountChanged: Bool) {
        refusedDespiteLogin = []
        if accountChanged { state = .loggedOut }
    }
}
