import Domain
import HTTP
import Reactor

/// How the qBittorrent sink reaches and treats qBittorrent.
public struct QBittorrentSettings: PortSinkSettings, Equatable {
    public enum Authentication: Equatable, Sendable {
        /// qBittorrent lets this client in without a login ("Bypass authentication for clients
        /// on localhost" or a whitelisted subnet).
        case none
        case password(username: String, password: Secret)
        /// `Authorization: Bearer`, qBittorrent 5.2+.
        case apiKey(Secret)
    }

    /// `qbittorrent` for `[qbittorrent]`, `qbittorrent.movies` for `[qbittorrent.movies]`.
    public var label: String
    public var url: HTTPURL
    /// How an https WebUI's certificate is checked.
    public var tls: TLSOptions
    public var authentication: Authentication
    /// Also set `upnp` off: qBittorrent's own UPnP/NAT-PMP cannot reach the VPN gateway.
    public var disableUPnP: Bool
    /// Bind qBittorrent to this interface (`current_network_interface`); nil leaves it alone.
    public var interface: String?
    /// How often the port is read back to catch changes made behind our back.
    public var checkInterval: Duration
    /// Also look in the kernel's socket table that something listens on the port (only
    /// meaningful when qBittorrent runs on this host).
    public var checkListener: Bool
    /// Back-off after a failure: doubling from `retryInitial` up to `retryMax`.
    public var retryInitial: Duration
    public var retryMax: Duration
    /// After a refused login, how long before one more try (unless the settings change first).
    /// Longer than qBittorrent's default ban (3600 s), so failed logins stay far below its
    /// threshold of 5.
    public var loginRetryDelay: Duration
    /// How long one request may wait for its answer (and a connection for its handshake).
    public var requestTimeout: Duration
    public var portIndex: Int?
    /// After a change of port, tell the trackers (`torrents/reannounce`), at most once per
    /// `reannounceInterval`: qBittorrent does not by itself.
    public var reannounce: Bool
    public var reannounceInterval: Duration

    public init(url: HTTPURL, tls: TLSOptions = TLSOptions(), authentication: Authentication, disableUPnP: Bool = true, interface: String? = nil,
                checkInterval: Duration = .seconds(300), checkListener: Bool? = nil,
                retryInitial: Duration = .milliseconds(500), retryMax: Duration = .seconds(15),
                loginRetryDelay: Duration = .seconds(3900), requestTimeout: Duration = .seconds(10), label: String = "qbittorrent",
                portIndex: Int? = nil, reannounce: Bool = true, reannounceInterval: Duration = .seconds(60)) {
        self.label = label
        self.portIndex = portIndex
        self.url = url
        self.tls = tls
        self.authentication = authentication
        self.disableUPnP = disableUPnP
        self.interface = interface
        self.checkInterval = checkInterval
        self.checkListener = checkListener ?? url.isThisHost
        self.retryInitial = retryInitial
        self.retryMax = retryMax
        self.loginRetryDelay = loginRetryDelay
        self.requestTimeout = requestTimeout
        self.reannounce = reannounce
        self.reannounceInterval = reannounceInterval
    }

    /// These settings as the `ClientSessionCore` of the session reads them: the password or the
    /// API key is the secret it keeps out of what it says.
    var client: ClientSettings {
        let (username, secret): (String, Secret?) = switch authentication {
        case .none: ("", nil)
        case .password(let username, let password): (username, password)
        case .apiKey(let key): ("", key)
        }
        return ClientSettings(url: url, tls: tls, username: username, password: secret, checkInterval: checkInterval,
                              reannounce: reannounce, reannounceInterval: reannounceInterval, retryInitial: retryInitial, retryMax: retryMax,
                              loginRetryDelay: loginRetryDelay, requestTimeout: requestTimeout, checkListener: checkListener)
    }

    public var summary: String { "qBittorrent at \(url)\(label == "qbittorrent" ? "" : " (\(label))")" }
    public var listenerVisible: Bool { checkListener }

    public func makeSink(loop: EventLoop) -> any PortSink {
        QBittorrentSink(loop: loop, settings: self)
    }
}
