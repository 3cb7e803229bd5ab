import Domain
import Glibc
import HTTP
import Reactor

/// A setting given on the command line, already tied to its key.
struct FlagSetting: Equatable {
    let keyPath: String
    let text: String
    /// The flag as typed, for messages: "--gateway".
    let origin: String
}

struct LoadedConfiguration: Equatable {
    var configuration: Configuration
    var credentials: Credentials
    /// Problems that do not stop the daemon (a secret file others can read).
    var warnings: [String]
    /// The systemd unit whose credentials were used in place of `$CREDENTIALS_DIRECTORY`.
    var serviceCredentials: ServiceCredentials? = nil
}

/// Builds the configuration: defaults, then the file, then `PORTSYNC_*` variables, then flags;
/// then the checks that span keys; then the secrets. The first problem stops it, named with
/// its origin.
struct ConfigurationLoader {
    var environment: [String: String]
    var userID: UInt32
    var workingDirectory: String
    /// `--config`.
    var explicitFile: String?
    var flags: [FlagSetting] = []
    /// What a systemd unit hands its service, used as `$CREDENTIALS_DIRECTORY` when that is not
    /// set: `doctor` run by root checks with the service's secrets.
    var serviceCredentials: ServiceCredentials?

    /// Variables under PORTSYNC_ that are not configuration keys.
    static let configFileVariable = "PORTSYNC_CONFIG"
    static var secretVariables: [String] { SecretKey.variables }

    func load() throws(ConfigurationError) -> LoadedConfiguration {
        var configuration = Configuration.defaults(environment: environment, userID: userID)
        if let path = try configurationFile() {
            configuration.file = path
            try applyFile(at: path, to: &configuration)
        }
        try applyEnvironment(to: &configuration)
        let here = ConfigurationKey.Context(baseDirectory: workingDirectory)
        for flag in flags {
            guard let key = ConfigurationKey.named(flag.keyPath) else {
                throw ConfigurationError(flag.origin, "unknown setting \"\(flag.keyPath)\"\(Suggestion.text(for: flag.keyPath, among: ConfigurationKey.all.map(\.path)))")
            }
            try apply(key, origin: flag.origin, to: &configuration, context: here) { () throws(InvalidValue) in
                try key.value(parsing: flag.text)
            }
        }
        try checkAcrossKeys(configuration)
        var warnings = tlsWarnings(configuration) + metricsWarnings(configuration) + sudoWarnings(configuration)
            + [ForeignEnvironment.warning(environment)].compactMap { $0 }
        let credentials = try loadCredentials(configuration, warnings: &warnings)
        try Self.checkPIA(configuration, credentials)
        try Self.checkNotify(configuration, credentials)
        return LoadedConfiguration(configuration: configuration, credentials: credentials, warnings: warnings,
                                   serviceCredentials: environment["CREDENTIALS_DIRECTORY"] == nil ? serviceCredentials : nil)
    }

    // MARK: The file

    /// `--config`, else `$PORTSYNC_CONFIG`, else the first that exists of
    /// `$XDG_CONFIG_HOME/portsync/config.toml` (or `~/.config/…`) and `/etc/portsync/config.toml`.
    func configurationFile() throws(ConfigurationError) -> String? {
        for (path, origin) in [(explicitFile, "--config"), (environment[Self.configFileVariable], Self.configFileVariable)] {
            guard let path else { continue }
            guard FileContents.exists(path) else { throw ConfigurationError(origin, "\(path): no such file") }
            return path
        }
        return searchPath.first(where: FileContents.exists)
    }

    var searchPath: [String] {
        let configHome = environment["XDG_CONFIG_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? environment["HOME"].map { "\($0)/.config" }
        return (configHome.map { ["\($0)/portsync/config.toml"] } ?? []) + ["/etc/portsync/config.toml"]
    }

    private func applyFile(at path: String, to configuration: inout Configuration) throws(ConfigurationError) {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path)
        } catch {
            throw ConfigurationError(path, "cannot read: \(error)")
        }
        // A UTF-8 byte order mark, which some Windows editors write, is not part of the TOML.
        let body = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes.dropFirst(3) : bytes[...]
        guard let text = String(validating: body, as: UTF8.self) else {
            throw ConfigurationError(path, "is not UTF-8 text")
        }
        let document = try TOMLDocument.parse(text, fileName: path)
        if let format = ForeignConfiguration.detect(document) {
            throw ConfigurationError(path, ForeignConfiguration.refusal(format, path: path))
        }
        for table in document.tables {
            try addTable(table.name, origin: "\(path):\(table.line)", to: &configuration)
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : workingDirectory
        let context = ConfigurationKey.Context(baseDirectory: directory.isEmpty ? "/" : directory)
        for entry in document.entries {
            let origin = "\(path):\(entry.line)"
            guard !entry.table.isEmpty else {
                throw ConfigurationError(origin, "key \"\(entry.key)\" is outside any table\(homeHint(entry.key))")
            }
            let named = configuration.clientSections.firstIndex { $0.name != nil && $0.label == entry.table }
            let section = named.map { configuration.clientSections[$0].kind.rawValue } ?? entry.table
            if SecretKey.all.contains(where: { $0.name == entry.key }), ConfigurationKey.named("\(section).\(entry.key)_file") != nil {
                throw ConfigurationError(origin, "a secret is not read from the configuration file, which more than its owner may read: put it alone in a file (chmod 600) and set \(entry.key)_file, or use $CREDENTIALS_DIRECTORY\(entry.table == section ? " or PORTSYNC_\(section.uppercased())_\(entry.key.uppercased())" : "")")
            }
            guard let key = ConfigurationKey.named("\(section).\(entry.key)") else {
                let siblings = ConfigurationKey.all.filter { $0.section == section }.map(\.name)
                let hint = Suggestion.text(for: entry.key, among: siblings)
                throw ConfigurationError(origin, "unknown key \"\(entry.key)\" in [\(entry.table)]\(hint.isEmpty ? homeHint(entry.key) : hint)")
            }
            if let named, let clientKey = configuration.clientSections[named].kind.key(named: entry.key) {
                // A named section's keys are those of its kind, applied to its own values.
                try apply(clientKey, origin: origin, to: &configuration.clientSections[named], context: context, value: entry.value)
            } else {
                try apply(key, origin: origin, to: &configuration, context: context) { () throws(InvalidValue) in entry.value }
            }
        }
    }

    /// A table of the file: a section (`[natpmp]`), or a named client (`[qbittorrent.movies]`).
    private func addTable(_ name: String, origin: String, to configuration: inout Configuration) throws(ConfigurationError) {
        if ConfigurationKey.sections.contains(name) {
            if ClientKind(rawValue: name) != nil { configuration.presentSections.insert(name) }
            return
        }
        let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
        let kinds = ClientKind.allCases.map(\.rawValue)
        guard parts.count == 2, let kind = ClientKind(rawValue: parts[0]) else {
            let hint = parts.count == 2
                ? Suggestion.text(for: parts[0], among: kinds, format: { "[\($0).\(parts[1])]" })
                : Suggestion.text(for: name, among: ConfigurationKey.sections, format: { "[\($0)]" })
            let what = parts.count == 2 && ConfigurationKey.sections.contains(parts[0])
                ? "[\(parts[0])] has no named instances; only \(kinds.map { "[\($0).NAME]" }.joined(separator: ", ")) do"
                : "unknown table [\(name)]\(hint)"
            throw ConfigurationError(origin, what)
        }
        configuration.clientSections.append(ClientSection(kind, name: parts[1]))
    }

    /// " (it belongs in [natpmp])" when the key exists in another section.
    private func homeHint(_ name: String) -> String {
        guard let home = ConfigurationKey.all.first(where: { $0.name == name }) else { return "" }
        return " (it belongs in [\(home.section)])"
    }

    // MARK: The environment

    private func applyEnvironment(to configuration: inout Configuration) throws(ConfigurationError) {
        let context = ConfigurationKey.Context(baseDirectory: workingDirectory)
        for (name, text) in environment.sorted(by: { $0.key < $1.key }) where name.hasPrefix("PORTSYNC_") {
            if name == Self.configFileVariable || Self.secretVariables.contains(name) { continue }
            guard let key = ConfigurationKey.all.first(where: { $0.environmentName == name }) else {
                let known = ConfigurationKey.all.map(\.environmentName) + Self.secretVariables + [Self.configFileVariable]
                throw ConfigurationError(name, "unknown setting\(Suggestion.text(for: name, among: known))")
            }
            try apply(key, origin: name, to: &configuration, context: context) { () throws(InvalidValue) in
                try key.value(parsing: text)
            }
        }
    }

    // MARK: Applying one value

    private func apply(_ key: ConfigurationKey, origin: String, to configuration: inout Configuration,
                       context: ConfigurationKey.Context,
                       value: () throws(InvalidValue) -> TOMLValue) throws(ConfigurationError) {
        do {
            try key.apply(&configuration, try value(), context)
        } catch {
            let subject = origin.hasPrefix("PORTSYNC_") || origin.hasPrefix("--") ? "" : "\(key.name) "
            throw ConfigurationError(origin, "\(subject)\(error.message)")
        }
        configuration.origins[key.path] = origin
        if ClientKind(rawValue: key.section) != nil { configuration.presentSections.insert(key.section) }
    }

    /// A key of a named client table, applied to that table alone.
    private func apply(_ key: ClientKey, origin: String, to section: inout ClientSection, context: ConfigurationKey.Context,
                       value: TOMLValue) throws(ConfigurationError) {
        do {
            try key.apply(&section, value, context)
        } catch {
            throw ConfigurationError(origin, "\(key.name) \(error.message)")
        }
        section.origins["\(section.kind.rawValue).\(key.name)"] = origin
    }

    private func checkAcrossKeys(_ configuration: Configuration) throws(ConfigurationError) {
        // Only Gluetun and Perfect Privacy forward several ports; the other sources name one.
        for client in configuration.clients where !configuration.source.strategy.forwardsSeveralPorts {
            let key = "\(client.kind.rawValue).port_index"
            if let origin = client.origins[key] {
                throw ConfigurationError(origin, "port_index in [\(client.label)] needs a [source] strategy that forwards several ports (gluetun, perfectprivacy or command)")
            }
        }
        if configuration.source.strategy == .command, configuration.command.argv.isEmpty {
            throw ConfigurationError(configuration.origins["source.strategy"] ?? "",
                                     "strategy \"command\" needs the program that prints the port: set [command] argv")
        }
        if configuration.source.strategy == .staticPort, configuration.staticPort.port == 0 {
            throw ConfigurationError(configuration.origins["source.strategy"] ?? "",
                                     "strategy \"static\" needs the port forwarded to you: set [static] port")
        }
        let natpmp = configuration.natpmp
        if natpmp.renewSeconds >= natpmp.leaseSeconds {
            let origin = configuration.origins["natpmp.renew_seconds"] ?? configuration.origins["natpmp.lease_seconds"] ?? ""
            throw ConfigurationError(origin, "renew_seconds (\(natpmp.renewSeconds)) must be shorter than lease_seconds (\(natpmp.leaseSeconds)), or the mapping lapses between renewals")
        }
        if configuration.hook.command.isEmpty, let origin = configuration.origins["hook.timeout_seconds"] {
            throw ConfigurationError(origin, "[hook] has timeout_seconds but no command")
        }
        for server in Self.servers(configuration) where server.tls.settingsCount > 1 {
            let origin = ["ca_file", "tls_fingerprint", "tls_verify"].compactMap { server.origins["\(server.section).\($0)"] }.last ?? ""
            throw ConfigurationError(origin, "set only one of [\(server.label)].ca_file, tls_fingerprint and tls_verify = false")
        }
    }

    /// Every https-capable server in use: its table's label, its key section, URL, TLS keys and
    /// the origins of its keys.
    static func servers(_ configuration: Configuration) -> [(label: String, section: String, url: HTTPURL, tls: Configuration.TLS, origins: [String: String])] {
        var servers = [(label: "gluetun", section: "gluetun", url: configuration.gluetun.url, tls: configuration.gluetun.tls, origins: configuration.origins)]
        for client in configuration.clients {
            servers.append((client.label, client.kind.rawValue, client.url, client.tls, client.origins))
        }
        if configuration.source.strategy == .privateVPN {
            servers.append(("privatevpn", "privatevpn", configuration.privateVPN.url, configuration.privateVPN.tls, configuration.origins))
        }
        if var url = configuration.notify.url {
            // Without its path, which the warnings quote: a webhook's path can hold its token.
            url.basePath = ""
            servers.append(("notify", "notify", url, configuration.notify.tls, configuration.origins))
        }
        return servers
    }

    /// A warning at every start (and reload) for each https server whose certificate is not checked.
    private func tlsWarnings(_ configuration: Configuration) -> [String] {
        Self.servers(configuration)
            .filter { $0.url.scheme == .https && !$0.tls.verify }
            .map { "[\($0.label)].tls_verify = false: the certificate of \($0.url) is not checked; anyone on the path can read the password (set ca_file or tls_fingerprint instead)" }
    }

    /// A warning at every start (and reload) when the metrics endpoint listens beyond this
    /// machine: it answers without a login, and `/healthz` quotes what the clients answered.
    private func metricsWarnings(_ configuration: Configuration) -> [String] {
        guard let address = configuration.daemon.metricsListen, !address.isLoopback else { return [] }
        return ["metrics_listen \(address) is reachable from other machines: /metrics and /healthz answer without a login and quote what the clients answered; listen on 127.0.0.1 unless a firewall keeps it private"]
    }

    /// Root through sudo with the ProtonVPN file's default path: the app writes its file in the
    /// desktop user's runtime directory, never in root's, so say where it is and that the desktop
    /// setup runs as that user.
    private func sudoWarnings(_ configuration: Configuration) -> [String] {
        guard userID == 0, let sudoUser = environment["SUDO_UID"].flatMap(UInt32.init), sudoUser != 0,
              [.auto, .file].contains(configuration.source.strategy), configuration.origins["proton.port_file"] == nil else { return [] }
        let theirs = Configuration.defaultProtonPortFile(environment: [:], userID: sudoUser)
        return ["running as root through sudo: the ProtonVPN app of user \(sudoUser) writes \(theirs), not \(configuration.proton.portFile); the desktop setup runs as that user (systemctl --user enable --now portsync), not as root"]
    }

    // MARK: Secrets

    private func loadCredentials(_ configuration: Configuration, warnings: inout [String]) throws(ConfigurationError) -> Credentials {
        let credentialsDirectory = environment["CREDENTIALS_DIRECTORY"]
        func secret(file: String, fileKey: String, credential: String, variable: String?,
                    origins: [String: String] = configuration.origins) throws(ConfigurationError) -> Secret? {
            if !file.isEmpty {
                return try readSecret(at: file, origin: origins[fileKey] ?? fileKey, warnings: &warnings)
            }
            if let credentialsDirectory {
                let path = "\(credentialsDirectory)/\(credential)"
                if FileContents.exists(path) {
                    return try readSecret(at: path, origin: "$CREDENTIALS_DIRECTORY", warnings: &warnings, groupChecked: false)
                }
            } else if let service = serviceCredentials, let path = service.path(of: credential), FileContents.exists(path) {
                return try readSecret(at: path, origin: "\(service.unitFile) LoadCredential=\(credential)", warnings: &warnings, groupChecked: false)
            }
            if let variable, let value = environment[variable] {
                return try checkedSecret(value, origin: variable, file: nil, errorOrigin: variable)
            }
            return nil
        }
        var credentials = Credentials()
        for table in SecretKey.tables(configuration) {
            for (key, file) in table.secrets {
                credentials[table.label, key] = try secret(file: file, fileKey: "\(table.section).\(key.fileKey)",
                                                           credential: key.credential(of: table.label),
                                                           variable: table.isUnnamed ? key.variable(of: table.section) : nil, origins: table.origins)
            }
        }
        // A secret variable of a client that is not configured is not used, but still checked.
        for variable in Self.secretVariables {
            if let value = environment[variable] { _ = try checkedSecret(value, origin: variable, file: nil, errorOrigin: variable) }
        }
        return credentials
    }

    /// Reads a secret file: one line, the trailing newline dropped. Never prints its content.
    /// A file others can read is warned about: every user, or (`groupChecked`) a group that
    /// portsync is not in, since that group's readability serves nobody but its members; a
    /// group of portsync's own (`root:portsync 0640`) is how a service is given a secret. systemd's
    /// credentials are its business.
    private func readSecret(at path: String, origin: String, warnings: inout [String], groupChecked: Bool = true) throws(ConfigurationError) -> Secret {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 64 * 1024)
        } catch let error as SystemCallError where error.errno == .permissionDenied && environment["CREDENTIALS_DIRECTORY"] != nil {
            // A service whose unit hands it credentials runs as a user of its own (DynamicUser).
            throw ConfigurationError(origin, "cannot read secret file \(path): \(error); the service's own user (uid \(userID)) cannot read it: hand it over with LoadCredential= in the unit instead")
        } catch {
            throw ConfigurationError(origin, "cannot read secret file \(path): \(error)")
        }
        var text = String(decoding: bytes, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") || text.hasSuffix("\r\n") { text.removeLast() }
        let secret = try checkedSecret(text, origin: "file \(path)", file: path, errorOrigin: origin)
        var info = stat()
        if stat(path, &info) == 0 {
            let mode = String(info.st_mode & 0o777, radix: 8)
            if info.st_mode & 0o004 != 0 {
                warnings.append("secret file \(path) is readable by every user (mode \(mode)); chmod 600 it")
            } else if groupChecked && info.st_mode & 0o040 != 0 && !ProcessEnvironment.groups.contains(info.st_gid) {
                warnings.append("secret file \(path) is readable by group \(info.st_gid) (mode \(mode)), which portsync does not run in; chmod 600 it, or chgrp it to a group of portsync's")
            }
        }
        return secret
    }

    /// The one check every secret gets, from a file, `$CREDENTIALS_DIRECTORY` or the
    /// environment: not empty, one line, no control character (a tab aside), since it goes into
    /// a header or a form. Checked on bytes; the message names where it came from (`file`: the
    /// secret file, nil: the variable that `errorOrigin` names) and never shows the secret.
    private func checkedSecret(_ text: String, origin: String, file: String?, errorOrigin: String) throws(ConfigurationError) -> Secret {
        func problem(_ what: String) -> ConfigurationError {
            ConfigurationError(errorOrigin, file.map { "secret file \($0) \(what)" } ?? what)
        }
        guard !text.isEmpty else { throw problem(file == nil ? "is set but empty" : "is empty") }
        guard !text.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) else { throw problem("holds more than one line") }
        guard text.utf8.allSatisfy(HTTPSyntax.isFieldValueByte) else { throw problem("holds a control character") }
        return Secret(value: text, origin: origin)
    }
}

/// "did you mean …?" for typos.
enum Suggestion {
    static func text(for word: String, among candidates: [String], format: (String) -> String = { "\"\($0)\"" }) -> String {
        let lowered = word.lowercased()
        let scored = candidates.map { ($0, distance(lowered, $0.lowercased())) }.filter { $0.1 <= max(2, word.count / 4) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return "" }
        return " (did you mean \(format(best.0))?)"
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
