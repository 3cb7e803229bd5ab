import HTTP
import Reactor

/// How the session fails: a refused login stops every request for a long pause, anything else
/// is retried with capped exponential back-off; each problem is logged once, not once per retry.
extension QBittorrentSession {
    mutating func forbidden(_ response: HTTPResponse, _ request: Request, _ now: Instant, _ effects: inout [Effect]) {
        if response.text.lowercased().contains("banned") {
            return refuseLogin("qBittorrent has banned this IP address after too many failed logins", failed: false, now, &effects)
        }
        switch settings.authentication {
        case .password:
            if case .loggedIn(_, confirmed: true) = login, refusedDespiteLogin.contains(request.endpoint) {
                // Refused again with a fresh session that works for other calls: that call is
                // refused (a proxy's rule), not the session. Another login would change nothing.
                fail("qBittorrent (or a proxy in front of it) refuses \(request.method) \(request.path) with 403 even with a fresh session, while the session's other calls work",
                     kind: "\(request.path) forbidden", now, &effects)
            } else if case .loggedIn(_, confirmed: true) = login {
                // The session expired or qBittorrent restarted: log in again, once.
                refusedDespiteLogin.insert(request.endpoint)
                effects.append(.log(.info, "qBittorrent session expired (403 on \(request.path)); logging in again"))
                login = .loggedOut
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
    mutating func refuseLogin(_ message: String, failed: Bool, _ now: Instant, _ effects: inout [Effect]) {
        if failed { counters.failedLogins += 1 }
        syncRequested = false
        reassertPending = false
        cancelAnnouncements()
        let until = now + settings.loginRetryDelay
        login = .refused(until: until)
        lastProblem = message
        status.health = .loginRefused(message)
        effects.append(.log(.error, "\(message); no more logins until the configuration is reloaded or \(settings.loginRetryDelay.minutesText) pass"))
        schedule(until, .loginRefusalEnds)
    }

    /// A transient failure: retried with capped exponential back-off. Logged once per change
    /// of problem, not once per retry. `kind` names the problem when the message quotes
    /// qBittorrent (whose text may change on every retry); by default the message is the kind.
    mutating func fail(_ message: String, kind: String? = nil, unreachable: Bool = false, _ now: Instant, _ effects: inout [Effect]) {
        consecutiveFailures += 1
        problem(message, kind: kind, health: unreachable ? .unreachable(message) : .failing(message), &effects)
        let exponent = min(consecutiveFailures - 1, 20)
        let delay = min(settings.retryInitial * (1 << exponent), settings.retryMax)
        schedule(now + delay, .retry)
    }

    mutating func problem(_ message: String, kind: String? = nil, health: SinkStatus.Health, _ effects: inout [Effect]) {
        let kind = kind ?? message
        if kind != lastProblem {
            effects.append(.log(.error, message))
        } else {
            effects.append(.log(.debug, "still: \(message)"))
        }
        lastProblem = kind
        status.health = health
    }

    mutating func schedule(_ deadline: Instant, _ purpose: DeadlinePurpose) {
        scheduled = deadline
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
