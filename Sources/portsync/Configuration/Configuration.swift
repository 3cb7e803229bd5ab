import Domain
import HTTP
import Reactor
import Watchers

/// Where the port comes from.
enum SourceStrategy: String, CaseIterable, Sendable {
    case auto
    case file
    case natpmp
    case gluetun
    /// `[static] port`: a port forwarded by hand or by contract.
    case staticPort = "static"
    /// Perfect Privacy's three ports, computed from the tunnel's address.
    case perfectPrivacy = "perfectprivacy"
    /// `[command] argv`: a program that prints the port.
    case command
    /// `[pia]`: PIA's own port forwarding (a token, a signature, a bind every 15 minutes).
    case pia
    /// `[pcp]`: PCP (RFC 6887) on the router, NAT-PMP if it speaks only that.
    case pcp
    /// PrivateVPN's port API, asked about the tunnel's address.
    case privateVPN = "privatevpn"

    /// The sources that forward several ports, among which a client's `port_index` picks.
    var forwardsSeveralPorts: Bool { self == .gluetun || self == .perfectPrivacy || self == .command }
}

/// The daemon's whole configuration, after the file, the environment and the flags were
/// merged and checked. Every key of the configuration interface lives here under its section.
struct Configuration: Equatable {
    struct Source: Equatable {
        var strategy = SourceStrategy.auto
        /// `auto` on a network with no tunnel: ask the router of the default route (PCP, then
        /// NAT-PMP).
        var autoRouter = true
    }

    struct Proton: Equatable {
        var portFile: String
    }

    struct NATPMP: Equatable {
        var interface = "proton0"
        /// nil: found from the tunnel (`GatewayRule`): a route through it that names a gateway,
        /// else its peer address, else its address with the last byte 1 (10.2.0.2 -> 10.2.0.1).
        var gateway: IPv4Address?
        var leaseSeconds = 60
        var renewSeconds = 45
        /// 0: the port in use when the tunnel comes up.
        var internalPort = 0
        var zeroInternalPort = false
        var deleteOnExit = false
        var recoveryCommand = ""
        var recoveryAfter = 3
        var recoveryCooldownSeconds = 600
    }

    /// How an https server's certificate is checked (`ca_file`, `tls_fingerprint`, `tls_verify`
    /// of a section); at most one of the three is set.
    struct TLS: Equatable {
        var caFile = ""
        /// Hex, with or without colons; checked when set.
        var fingerprint = ""
        var verify = true
    }

    struct Static: Equatable {
        /// 0: not set (`strategy = "static"` then fails to load).
        var port = 0
    }

    struct PerfectPrivacy: Equatable {
        var interface = "tun0"
        var portIndex = 0
    }

    /// PrivateVPN's port API, asked through the tunnel; `url` only for a stand-in.
    struct PrivateVPN: Equatable {
        var interface = "tun0"
        var url = PrivateVPNSettings.defaultURL
        var tls = TLS()
        /// Who the API's name is asked of, through the tunnel; empty: resolv.conf's.
        var nameServers: [IPv4Address] = []
    }

    /// A program that prints the port: run every `intervalSeconds`, or kept running (`stream`).
    struct Command: Equatable {
        var argv: [String] = []
        var stream = false
        var intervalSeconds = 60
        var timeoutSeconds = 10
        var portIndex = 0
    }

    struct Gluetun: Equatable {
        var url = try! HTTPURL(parsing: "http://127.0.0.1:8000")
        var tls = TLS()
        var apiKeyFile = ""
        var pollSeconds = 10
        var portFile = ""
        var portIndex = 0
        var username = ""
        var passwordFile = ""
    }

    struct QBittorrent: Equatable {
        var url = try! HTTPURL(parsing: "http://127.0.0.1:8080")
        var tls = TLS()
        var username = "admin"
        var passwordFile = ""
        var apiKeyFile = ""
        var bindInterface = false
        var disableUPnP = true
        var checkSeconds = 300
        /// Which of the source's forwarded ports; nil: the source's own choice.
        var portIndex: Int?
        var reannounce = true
    }

    /// `[transmission]` or `[deluge]`: the same key names as `[qbittorrent]`.
    struct TorrentClient: Equatable {
        var url: HTTPURL
        var tls = TLS()
        var username = ""
        var passwordFile = ""
        var checkSeconds = 300
        var reannounce = true
        /// Which of the source's forwarded ports; nil: the source's own choice.
        var portIndex: Int?
    }

    /// The command hook; unused while `command` is empty.
    struct Hook: Equatable {
        var command: [String] = []
        var timeoutSeconds = 30
    }

    struct Daemon: Equatable {
        var stateFile: String
        var logLevel = LogLevel.info
        /// nil: no metrics endpoint.
        var metricsListen: SocketAddress?
    }

    var source = Source()
    var proton: Proton
    var natpmp = NATPMP()
    var gluetun = Gluetun()
    var staticPort = Static()
    var perfectPrivacy = PerfectPrivacy()
    var command = Command()
    var pia = PIA()
    var privateVPN = PrivateVPN()
    /// Every client table: the three kinds' own first (used only when present, but for
    /// `[qbittorrent]` alone), then `[qbittorrent.movies]` and the like in the file's order.
    var clientSections: [ClientSection] = ClientKind.allCases.map { ClientSection($0) }
    var hook = Hook()
    var daemon: Daemon
    var pcp = PCP()
    var connectability = Connectability()
    var notify = Notify()
    /// The unnamed client sections given in the file (an empty table counts) or by a variable or
    /// flag: `[transmission]` and `[deluge]` are used only when present.
    var presentSections: Set<String> = []

    /// The configuration file that was read, if any.
    var file: String?
    /// Where each key's value came from ("section.key" → "config.toml:12", "PORTSYNC_…", "--flag").
    /// Keys left at their default are absent.
    var origins: [String: String] = [:]

    /// Whether a server is reached over https, so that OpenSSL is needed: any of the servers
    /// whose TLS keys are checked (every client in use, named or not, and Gluetun).
    var usesHTTPS: Bool { ConfigurationLoader.servers(self).contains { $0.url.scheme == .https } }

    /// The defaults: right for the desktop ProtonVPN case with no configuration at all.
    static func defaults(environment: [String: String], userID: UInt32) -> Configuration {
        Configuration(proton: Proton(portFile: defaultProtonPortFile(environment: environment, userID: userID)),
                      daemon: Daemon(stateFile: defaultStateFile(environment: environment)))
    }

    /// `$XDG_RUNTIME_DIR/Proton/VPN/forwarded_port`, as the Proton app computes it: without the
    /// variable, `/run/user/<uid>`, and `/run` for root.
    static func defaultProtonPortFile(environment: [String: String], userID: UInt32) -> String {
        let runtime = environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (userID == 0 ? "/run" : "/run/user/\(userID)")
        return "\(runtime)/Proton/VPN/forwarded_port"
    }

    /// `$STATE_DIRECTORY` (systemd's StateDirectory=; the first if several), else
    /// `$XDG_STATE_HOME/portsync`, else `~/.local/state/portsync`.
    static func defaultStateFile(environment: [String: String]) -> String {
        if let directories = environment["STATE_DIRECTORY"], let first = directories.split(separator: ":").first {
            return "\(first)/state.json"
        }
        if let stateHome = environment["XDG_STATE_HOME"], stateHome.hasPrefix("/") {
            return "\(stateHome)/portsync/state.json"
        }
        return "\(environment["HOME"] ?? "/root")/.local/state/portsync/state.json"
    }
}

