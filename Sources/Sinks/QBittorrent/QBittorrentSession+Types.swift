import Domain
import HTTP
import Reactor

extension QBittorrentSession {
    public enum Input {
        /// Reach qBittorrent now, before any port (the daemon's start, and `portsync doctor`,
        /// for which it changes nothing either): the anonymous probe, the login, the version,
        /// the interfaces (with `interface`) and the preferences, read once (`inspection`).
        case connect
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
        /// The answer to `.checkListenerBeforeAnnouncing`.
        case listenerCheckedBeforeAnnouncing(ListeningSockets.Check)
        /// Ask `transfer/info` what qBittorrent says of its connectability, once verified.
        case observeConnection
    }

    public enum Effect: Equatable {
        /// Send this request; its answer comes back as `.responseReceived` or `.requestFailed`.
        /// `retryIfStale`: safe to resend on a fresh connection if the kept-alive one was dead.
        case send(HTTPRequest, retryIfStale: Bool)
        /// Look in the socket table whether something listens on the port, on an interface
        /// that exists; answer with `.listenerChecked`.
        case checkListener(Port)
        /// The same look, to tell the trackers once the new port's listener exists; answer
        /// with `.listenerCheckedBeforeAnnouncing`.
        case checkListenerBeforeAnnouncing(Port)
        case log(LogLevel, String)
        case statusChanged(SinkStatus)
    }

    /// The request in flight, by what it is for.
    public enum Request: Equatable, Sendable {
        /// The connect's first request, without a session: that qBittorrent answers, and not
        /// another application or a proxy in the way (`ProxyDiagnosis`).
        case probe
        case login
        case version
        case interfaces
        case readPreferences(verify: Bool)
        /// `away`: the first half of a reassert (a neighbouring port), then the real one.
        case writePreferences(away: Bool, fields: [String: JSONValue])
        /// Tell the trackers of every torrent about the port.
        case reannounce
        /// After a re-announce: one torrent, and then what its trackers say.
        case torrentSample
        case trackers(hash: String, torrent: String)
        /// Its connection status and external address (`SinkStatus.connection`).
        case transferInfo

        var endpoint: QBittorrentAPI.Endpoint {
            switch self {
            case .probe: .webAPIVersion
            case .login: .login
            case .version: .version
            case .interfaces: .interfaces
            case .readPreferences: .preferences
            case .writePreferences: .setPreferences
            case .reannounce: .reannounce
            case .torrentSample: .torrents
            case .trackers: .trackers
            case .transferInfo: .transferInfo
            }
        }

        /// The step of reaching qBittorrent this request is, if any: a problem there is named so.
        var step: ClientProblem.Step? {
            switch self {
            case .probe: .reach
            case .login: .login
            case .version: .version
            case .interfaces: .interfaces
            case .readPreferences(verify: false): .settings
            case .readPreferences, .writePreferences, .reannounce, .torrentSample, .trackers, .transferInfo: nil
            }
        }

        var isTrackerRead: Bool {
            switch self {
            case .torrentSample, .trackers: true
            default: false
            }
        }

        var method: String { endpoint.method }
        var path: String { endpoint.rawValue }
    }
}

extension QBittorrentSession.Effect: ClientSessionCoreEffect {
    var logLine: (level: LogLevel, message: String)? {
        if case .log(let level, let message) = self { (level, message) } else { nil }
    }
}
