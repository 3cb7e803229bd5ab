import HTTP

/// One key of a client table, applied to that table's own values: one key serves
/// `[qbittorrent]` and every `[qbittorrent.NAME]`. The kind's keys are made once per kind
/// (`ClientKind.keys`); `ConfigurationKey.all` holds them for the unnamed tables.
struct ClientKey: Sendable {
    enum Rendering: Sendable {
        case quoted(@Sendable (ClientSection) -> String)
        case plain(@Sendable (ClientSection) -> String)
        /// A key that may be left unset: nil is written as a comment.
        case optional(@Sendable (ClientSection) -> String?)
    }

    let name: String
    let kind: ConfigurationKey.Kind
    /// Its flag, for the unnamed table only.
    var flag: String? = nil
    let current: Rendering
    let summary: String
    let apply: @Sendable (inout ClientSection, TOMLValue, ConfigurationKey.Context) throws(InvalidValue) -> Void

    /// The key's value in `section`, as TOML; nil: not set.
    func renderedValue(in section: ClientSection) -> String? {
        switch current {
        case .quoted(let read): JSONValue.quoted(read(section))
        case .plain(let read): read(section)
        case .optional(let read): read(section)
        }
    }

    /// The same key for the kind's own table, reached through the whole configuration.
    func lifted(_ kind: ClientKind) -> ConfigurationKey {
        let rendering: ConfigurationKey.Rendering = switch current {
        case .quoted(let read): .quoted { read($0[unnamed: kind]) }
        case .plain(let read): .plain { read($0[unnamed: kind]) }
        case .optional(let read): .optional { read($0[unnamed: kind]) }
        }
        let apply = apply
        return ConfigurationKey(section: kind.rawValue, name: name, kind: self.kind, flag: flag, current: rendering,
                                summary: summary) { config, value, context throws(InvalidValue) in
            try apply(&config[unnamed: kind], value, context)
        }
    }
}

extension ClientKind {
    /// This kind's keys, in the order `portsync config` prints them. Deluge's Web UI has no
    /// user name; Transmission re-announces by itself, so it has no `reannounce`; only
    /// qBittorrent takes an API key and binds to an interface.
    var keys: [ClientKey] {
        switch self {
        case .qbittorrent: Self.qbittorrentKeys
        case .transmission: Self.transmissionKeys
        case .deluge: Self.delugeKeys
        }
    }

    func key(named name: String) -> ClientKey? {
        keys.first { $0.name == name }
    }

    private static let qbittorrentKeys: [ClientKey] = [
        url("qBittorrent's WebUI", flag: "--qbittorrent-url"),
        ClientKey(name: "username", kind: .string, flag: "--username", current: .quoted({ $0.qbittorrent?.username ?? "" }),
                  summary: "WebUI user name") { section, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard !text.contains(where: { $0.isNewline }) else { throw InvalidValue("user name holds a line break") }
            try section.changeQBittorrent { $0.username = text }
        },
        passwordFile("file holding the WebUI password", flag: "--password-file"),
        ClientKey(name: "api_key_file", kind: .string, flag: "--api-key-file", current: .quoted({ $0.qbittorrent?.apiKeyFile ?? "" }),
                  summary: "file holding a WebUI API key (qBittorrent 5.2+)") { section, value, context throws(InvalidValue) in
            let path = try optionalPath(value, context)
            try section.changeQBittorrent { $0.apiKeyFile = path }
        },
        ClientKey(name: "bind_interface", kind: .boolean, flag: "--bind-interface", current: .plain({ String($0.qbittorrent?.bindInterface ?? false) }),
                  summary: "also bind qBittorrent to the source's interface (its table's interface; [natpmp].interface for a source without one)") { section, value, _ throws(InvalidValue) in
            let flag = try value.boolean()
            try section.changeQBittorrent { $0.bindInterface = flag }
        },
        ClientKey(name: "disable_upnp", kind: .boolean, current: .plain({ String($0.qbittorrent?.disableUPnP ?? true) }),
                  summary: "turn qBittorrent's own UPnP/NAT-PMP off") { section, value, _ throws(InvalidValue) in
            let flag = try value.boolean()
            try section.changeQBittorrent { $0.disableUPnP = flag }
        },
        checkSeconds,
        portIndex,
        reannounce("tell the trackers after a change of port (at most once a minute)"),
    ] + tlsKeys

    private static let transmissionKeys: [ClientKey] = [
        url("Transmission's RPC (its path /transmission/rpc is added)"),
        ClientKey(name: "username", kind: .string, current: .quoted({ $0.torrentClient?.username ?? "" }),
                  summary: "RPC user name") { section, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard !text.contains(where: { $0.isNewline || $0 == ":" }) else { throw InvalidValue("user name holds a line break or a colon") }
            try section.changeTorrentClient { $0.username = text }
        },
        passwordFile("file holding the RPC password"),
        checkSeconds,
        portIndex,
    ] + tlsKeys

    private static let delugeKeys: [ClientKey] = [
        url("Deluge's Web UI (its path /json is added unless the URL ends in it)"),
        passwordFile("file holding the Web UI password"),
        checkSeconds,
        portIndex,
        reannounce("tell the trackers after a verified change (at most once a minute)"),
    ] + tlsKeys

    private static func url(_ summary: String, flag: String? = nil) -> ClientKey {
        ClientKey(name: "url", kind: .string, flag: flag, current: .quoted({ $0.url.description }),
                  summary: summary) { section, value, _ throws(InvalidValue) in
            let url = try portsync.url(value)
            try section.changeQBittorrent { $0.url = url }
            try section.changeTorrentClient { $0.url = url }
        }
    }

    private static func passwordFile(_ summary: String, flag: String? = nil) -> ClientKey {
        ClientKey(name: "password_file", kind: .string, flag: flag, current: .quoted({ $0.passwordFile }),
                  summary: summary) { section, value, context throws(InvalidValue) in
            let path = try optionalPath(value, context)
            try section.changeQBittorrent { $0.passwordFile = path }
            try section.changeTorrentClient { $0.passwordFile = path }
        }
    }

    private static let checkSeconds = ClientKey(
        name: "check_seconds", kind: .integer,
        current: .plain({ String($0.qbittorrent?.checkSeconds ?? $0.torrentClient?.checkSeconds ?? 0) }),
        summary: "how often the port is checked for drift") { section, value, _ throws(InvalidValue) in
        let seconds = try duration(value, in: 10...86_400)
        try section.changeQBittorrent { $0.checkSeconds = seconds }
        try section.changeTorrentClient { $0.checkSeconds = seconds }
    }

    private static let portIndex = ClientKey(
        name: "port_index", kind: .integer, current: .optional({ $0.portIndex.map(String.init) }),
        summary: "which of the source's forwarded ports (Gluetun's, Perfect Privacy's; 0 = the first); unset: the one the source's port_index picks") { section, value, _ throws(InvalidValue) in
        let index = try portsync.portIndex(value, last: 15)
        try section.changeQBittorrent { $0.portIndex = index }
        try section.changeTorrentClient { $0.portIndex = index }
    }

    private static func reannounce(_ summary: String) -> ClientKey {
        ClientKey(name: "reannounce", kind: .boolean,
                  current: .plain({ String($0.qbittorrent?.reannounce ?? $0.torrentClient?.reannounce ?? true) }),
                  summary: summary) { section, value, _ throws(InvalidValue) in
            let flag = try value.boolean()
            try section.changeQBittorrent { $0.reannounce = flag }
            try section.changeTorrentClient { $0.reannounce = flag }
        }
    }

    private static let tlsKeys: [ClientKey] = TLSKey.all.map { key in
        ClientKey(name: key.name, kind: key.kind, current: key.rendering { $0.tls }, summary: key.summary) {
            section, value, context throws(InvalidValue) in
            try section.changeTLS { tls throws(InvalidValue) in try key.apply(&tls, value, context) }
        }
    }
}

extension ConfigurationKey {
    /// Every kind's keys, for its unnamed table.
    static let clientKeys: [ConfigurationKey] = ClientKind.allCases.flatMap { kind in kind.keys.map { $0.lifted(kind) } }
}
