import HTTP

/// Why a session's talk with its client stopped, as a value: at which step of the handshake,
/// and what happened. The health says it in words (logs, `status`); `portsync doctor` makes its
/// lines and fixes from this. A failure after the handshake (a write that did not take) has none.
public struct ClientProblem: Equatable, Sendable {
    /// The steps of reaching a client, in order.
    public enum Step: Comparable, Sendable {
        /// The settings, before any request: what the client needs is not configured
        /// (deluge-web's password).
        case configuration
        /// The first request: that the client is there, and is the client (qBittorrent's
        /// anonymous probe, Transmission's first `session-get` and its 409, deluge-web's answer
        /// to the login).
        case reach
        case login
        case version
        /// deluge-web's link to deluged (`web.connected`, `web.get_hosts`, `web.connect`).
        case daemon
        /// qBittorrent's list of network interfaces (`[qbittorrent] interface`).
        case interfaces
        /// Reading the port settings.
        case settings
    }

    public enum Cause: Equatable, Sendable {
        /// No answer: not there, refused, TLS refused, a BitTorrent port (`BitTorrentPort`).
        case noAnswer(HTTPClientError)
        /// Another web application answered (`ForeignServer`): its name, and the status.
        case foreignServer(String, status: Int)
        /// The way to the client is wrong (a reverse proxy, qBittorrent's Host-header check).
        case proxy(ProxyDiagnosis)
        /// The client refused the credentials: the status, and what it said.
        case credentialsRefused(status: Int, said: String)
        /// The client refuses this address: banned after failed logins, not whitelisted, locked.
        case addressRefused(status: Int, said: String)
        /// The client refused the Host header (Transmission's `rpc-host-whitelist`).
        case hostRefused(String)
        /// The client wants credentials and none are configured.
        case credentialsMissing
        /// An HTTP status the step cannot use, and what came with it.
        case unexpectedAnswer(status: Int, said: String)
        /// An answer the step cannot use (not the form asked for, an error of the client's own),
        /// in the session's words.
        case unusableAnswer(String)
    }

    public var step: Step
    public var cause: Cause

    public init(_ step: Step, _ cause: Cause) {
        self.step = step
        self.cause = cause
    }

    /// With every secret taken out of what it quotes from the client.
    func redacted(by redaction: Redaction) -> ClientProblem {
        var copy = self
        switch cause {
        case .foreignServer(let name, let status): copy.cause = .foreignServer(redaction(name), status: status)
        case .credentialsRefused(let status, let said): copy.cause = .credentialsRefused(status: status, said: redaction(said))
        case .addressRefused(let status, let said): copy.cause = .addressRefused(status: status, said: redaction(said))
        case .unexpectedAnswer(let status, let said): copy.cause = .unexpectedAnswer(status: status, said: redaction(said))
        case .unusableAnswer(let what): copy.cause = .unusableAnswer(redaction(what))
        case .noAnswer, .proxy, .hostRefused, .credentialsMissing: break
        }
        return copy
    }
}
