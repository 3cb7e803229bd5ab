import Reactor

extension Configuration {
    /// `[pcp]`: the keys of `[natpmp]` that PCP shares, and its fallback.
    struct PCP: Equatable {
        /// The interface that faces the router (or a tunnel); empty: the default route's, with
        /// its gateway (`auto` asks it only while there is no tunnel).
        var interface = ""
        /// nil: found from the interface, as for NAT-PMP (`GatewayRule`).
        var gateway: IPv4Address?
        var leaseSeconds = 7200
        /// 0: the port in use when the interface comes up.
        var internalPort = 0
        var natpmpFallback = true
        var deleteOnExit = false
        var ipv6 = true
    }
}

extension ConfigurationKey {
    static let pcpKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "pcp", name: "interface", kind: .string, flag: nil,
                         current: .quoted({ $0.pcp.interface }),
                         summary: "the interface that faces the router (eth0, wlan0) or a tunnel; empty: the default route's, with its gateway") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            config.pcp.interface = text.isEmpty ? "" : try interfaceName(text)
        },
        ConfigurationKey(section: "pcp", name: "gateway", kind: .string, flag: nil,
                         current: .quoted({ $0.pcp.gateway?.description ?? "" }),
                         summary: "the PCP gateway; empty: from the routes through the interface, else its peer address, else last byte 1") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            if text.isEmpty {
                config.pcp.gateway = nil
            } else {
                guard let address = IPv4Address(text) else { throw InvalidValue("\"\(text)\" is not an IPv4 address") }
                config.pcp.gateway = address
            }
        },
        ConfigurationKey(section: "pcp", name: "lease_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.pcp.leaseSeconds) }),
                         summary: "the mapping lifetime asked for; renewed at half what the gateway grants") { config, value, _ throws(InvalidValue) in
            config.pcp.leaseSeconds = try duration(value, in: 2...86_400)
        },
        ConfigurationKey(section: "pcp", name: "internal_port", kind: .integer, flag: nil,
                         current: .plain({ String($0.pcp.internalPort) }),
                         summary: "internal port of the mapping; 0: the port in use when the interface comes up") { config, value, _ throws(InvalidValue) in
            let port = try value.integer()
            guard (0...65535).contains(port) else { throw InvalidValue("\(port) is not a port (0-65535)") }
            config.pcp.internalPort = port
        },
        ConfigurationKey(section: "pcp", name: "natpmp_fallback", kind: .boolean, flag: nil,
                         current: .plain({ String($0.pcp.natpmpFallback) }),
                         summary: "ask with NAT-PMP when the gateway does not speak PCP") { config, value, _ throws(InvalidValue) in
            config.pcp.natpmpFallback = try value.boolean()
        },
        ConfigurationKey(section: "pcp", name: "delete_on_exit", kind: .boolean, flag: nil,
                         current: .plain({ String($0.pcp.deleteOnExit) }),
                         summary: "ask the router to drop the mappings when portsync stops (not on a reload)") { config, value, _ throws(InvalidValue) in
            config.pcp.deleteOnExit = try value.boolean()
        },
        ConfigurationKey(section: "pcp", name: "ipv6", kind: .boolean, flag: nil,
                         current: .plain({ String($0.pcp.ipv6) }),
                         summary: "also open the clients' port on the interface's IPv6 address with PCP over IPv6, where the gateway has an IPv6 route") { config, value, _ throws(InvalidValue) in
            config.pcp.ipv6 = try value.boolean()
        },
    ]
}
