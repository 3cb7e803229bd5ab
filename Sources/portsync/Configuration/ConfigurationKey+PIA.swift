import Domain
import HTTP
import Reactor
import Watchers

extension Configuration {
    /// `[pia]`: PIA's port forwarding, used with `strategy = "pia"`.
    struct PIA: Equatable {
        var username = ""
        var passwordFile = ""
        /// The server's common name, the name its certificate is checked for.
        var serverName = ""
        /// nil: the tunnel's gateway.
        var serverAddress: IPv4Address?
        var interface = "pia"
        /// "": PIA's CA, built in.
        var caFile = ""
        var tokenURL = PIASettings.tokenURL
        /// Who the token endpoint's name is asked of, through the tunnel; empty: resolv.conf's.
        var nameServers = PIASettings.defaultNameServers
    }
}

extension ConfigurationKey {
    /// `[pia]`.
    static let piaKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "pia", name: "username", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.username }),
                         summary: "the PIA account (p1234567)") { config, value, _ throws(InvalidValue) in
            config.pia.username = try value.string()
        },
        ConfigurationKey(section: "pia", name: "password_file", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.passwordFile }),
                         summary: "file holding the PIA account's password") { config, value, context throws(InvalidValue) in
            config.pia.passwordFile = try optionalPath(value, context)
        },
        ConfigurationKey(section: "pia", name: "server_name", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.serverName }),
                         summary: "the server's common name, as in PIA's server list (e.g. \"amsterdam401\")") { config, value, _ throws(InvalidValue) in
            let name = try value.string()
            guard name.utf8.allSatisfy({ HTTPSyntax.isTokenByte($0) && $0 != UInt8(ascii: ":") }) else {
                throw InvalidValue("\"\(name.oneLine(limit: 60))\" is not a server name (letters, digits, - and . only)")
            }
            config.pia.serverName = name
        },
        ConfigurationKey(section: "pia", name: "server_address", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.serverAddress?.description ?? "" }),
                         summary: "the WireGuard server's IPv4 address (its Endpoint); empty: the tunnel's gateway (OpenVPN)") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            if text.isEmpty {
                config.pia.serverAddress = nil
            } else {
                guard let address = IPv4Address(text) else { throw InvalidValue("\"\(text.oneLine(limit: 60))\" is not an IPv4 address") }
                config.pia.serverAddress = address
            }
        },
        ConfigurationKey(section: "pia", name: "interface", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.interface }),
                         summary: "the VPN interface (wg-quick up pia: pia; OpenVPN: tun0)") { config, value, _ throws(InvalidValue) in
            config.pia.interface = try interfaceName(try value.string())
        },
        ConfigurationKey(section: "pia", name: "ca_file", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.caFile }),
                         summary: "a CA for the server and the token endpoint instead of PIA's built-in one (tests)") { config, value, context throws(InvalidValue) in
            config.pia.caFile = try optionalPath(value, context)
        },
        ConfigurationKey(section: "pia", name: "token_url", kind: .string, flag: nil,
                         current: .quoted({ $0.pia.tokenURL.description }),
                         summary: "where the token is asked (tests)") { config, value, _ throws(InvalidValue) in
            let tokenURL = try url(value)
            guard tokenURL.scheme == .https else { throw InvalidValue("must be https: the password goes to it") }
            config.pia.tokenURL = tokenURL
        },
        ConfigurationKey(section: "pia", name: "nameserver", kind: .stringArray, flag: nil,
                         current: .plain({ TOMLValue.rendered($0.pia.nameServers.map(\.description)) }),
                         summary: "the name servers the token endpoint's name is asked of, through the tunnel (PIA's own); [] for resolv.conf's") { config, value, _ throws(InvalidValue) in
            config.pia.nameServers = try tunnelNameServers(value)
        },
    ]
}

extension ConfigurationLoader {
    /// `strategy = "pia"` needs the account and the server's name.
    static func checkPIA(_ configuration: Configuration, _ credentials: Credentials) throws(ConfigurationError) {
        guard configuration.source.strategy == .pia else { return }
        let origin = configuration.origins["source.strategy"] ?? ""
        let pia = configuration.pia
        if pia.username.isEmpty { throw ConfigurationError(origin, "strategy \"pia\" needs the account: set [pia] username") }
        if credentials.piaPassword == nil {
            throw ConfigurationError(origin, "strategy \"pia\" needs the account's password: set [pia] password_file (or the credential pia-password)")
        }
        if pia.serverName.isEmpty {
            throw ConfigurationError(origin, "strategy \"pia\" needs the server's common name: set [pia] server_name")
        }
    }
}

extension PIASettings {
    /// The payload and signature are kept beside the state file.
    init?(_ configuration: Configuration, _ credentials: Credentials) {
        let pia = configuration.pia
        guard let password = credentials.piaPassword else { return nil }
        self.init(username: pia.username, password: password, serverName: pia.serverName, serverAddress: pia.serverAddress,
                  interface: pia.interface, caFile: pia.caFile.isEmpty ? nil : pia.caFile, tokenURL: pia.tokenURL,
                  nameServers: pia.nameServers, signatureFile: "\(configuration.daemon.stateFile).pia")
    }
}
