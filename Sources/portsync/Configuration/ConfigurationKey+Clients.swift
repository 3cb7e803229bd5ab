import HTTP

// MARK: [transmission] and [deluge]

extension ConfigurationKey {
    /// The keys of `[transmission]` and `[deluge]`, named as in `[qbittorrent]`, and every
    /// client's `port_index`. Deluge's Web UI has no user name; Transmission re-announces by
    /// itself, so it has no `reannounce`.
    static let clientKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "qbittorrent", name: "port_index", kind: .integer, flag: nil,
                         current: .optional({ $0.qbittorrent.portIndex.map(String.init) }),
                         summary: portIndexSummary) { config, value, _ throws(InvalidValue) in
            config.qbittorrent.portIndex = try portIndex(value)
        },
        url(.transmission, "Transmission's RPC (its path /transmission/rpc is added)"),
        username(.transmission, "RPC user name"),
        passwordFile(.transmission, "file holding the RPC password"),
        checkSeconds(.transmission),
        portIndex(.transmission),
        url(.deluge, "Deluge's Web UI (its path /json is added unless the URL ends in it)"),
        passwordFile(.deluge, "file holding the Web UI password"),
        checkSeconds(.deluge),
        portIndex(.deluge),
        ConfigurationKey(section: "deluge", name: "reannounce", kind: .boolean, flag: nil,
                         current: .plain({ String($0.deluge.reannounce) }),
                         summary: "tell the trackers after a verified change (at most once a minute)") { config, value, _ throws(InvalidValue) in
            config.deluge.reannounce = try value.boolean()
        },
    ]

    private static let portIndexSummary = "which of Gluetun's forwarded ports (0 = the first); unset: the one [gluetun] port_index picks"

    private static func portIndex(_ kind: ClientKind) -> ConfigurationKey {
        ConfigurationKey(section: kind.rawValue, name: "port_index", kind: .integer, flag: nil,
                         current: .optional({ $0[client: kind].portIndex.map(String.init) }),
                         summary: portIndexSummary) { config, value, _ throws(InvalidValue) in
            config[client: kind].portIndex = try portIndex(value)
        }
    }

    private static func portIndex(_ value: TOMLValue) throws(InvalidValue) -> Int {
        let index = try value.integer()
        guard (0...15).contains(index) else { throw InvalidValue("\(index) is out of range (0 to 15)") }
        return index
    }

    private static func url(_ kind: ClientKind, _ summary: String) -> ConfigurationKey {
        return ConfigurationKey(section: kind.rawValue, name: "url", kind: .string, flag: nil,
                                current: .quoted({ $0[client: kind].url.description }),
                                summary: summary) { config, value, _ throws(InvalidValue) in
            config[client: kind].url = try portsync.url(value)
        }
    }

    private static func username(_ kind: ClientKind, _ summary: String) -> ConfigurationKey {
        return ConfigurationKey(section: kind.rawValue, name: "username", kind: .string, flag: nil,
                                current: .quoted({ $0[client: kind].username }),
                                summary: summary) { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard !text.contains(where: { $0.isNewline || $0 == ":" }) else { throw InvalidValue("user name holds a line break or a colon") }
            config[client: kind].username = text
        }
    }

    private static func passwordFile(_ kind: ClientKind, _ summary: String) -> ConfigurationKey {
        return ConfigurationKey(section: kind.rawValue, name: "password_file", kind: .string, flag: nil,
                                current: .quoted({ $0[client: kind].passwordFile }),
                                summary: summary) { config, value, context throws(InvalidValue) in
            config[client: kind].passwordFile = try optionalPath(value, context)
        }
    }

    private static func checkSeconds(_ kind: ClientKind) -> ConfigurationKey {
        return ConfigurationKey(section: kind.rawValue, name: "check_seconds", kind: .integer, flag: nil,
                                current: .plain({ String($0[client: kind].checkSeconds) }),
                                summary: "how often the port is checked for drift") { config, value, _ throws(InvalidValue) in
            config[client: kind].checkSeconds = try duration(value, in: 10...86_400)
        }
    }
}
