import Domain
import Reactor

/// `portsync config`: the effective configuration as a valid TOML file, each value annotated
/// with where it came from. Secrets show only whether they are set and from where. Client
/// sections appear only when in use, so that reading the output back means the same.
enum ConfigurationPrinter {
    static func render(_ loaded: LoadedConfiguration) -> String {
        let configuration = loaded.configuration
        let clients = configuration.clients
        var lines = ["# portsync configuration; file: \(configuration.file ?? "none (defaults)")"]
        // Where the port comes from, as the strategy and its tables make it (`auto`: which
        // gateway is asked, and when).
        for (index, settings) in SyncPlan(loaded).sources.settings.enumerated() {
            lines.append("# source \(index + 1): \(settings.summary)")
        }
        /// Each key's name, its value (nil: not set) and where it came from.
        func section(_ header: String, _ keys: [(name: String, value: String?, origin: String?)]) {
            lines.append("")
            lines.append("[\(header)]")
            for key in keys {
                guard let value = key.value else {
                    lines.append("# \(key.name): not set")
                    continue
                }
                let assignment = "\(key.name) = \(value)"
                lines.append("\(assignment.padded(to: 52))# \(key.origin ?? "default")")
            }
        }
        for name in ConfigurationKey.printedSections(configuration) {
            if let kind = ClientKind(rawValue: name), !clients.contains(where: { $0.label == kind.rawValue }) { continue }
            section(name, ConfigurationKey.all.filter { $0.section == name }.map { key in
                (key.name, key.renderedValue(in: configuration), configuration.origins[key.path])
            })
        }
        for client in clients where client.name != nil {
            section(client.label, client.kind.keys.map { key in
                (key.name, key.renderedValue(in: client), client.origins["\(client.kind.rawValue).\(key.name)"])
            })
        }
        lines.append("")
        let credentials = loaded.credentials
        var secrets: [(String, Secret?)] = []
        for table in SecretKey.tables(configuration) {
            let name = table.label == "gluetun" ? "Gluetun" : table.label == ClientKind.qbittorrent.rawValue ? "qBittorrent" : table.label
            secrets += table.secrets.map { key, _ in ("\(name) \(key.title)", credentials[table.label, key]) }
        }
        for (name, secret) in secrets {
            lines.append("# \(name): \(secret.map { "set (\($0.origin))" } ?? "not set")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
