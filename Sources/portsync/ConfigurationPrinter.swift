import Reactor

/// `portsync config`: the effective configuration as a valid TOML file, each value annotated
/// with where it came from. Secrets show only whether they are set and from where.
enum ConfigurationPrinter {
    static func render(_ loaded: LoadedConfiguration) -> String {
        let configuration = loaded.configuration
        var lines = ["# portsync configuration; file: \(configuration.file ?? "none (defaults)")"]
        for section in ConfigurationKey.printedSections(configuration) {
            lines.append("")
            lines.append("[\(section)]")
            for key in ConfigurationKey.all where key.section == section {
                let assignment = "\(key.name) = \(key.renderedValue(in: configuration))"
                lines.append("\(assignment.padded(to: 52))# \(configuration.origins[key.path] ?? "default")")
            }
        }
        lines.append("")
        let credentials = loaded.credentials
        for (name, secret) in [("qBittorrent password", credentials.qbittorrentPassword),
                               ("qBittorrent API key", credentials.qbittorrentAPIKey),
                               ("Gluetun API key", credentials.gluetunAPIKey),
                               ("Gluetun password", credentials.gluetunPassword)] {
            lines.append("# \(name): \(secret.map { "set (\($0.origin))" } ?? "not set")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
