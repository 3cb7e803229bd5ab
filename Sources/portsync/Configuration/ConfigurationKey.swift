import HTTP
import Reactor

/// A problem with one value; the loader adds where the value came from.
struct InvalidValue: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// One key of the configuration interface: its section, name, type, flag and how it is
/// checked and stored. The file, `PORTSYNC_<SECTION>_<KEY>` and the flags all go through it.
struct ConfigurationKey: Sendable {
    enum Kind {
        case string
        case integer
        case boolean
        case stringArray
    }

    /// What `apply` may need besides the value.
    struct Context {
        /// Relative paths are taken relative to this directory: the configuration file's for
        /// keys in the file, the working directory for the environment and flags.
        let baseDirectory: String
    }

    /// How the key's current value is written in TOML.
    enum Rendering {
        case quoted(@Sendable (Configuration) -> String)
        case plain(@Sendable (Configuration) -> String)
        /// A key that may be left unset: nil is written as a comment.
        case optional(@Sendable (Configuration) -> String?)
    }

    let section: String
    let name: String
    let kind: Kind
    let flag: String?
    let current: Rendering
    let summary: String
    let apply: @Sendable (inout Configuration, TOMLValue, Context) throws(InvalidValue) -> Void

    var path: String { "\(section).\(name)" }

    /// The key's value in `configuration`, as TOML; nil: not set.
    func renderedValue(in configuration: Configuration) -> String? {
        switch current {
        case .quoted(let read): JSONValue.quoted(read(configuration))  // a JSON string is a TOML basic string
        case .plain(let read): read(configuration)
        case .optional(let read): read(configuration)
        }
    }
    var environmentName: String { "PORTSYNC_\(section.uppercased())_\(name.uppercased())" }

    /// A value from the environment or a flag, typed as the key wants it.
    func value(parsing text: String) throws(InvalidValue) -> TOMLValue {
        switch kind {
        case .string:
            return .string(text)
        case .integer:
            guard let number = Int(text.replacingUnderscores()), !text.isEmpty else {
                throw InvalidValue("\"\(text)\" is not a whole number")
            }
            return .integer(number)
        case .boolean:
            switch text.lowercased() {
            case "true", "yes", "1", "on": return .boolean(true)
            case "false", "no", "0", "off": return .boolean(false)
            default: throw InvalidValue("\"\(text)\" is not true or false")
            }
        case .stringArray:
            return try TOMLValue.stringArray(parsing: text)
        }
    }
}

// MARK: The keys

extension ConfigurationKey {
    static let all: [ConfigurationKey] = [
        ConfigurationKey(section: "source", name: "strategy", kind: .string, flag: "--strategy",
                         current: .quoted({ $0.source.strategy.rawValue }),
                         summary: SourceStrategy.allCases.map(\.rawValue).joined(separator: " | ")) { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard let strategy = SourceStrategy(rawValue: text) else {
                let names = SourceStrategy.allCases.map(\.rawValue)
                throw InvalidValue("\"\(text)\" is not a strategy (\(names.dropLast().joined(separator: ", ")) or \(names.last!))")
            }
            config.source.strategy = strategy
        },
        ConfigurationKey(section: "source", name: "auto_router", kind: .boolean, flag: nil,
                         current: .plain({ String($0.source.autoRouter) }),
                         summary: "with strategy = \"auto\": on a network with no tunnel, ask the default route's router with PCP (then NAT-PMP)") { config, value, _ throws(InvalidValue) in
            config.source.autoRouter = try value.boolean()
        },
        ConfigurationKey(section: "proton", name: "port_file", kind: .string, flag: "--port-file",
                         current: .quoted({ $0.proton.portFile }),
                         summary: "the ProtonVPN app's forwarded_port file") { config, value, context throws(InvalidValue) in
            let text = try value.string()
            if !text.isEmpty { config.proton.portFile = try absolutePath(text, context) }
        },
        ConfigurationKey(section: "natpmp", name: "interface", kind: .string, flag: "--interface",
                         current: .quoted({ $0.natpmp.interface }),
                         summary: "the VPN interface (proton0, wg0, tun0)") { config, value, _ throws(InvalidValue) in
            config.natpmp.interface = try interfaceName(try value.string())
        },
        ConfigurationKey(section: "natpmp", name: "gateway", kind: .string, flag: "--gateway",
                         current: .quoted({ $0.natpmp.gateway?.description ?? "" }),
                         summary: "the NAT-PMP gateway; empty: from the routes through the interface, else its peer address, else last byte 1") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            if text.isEmpty {
                config.natpmp.gateway = nil
            } else {
                guard let address = IPv4Address(text) else { throw InvalidValue("\"\(text)\" is not an IPv4 address") }
                config.natpmp.gateway = address
            }
        },
        ConfigurationKey(section: "natpmp", name: "lease_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.natpmp.leaseSeconds) }),
                         summary: "the mapping lifetime asked for") { config, value, _ throws(InvalidValue) in
            config.natpmp.leaseSeconds = try duration(value, in: 2...86_400)
        },
        ConfigurationKey(section: "natpmp", name: "renew_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.natpmp.renewSeconds) }),
                         summary: "how often the mapping is renewed") { config, value, _ throws(InvalidValue) in
            config.natpmp.renewSeconds = try duration(value, in: 1...86_400)
        },
        ConfigurationKey(section: "natpmp", name: "internal_port", kind: .integer, flag: nil,
                         current: .plain({ String($0.natpmp.internalPort) }),
                         summary: "internal port of the mapping; 0: the port in use when the tunnel comes up") { config, value, _ throws(InvalidValue) in
            let port = try value.integer()
            guard (0...65535).contains(port) else { throw InvalidValue("\(port) is not a port (0-65535)") }
            config.natpmp.internalPort = port
        },
        ConfigurationKey(section: "natpmp", name: "zero_internal_port", kind: .boolean, flag: nil,
                         current: .plain({ String($0.natpmp.zeroInternalPort) }),
                         summary: "send internal port 0 like ProtonVPN's natpmpc loop (strict gateways refuse it)") { config, value, _ throws(InvalidValue) in
            config.natpmp.zeroInternalPort = try value.boolean()
        },
        ConfigurationKey(section: "natpmp", name: "delete_on_exit", kind: .boolean, flag: nil,
                         current: .plain({ String($0.natpmp.deleteOnExit) }),
                         summary: "ask the gateway to drop the mappings when portsync stops") { config, value, _ throws(InvalidValue) in
            config.natpmp.deleteOnExit = try value.boolean()
        },
        ConfigurationKey(section: "natpmp", name: "recovery_command", kind: .string, flag: nil,
                         current: .quoted({ $0.natpmp.recoveryCommand }),
                         summary: "shell command run after recovery_after failed cycles while the tunnel is up") { config, value, _ throws(InvalidValue) in
            config.natpmp.recoveryCommand = try value.string()
        },
        ConfigurationKey(section: "natpmp", name: "recovery_after", kind: .integer, flag: nil,
                         current: .plain({ String($0.natpmp.recoveryAfter) }),
                         summary: "failed cycles in a row before the recovery command") { config, value, _ throws(InvalidValue) in
            let count = try value.integer()
            guard (1...1000).contains(count) else { throw InvalidValue("\(count) is out of range (1 to 1000)") }
            config.natpmp.recoveryAfter = count
        },
        ConfigurationKey(section: "natpmp", name: "recovery_cooldown_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.natpmp.recoveryCooldownSeconds) }),
                         summary: "least time between two runs of the recovery command") { config, value, _ throws(InvalidValue) in
            config.natpmp.recoveryCooldownSeconds = try duration(value, in: 10...86_400)
        },
        ConfigurationKey(section: "gluetun", name: "url", kind: .string, flag: "--gluetun-url",
                         current: .quoted({ $0.gluetun.url.description }),
                         summary: "Gluetun's control server") { config, value, _ throws(InvalidValue) in
            config.gluetun.url = try url(value)
        },
        ConfigurationKey(section: "gluetun", name: "api_key_file", kind: .string, flag: nil,
                         current: .quoted({ $0.gluetun.apiKeyFile }),
                         summary: "file holding the control server's API key") { config, value, context throws(InvalidValue) in
            config.gluetun.apiKeyFile = try optionalPath(value, context)
        },
        ConfigurationKey(section: "gluetun", name: "poll_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.gluetun.pollSeconds) }),
                         summary: "how often the control server is asked") { config, value, _ throws(InvalidValue) in
            config.gluetun.pollSeconds = try duration(value, in: 1...3_600)
        },
        ConfigurationKey(section: "gluetun", name: "port_file", kind: .string, flag: nil,
                         current: .quoted({ $0.gluetun.portFile }),
                         summary: "Gluetun's forwarded-port file, watched instead of polling") { config, value, context throws(InvalidValue) in
            config.gluetun.portFile = try optionalPath(value, context)
        },
        ConfigurationKey(section: "gluetun", name: "port_index", kind: .integer, flag: nil,
                         current: .plain({ String($0.gluetun.portIndex) }),
                         summary: "which of several forwarded ports (0 = the first)") { config, value, _ throws(InvalidValue) in
            let index = try portIndex(value, last: 15)
            config.gluetun.portIndex = index
        },
        ConfigurationKey(section: "gluetun", name: "username", kind: .string, flag: nil,
                         current: .quoted({ $0.gluetun.username }),
                         summary: "user name for the control server's basic authentication") { config, value, _ throws(InvalidValue) in
            config.gluetun.username = try value.string()
        },
        ConfigurationKey(section: "gluetun", name: "password_file", kind: .string, flag: nil,
                         current: .quoted({ $0.gluetun.passwordFile }),
                         summary: "file holding the basic-authentication password") { config, value, context throws(InvalidValue) in
            config.gluetun.passwordFile = try optionalPath(value, context)
        },
        ConfigurationKey(section: "daemon", name: "state_file", kind: .string, flag: "--state-file",
                         current: .quoted({ $0.daemon.stateFile }),
                         summary: "where the last applied port is remembered") { config, value, context throws(InvalidValue) in
            let text = try value.string()
            if !text.isEmpty { config.daemon.stateFile = try absolutePath(text, context) }
        },
        ConfigurationKey(section: "daemon", name: "log_level", kind: .string, flag: "--log-level",
                         current: .quoted({ $0.daemon.logLevel.name }),
                         summary: "error | warning | notice | info | debug") { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard let level = LogLevel(name: text) else {
                throw InvalidValue("\"\(text)\" is not a log level (error, warning, notice, info or debug)")
            }
            config.daemon.logLevel = level
        },
        ConfigurationKey(section: "static", name: "port", kind: .integer, flag: "--static-port",
                         current: .plain({ String($0.staticPort.port) }),
                         summary: "with strategy = \"static\": the port forwarded to you (AirVPN, TorGuard, a router rule)") { config, value, _ throws(InvalidValue) in
            let port = try value.integer()
            guard (1...65_535).contains(port) else { throw InvalidValue("\(port) is not a port (1 to 65535)") }
            config.staticPort.port = port
        },
        ConfigurationKey(section: "perfectprivacy", name: "interface", kind: .string, flag: nil,
                         current: .quoted({ $0.perfectPrivacy.interface }),
                         summary: "the tunnel whose address names Perfect Privacy's ports") { config, value, _ throws(InvalidValue) in
            config.perfectPrivacy.interface = try interfaceName(try value.string())
        },
        ConfigurationKey(section: "perfectprivacy", name: "port_index", kind: .integer, flag: nil,
                         current: .plain({ String($0.perfectPrivacy.portIndex) }),
                         summary: "which of the three ports (0: 10000 + the address's last 12 bits, 1: 20000 +, 2: 30000 +)") { config, value, _ throws(InvalidValue) in
            let index = try portIndex(value, last: 2)
            config.perfectPrivacy.portIndex = index
        },
        ConfigurationKey(section: "command", name: "argv", kind: .stringArray, flag: nil,
                         current: .plain({ TOMLValue.rendered($0.command.argv) }),
                         summary: "the program that prints the port and its arguments, e.g. [\"piactl\", \"get\", \"portforward\"]") { config, value, _ throws(InvalidValue) in
            config.command.argv = try hookCommand(value)
        },
        ConfigurationKey(section: "command", name: "stream", kind: .boolean, flag: nil,
                         current: .plain({ String($0.command.stream) }),
                         summary: "keep it running and read a port from each line it prints (piactl monitor portforward)") { config, value, _ throws(InvalidValue) in
            config.command.stream = try value.boolean()
        },
        ConfigurationKey(section: "command", name: "interval_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.command.intervalSeconds) }),
                         summary: "how often it is run (not with stream)") { config, value, _ throws(InvalidValue) in
            config.command.intervalSeconds = try duration(value, in: 5...86_400)
        },
        ConfigurationKey(section: "command", name: "timeout_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.command.timeoutSeconds) }),
                         summary: "a run still going after this is killed (not with stream)") { config, value, _ throws(InvalidValue) in
            config.command.timeoutSeconds = try duration(value, in: 1...600)
        },
        ConfigurationKey(section: "command", name: "port_index", kind: .integer, flag: nil,
                         current: .plain({ String($0.command.portIndex) }),
                         summary: "which of several ports it prints, one per line (0 = the first)") { config, value, _ throws(InvalidValue) in
            let index = try portIndex(value, last: 15)
            config.command.portIndex = index
        },
        ConfigurationKey(section: "privatevpn", name: "interface", kind: .string, flag: nil,
                         current: .quoted({ $0.privateVPN.interface }),
                         summary: "the OpenVPN tunnel whose address PrivateVPN is asked about, and the request leaves from") { config, value, _ throws(InvalidValue) in
            config.privateVPN.interface = try interfaceName(try value.string())
        },
        ConfigurationKey(section: "privatevpn", name: "url", kind: .string, flag: nil,
                         current: .quoted({ $0.privateVPN.url.description }),
                         summary: "PrivateVPN's port API (change it only for a test stand-in)") { config, value, _ throws(InvalidValue) in
            config.privateVPN.url = try url(value)
        },
        ConfigurationKey(section: "privatevpn", name: "nameserver", kind: .stringArray, flag: nil,
                         current: .plain({ TOMLValue.rendered($0.privateVPN.nameServers.map(\.description)) }),
                         summary: "the name servers the API's name is asked of, through the tunnel; []: resolv.conf's") { config, value, _ throws(InvalidValue) in
            config.privateVPN.nameServers = try tunnelNameServers(value)
        },
        ConfigurationKey(section: "daemon", name: "metrics_listen", kind: .string, flag: "--metrics-listen",
                         current: .quoted({ $0.daemon.metricsListen?.description ?? "" }),
                         summary: "address:port of the metrics endpoint; empty: off") { config, value, _ throws(InvalidValue) in
            config.daemon.metricsListen = try listenAddress(try value.string())
        },
    ] + tlsKeys(section: "gluetun", \.gluetun.tls) + tlsKeys(section: "privatevpn", \.privateVPN.tls) + clientKeys + hookKeys + piaKeys + pcpKeys + connectabilityKeys + notifyKeys

    static let sections: [String] = ["source", "proton", "natpmp", "gluetun", "static", "perfectprivacy", "command", "pia", "privatevpn", "qbittorrent", "transmission", "deluge", "hook", "daemon", "pcp", "connectability", "notify"]

    static func named(_ path: String) -> ConfigurationKey? {
        all.first { $0.path == path }
    }
}

// MARK: Checks shared by the keys

extension TOMLValue {
    func string() throws(InvalidValue) -> String {
        guard case .string(let text) = self else { throw InvalidValue("must be a string, not \(kindName)") }
        guard !text.contains("\0") else { throw InvalidValue("must not contain a NUL character") }
        return text
    }

    func boolean() throws(InvalidValue) -> Bool {
        guard case .boolean(let flag) = self else { throw InvalidValue("must be true or false, not \(kindName)") }
        return flag
    }

    func integer() throws(InvalidValue) -> Int {
        guard case .integer(let number) = self else { throw InvalidValue("must be a whole number, not \(kindName)") }
        return number
    }
}

func duration(_ value: TOMLValue, in range: ClosedRange<Int>) throws(InvalidValue) -> Int {
    let seconds = try value.integer()
    guard range.contains(seconds) else {
        throw InvalidValue("\(seconds) is out of range (\(range.lowerBound) to \(range.upperBound) seconds)")
    }
    return seconds
}

/// A `port_index`: which of a source's ports, 0 to `last`.
func portIndex(_ value: TOMLValue, last: Int) throws(InvalidValue) -> Int {
    let index = try value.integer()
    guard (0...last).contains(index) else { throw InvalidValue("\(index) is out of range (0 to \(last))") }
    return index
}

/// An http:// or https:// URL: a host name, an IP address (IPv6 in brackets), a port and a
/// base path.
func url(_ value: TOMLValue) throws(InvalidValue) -> HTTPURL {
    let text = try value.string()
    do {
        return try HTTPURL(parsing: text)
    } catch {
        throw InvalidValue(error.description)
    }
}

private func absolutePath(_ text: String, _ context: ConfigurationKey.Context) throws(InvalidValue) -> String {
    guard !text.contains(where: { $0.isNewline }) else { throw InvalidValue("path holds a line break") }
    if text.hasPrefix("/") { return text }
    if text.hasPrefix("~/") { throw InvalidValue("\"\(text)\": ~ is not expanded; write the full path") }
    return context.baseDirectory.hasSuffix("/") ? context.baseDirectory + text : "\(context.baseDirectory)/\(text)"
}

func optionalPath(_ value: TOMLValue, _ context: ConfigurationKey.Context) throws(InvalidValue) -> String {
    let text = try value.string()
    return text.isEmpty ? "" : try absolutePath(text, context)
}

/// The name servers a source asks through its tunnel: IPv4 addresses off this machine (the
/// queries leave from the tunnel's IPv4 address), at most 3 as in resolv.conf; a single string
/// is taken as a list of one.
func tunnelNameServers(_ value: TOMLValue) throws(InvalidValue) -> [IPv4Address] {
    let texts: [String]
    switch value {
    case .string(let text): texts = [text]
    case .stringArray(let list): texts = list
    default: throw InvalidValue("must be an array of IPv4 addresses like [\"10.0.0.243\"], not \(value.kindName)")
    }
    guard texts.count <= 3 else { throw InvalidValue("names \(texts.count) name servers; at most 3 are asked") }
    var addresses: [IPv4Address] = []
    for text in texts {
        guard let address = IPv4Address(text) else {
            throw InvalidValue("\"\(text.oneLine(limit: 60))\" is not an IPv4 address (the queries leave from the tunnel's IPv4 address)")
        }
        guard !address.isLoopback else { throw InvalidValue("\(address) is on this machine, not reached through the tunnel") }
        if !addresses.contains(address) { addresses.append(address) }
    }
    return addresses
}

func interfaceName(_ text: String) throws(InvalidValue) -> String {
    // IFNAMSIZ is 16 with the NUL; the kernel refuses "/", ":" and white space in names.
    guard !text.isEmpty else { throw InvalidValue("the interface name is empty") }
    guard text.utf8.count <= 15 else { throw InvalidValue("\"\(text)\" is longer than 15 bytes, the kernel's limit") }
    guard !text.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace }) else {
        throw InvalidValue("\"\(text)\" is not a valid interface name")
    }
    return text
}

/// "127.0.0.1:9834", "[::1]:9834", or a bare port (then on 127.0.0.1). Empty: off.
private func listenAddress(_ text: String) throws(InvalidValue) -> SocketAddress? {
    if text.isEmpty { return nil }
    // Digits only: UInt16("+80") would take the sign.
    func port(_ digits: Substring) -> UInt16? {
        digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) ? UInt16(digits) : nil
    }
    if let port = port(text[...]) {
        guard port > 0 else { throw InvalidValue("port 0 is not a port to listen on") }
        return .v4(IPv4Address(127, 0, 0, 1), port: port)
    }
    guard let colon = text.lastIndex(of: ":") else {
        throw InvalidValue("\"\(text)\" is not address:port (e.g. 127.0.0.1:9834)")
    }
    guard let port = port(text[text.index(after: colon)...]), port > 0 else {
        throw InvalidValue("\"\(text)\" has a bad port (1-65535)")
    }
    guard let address = SocketAddress(numericHost: String(text[..<colon]), port: port) else {
        throw InvalidValue("\"\(text[..<colon])\" is not a numeric IP address")
    }
    return address
}
