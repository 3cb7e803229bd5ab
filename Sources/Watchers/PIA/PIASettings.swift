import Domain
import HTTP
import Reactor

/// How the PIA source reaches PIA: the account, the server (its common name and address) and
/// the tunnel to it, and where its signature is kept.
public struct PIASettings: Equatable, Sendable {
    public static let tokenURL = try! HTTPURL(parsing: "https://www.privateinternetaccess.com/api/client/v2/token")
    public static let apiPort: UInt16 = 19999
    /// PIA's name servers inside the tunnel (what its WireGuard and OpenVPN servers hand out).
    public static let defaultNameServers = [IPv4Address(10, 0, 0, 243), IPv4Address(10, 0, 0, 242)]

    public var username: String
    public var password: Secret
    /// The server's common name (`…401` in PIA's server list): the name its certificate is checked for.
    public var serverName: String
    /// Where `getSignature` and `bindPort` go: the WireGuard server's address (the `Endpoint` of
    /// the configuration); nil: the tunnel's gateway (OpenVPN's `route-gateway`, a peer address).
    public var serverAddress: IPv4Address?
    public var interface: String
    /// PIA's CA (`ca.rsa.4096.crt`, built in) unless a file is named (tests).
    public var caFile: String?
    public var tokenURL: HTTPURL
    /// Who the token endpoint's name is asked of, through the tunnel; empty: resolv.conf's name
    /// servers (those the tunnel can reach).
    public var nameServers: [IPv4Address]
    /// The file the payload and signature are kept in, mode 0600.
    public var signatureFile: String
    /// `bindPort` again this often (PIA drops a port not bound for a while).
    public var bindInterval: Duration
    /// A new signature once fewer than this remain of the payload's life.
    public var renewBefore: Duration
    /// How long a token is used for a new signature (PIA's last 24 h).
    public var tokenLifetime: Duration
    /// After a failed request, before the next try; a refused login waits `authRetryDelay`.
    public var retryDelay: Duration
    public var authRetryDelay: Duration
    public var requestTimeout: Duration

    public init(username: String, password: Secret, serverName: String, serverAddress: IPv4Address? = nil, interface: String,
                caFile: String? = nil, tokenURL: HTTPURL = PIASettings.tokenURL,
                nameServers: [IPv4Address] = PIASettings.defaultNameServers, signatureFile: String,
                bindInterval: Duration = .seconds(15 * 60), renewBefore: Duration = .seconds(7 * 86_400),
                tokenLifetime: Duration = .seconds(23 * 3600), retryDelay: Duration = .seconds(60),
                authRetryDelay: Duration = .seconds(3600), requestTimeout: Duration = .seconds(10)) {
        self.username = username
        self.password = password
        self.serverName = serverName
        self.serverAddress = serverAddress
        self.interface = interface
        self.caFile = caFile
        self.tokenURL = tokenURL
        self.nameServers = nameServers
        self.signatureFile = signatureFile
        self.bindInterval = bindInterval
        self.renewBefore = renewBefore
        self.tokenLifetime = tokenLifetime
        self.retryDelay = retryDelay
        self.authRetryDelay = authRetryDelay
        self.requestTimeout = requestTimeout
    }

    /// PIA's API on the server: checked against PIA's CA (or `caFile`) for the server's name.
    public var apiTLS: TLSOptions {
        TLSOptions(verification: caFile.map { .chain(caFile: $0) } ?? .authority(pem: PIACertificate.authority), serverName: serverName)
    }

    /// The token endpoint: the system's CAs, or `caFile` when one is set (tests).
    public var tokenTLS: TLSOptions {
        TLSOptions(verification: .chain(caFile: caFile))
    }
}
