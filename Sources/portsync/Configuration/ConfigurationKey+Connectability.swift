import Coordination

extension Configuration {
    /// `[connectability]`: how often to look whether peers can reach the port, and whether to
    /// mend a listener that cannot take them.
    struct Connectability: Equatable {
        var intervalSeconds = 300
        var heal = true
        /// `check_url`: empty, no outside check.
        var checkURL = ""
        var tls = TLS()

        var monitor: ConnectabilityMonitor.Settings {
            ConnectabilityMonitor.Settings(interval: .seconds(intervalSeconds), followUps: [.seconds(15), .seconds(60)].filter { $0 < .seconds(intervalSeconds) },
                                           heal: heal)
        }
    }
}

extension ConfigurationKey {
    static let connectabilityKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "connectability", name: "interval_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.connectability.intervalSeconds) }),
                         summary: "how often to look whether peers can connect (also after every change, and at 15 s and 60 s while none has)") { config, value, _ throws(InvalidValue) in
            config.connectability.intervalSeconds = try duration(value, in: 1...86_400)
        },
        ConfigurationKey(section: "connectability", name: "heal", kind: .boolean, flag: nil,
                         current: .plain({ String($0.connectability.heal) }),
                         summary: "re-open a listener that peers cannot reach (qBittorrent: its port moved away and back), once per cause") { config, value, _ throws(InvalidValue) in
            config.connectability.heal = try value.boolean()
        },
        ConfigurationKey(section: "connectability", name: "check_url", kind: .string, flag: nil,
                         current: .quoted({ $0.connectability.checkURL }),
                         summary: "a service that dials the port from outside, e.g. \"https://check.example/{port}\" (JSON {\"open\": true} or the word open/closed); empty: none. It learns your address and port") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            if !text.isEmpty, let problem = OutsideCheck.Template.validate(text) { throw InvalidValue("\"\(text.oneLine(limit: 80))\" \(problem)") }
            config.connectability.checkURL = text
        },
    ] + tlsKeys(section: "connectability", \.connectability.tls)
}
