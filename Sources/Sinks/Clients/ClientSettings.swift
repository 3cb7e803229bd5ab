import Domain
import HTTP
import Reactor

/// How a sink reaches a torrent client's API (Transmission's RPC, Deluge's Web UI): the same
/// key names as `[qbittorrent]` where they mean the same thing (`QBittorrentSettings.client`
/// is qBittorrent's in this form).
public struct ClientSettings: Equatable, Sendable {
    public var url: HTTPURL
    /// How an https server's certificate is checked.
    public var tls: TLSOptions
    /// Transmission's RPC username; Deluge's Web UI has none, only a password.
    public var username: String
    /// nil: the client asks for no password.
    public var password: Secret?
    /// How often the port is read back to catch changes made behind portsync's back.
    public var checkInterval: Duration
    /// After a verified change, tell the trackers (for clients that do not do it themselves),
    /// at most once per `reannounceInterval`.
    public var reannounce: Bool
    public var reannounceInterval: Duration
    /// Back-off after a failure: doubling from `retryInitial` up to `retryMax`.
    public var retryInitial: Duration
    public var retryMax: Duration
    /// After a refused login, how long before one more try (unless the settings change first).
    public var loginRetryDelay: Duration
    /// How long one request may wait for its answer; the shell turns a silence into
    /// `.requestFailed(.timedOut)`.
    public var requestTimeout: Duration
    /// Whether the client's sockets can be seen in this machine's socket table; nil: when the
    /// URL's host is this machine.
    public var checkListener: Bool?

    public init(url: HTTPURL, tls: TLSOptions = TLSOptions(), username: String = "", password: Secret?, checkInterval: Duration = .seconds(300),
                reannounce: Bool = true, reannounceInterval: Duration = .seconds(60),
                retryInitial: Duration = .milliseconds(500), retryMax: Duration = .seconds(15),
                loginRetryDelay: Duration = .seconds(3900), requestTimeout: Duration = .seconds(10), checkListener: Bool? = nil) {
        self.url = url
        self.tls = tls
        self.username = username
        self.password = password
        self.checkInterval = checkInterval
        self.reannounce = reannounce
        self.reannounceInterval = reannounceInterval
        self.retryInitial = retryInitial
        self.retryMax = retryMax
        self.loginRetryDelay = loginRetryDelay
        self.requestTimeout = requestTimeout
        self.checkListener = checkListener
    }

    var canSeeListener: Bool { checkListener ?? url.isThisHost }

    /// Whether a change of these settings ends a login refusal and the session with it.
    func sameAccount(as other: ClientSettings) -> Bool {
        url == other.url && username == other.username && password == other.password
    }
}
