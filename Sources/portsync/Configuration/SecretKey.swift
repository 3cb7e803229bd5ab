import Domain

/// A secret a table takes: a key type of its own, never a value in the configuration file (more
/// than its owner may read that). It is read from the file its `<name>_file` key names, else
/// from systemd's credential `<label>-<name>` (`$CREDENTIALS_DIRECTORY`, or the unit's
/// `LoadCredential=` when `doctor` runs as root), else, for a kind's own table, from
/// `PORTSYNC_<SECTION>_<NAME>`.
struct SecretKey: Equatable, Sendable {
    static let password = SecretKey(name: "password", title: "password")
    static let apiKey = SecretKey(name: "api_key", title: "API key")
    static let token = SecretKey(name: "token", title: "token")
    static let all = [password, apiKey, token]

    /// `password`, `api_key`, `token`.
    let name: String
    /// How `portsync config` names it.
    let title: String

    var fileKey: String { "\(name)_file" }

    func credential(of label: String) -> String { "\(label)-\(name.replacing("_", with: "-"))" }

    func variable(of section: String) -> String { "PORTSYNC_\(section.uppercased())_\(name.uppercased())" }

    /// The tables that take secrets: `[gluetun]`, `[pia]`, `[notify]` and every client table, each
    /// with its secrets and the file each one's `_file` key names.
    static func tables(_ configuration: Configuration) -> [SecretTable] {
        let gluetun = configuration.gluetun
        return [SecretTable(section: "gluetun", label: "gluetun", isUnnamed: true, origins: configuration.origins,
                            secrets: [(.apiKey, gluetun.apiKeyFile), (.password, gluetun.passwordFile)]),
                SecretTable(section: "pia", label: "pia", isUnnamed: true, origins: configuration.origins,
                            secrets: [(.password, configuration.pia.passwordFile)]),
                SecretTable(section: "notify", label: "notify", isUnnamed: true, origins: configuration.origins,
                            secrets: [(.token, configuration.notify.tokenFile)])]
            + configuration.clients.map { client in
                SecretTable(section: client.kind.rawValue, label: client.label, isUnnamed: client.name == nil, origins: client.origins,
                            secrets: client.secretFiles)
            }
    }

    /// Every variable a secret may come from; set for a table that is not in use, it is still
    /// checked.
    static let variables: [String] = ["gluetun"].flatMap { [apiKey.variable(of: $0), password.variable(of: $0)] } + [password.variable(of: "pia"), token.variable(of: "notify")]
        + ClientKind.allCases.flatMap { kind in kind.secrets.map { $0.variable(of: kind.rawValue) } }
}

/// One table's secrets.
struct SecretTable {
    let section: String
    let label: String
    /// A kind's own table: its secrets may come from variables too.
    let isUnnamed: Bool
    let origins: [String: String]
    let secrets: [(key: SecretKey, file: String)]
}

extension ClientKind {
    var secrets: [SecretKey] { self == .qbittorrent ? [.password, .apiKey] : [.password] }
}

extension ClientSection {
    /// Each secret with the file its `_file` key names ("" when unset).
    var secretFiles: [(key: SecretKey, file: String)] {
        kind.secrets.map { key in (key, key == .apiKey ? qbittorrent?.apiKeyFile ?? "" : passwordFile) }
    }
}

/// The secrets the configuration points at, read when the configuration is loaded, by table
/// label and secret name.
struct Credentials: Equatable {
    private var secrets: [String: Secret] = [:]

    subscript(label: String, key: SecretKey) -> Secret? {
        get { secrets["\(label).\(key.name)"] }
        set { secrets["\(label).\(key.name)"] = newValue }
    }

    /// Every secret read, for a `Redaction`.
    var all: [Secret] { secrets.values.sorted { $0.value < $1.value } }

    var qbittorrentPassword: Secret? { self["qbittorrent", .password] }
    var qbittorrentAPIKey: Secret? { self["qbittorrent", .apiKey] }
    var gluetunAPIKey: Secret? { self["gluetun", .apiKey] }
    var gluetunPassword: Secret? { self["gluetun", .password] }
    var piaPassword: Secret? { self["pia", .password] }
    var notifyToken: Secret? { self["notify", .token] }
}
