import Domain
import HTTP
import Reactor

/// `[notify]`: where notifications go and how, which events are sent, and the limits that keep
/// them few (fixed: a person wants to hear of a change, not of every retry).
public struct NotifySettings: Equatable, Sendable {
    public var url: HTTPURL
    public var preset: NotifyPreset
    /// The service's token (ntfy's access token, Gotify's application token, a Discord
    /// webhook's token, a bearer token for the generic preset).
    public var token: Secret?
    public var tls: TLSOptions
    public var events: Set<NotifyEvent.Kind>
    /// The connect and the response timeout of one attempt.
    public var timeout: Duration
    /// At most one message per event kind (per client, for a client failing) within this; what
    /// comes in between is folded into one message sent when it is over.
    public var interval: Duration
    /// At most this many messages within an hour, whatever their kind; the rest wait.
    public var hourlyLimit: Int
    /// Tries of one message (the first and its retries) before it is given up.
    public var attempts: Int
    /// The wait after the first failed try, doubled after each further one; a `Retry-After`
    /// (or Discord's `retry_after`) replaces it.
    public var backOff: Duration
    /// A server that asks to wait longer than this has the message given up.
    public var longestWait: Duration

    public init(url: HTTPURL, preset: NotifyPreset, token: Secret? = nil, tls: TLSOptions = TLSOptions(),
                events: Set<NotifyEvent.Kind> = Set(NotifyEvent.Kind.allCases), timeout: Duration = .seconds(10),
                interval: Duration = .seconds(60), hourlyLimit: Int = 20, attempts: Int = 4, backOff: Duration = .seconds(5),
                longestWait: Duration = .seconds(600)) {
        self.url = url
        self.preset = preset
        self.token = token
        self.tls = tls
        self.events = events
        self.timeout = timeout
        self.interval = interval
        self.hourlyLimit = hourlyLimit
        self.attempts = attempts
        self.backOff = backOff
        self.longestWait = longestWait
    }

    /// Where the messages go, for log lines: the scheme and host only. The path can hold a
    /// secret (a Discord webhook's token, an ntfy topic, which is its password).
    public var destination: String { "\(url.scheme.rawValue)://\(url.hostHeader)" }

    /// What a session quotes from the server, with the token and the URL's secret parts out.
    var redaction: Redaction {
        var secrets = [token]
        if preset == .discord || preset == .ntfy, let last = url.basePath.split(separator: "/").last {
            secrets.append(Secret(value: String(last), origin: "the URL"))
        }
        return Redaction(secrets)
    }
}
