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
        func section(_ header: String, keysOf section: String, in view: Configuration) {
            lines.append("")
            lines.append("[\(header)]")
            for key in ConfigurationKey.all where key.section == section {
                guard let value = key.renderedValue(in: view) else {
                    lines.append("# \(key.name): not set")
                    continue
                }
                let assignment = "\(key.name) = \(value)"
                lines.append("\(assignment.padded(to: 52))# \(view.origins[key.path] ?? "default")")
            }
        }
        for name in ConfigurationKey.printedSections(configuration) {
            if let kind = ClientKind(rawValue: name), !clients.contains(where: { $0.label == kind.rawValue }) { continue }
            section(name, keysOf: name, in: configuration)
        }
        for client in clients where client.label != client.kind.rawValue {
            section(client.label, keysOf: client.kind.rawValue, in: client.view)
        }
        lines.append("")
        let credentials = loaded.credentials
        var secrets: [(String, Secret?)] = []
        for client in clients {
            if client.label == ClientKind.qbittorrent.rawValue {
                secrets += [("qBittorrent password", credentials.qbittorrentPassword), ("qBittorrent API key", credentials.qbittorrentAPIKey)]
            } else {
                secrets.append(("\(client.label) password", credentials.clientPasswords[client.label]))
                if client.kind == .qbittorrent { secrets.append(("\(client.label) API key", credentials.clientAPIKeys[client.label])) }
            }
        }
        secrets += [("Gluetun API key", credentials.gluetunAPIKey), ("Gluetun password", credentials.gluetunPassword)]
        for (name, secret) in secrets {
            lines.append("# \(name): \(secret.map { "set (\($0.origin))" } ?? "not set")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
