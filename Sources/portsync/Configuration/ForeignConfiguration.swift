import HTTP
import Reactor

/// The configuration files of the tools people come from: qb-port-sync's (`[qbittorrent]
/// base_url`, `[protonvpn]`, `[portmap]`) and qbouncer's (`[wireguard]`, `[natpmp]
/// refresh_interval`, `[qbittorrent] host`/`port`, `[service]`). Recognised when portsync is given
/// one (a single message instead of one unknown key at a time), and translated by
/// `portsync config --from FILE` into portsync's keys, every key mapped or named as having no
/// equivalent. A password in them is never copied: it belongs in a file of its own.
enum ForeignConfiguration {
    enum Format: String {
        case qbPortSync = "qb-port-sync"
        case qbouncer

        /// What gives the format away, for the message.
        var signature: String {
            switch self {
            case .qbPortSync: "[qbittorrent] base_url, [protonvpn], [portmap]"
            case .qbouncer: "[wireguard], [service], [qbittorrent] host and port"
            }
        }
    }

    /// The format of `document`, when its tables or keys are another tool's and not portsync's.
    static func detect(_ document: TOMLDocument) -> Format? {
        let tables = Set(document.tables.map(\.name) + document.entries.map(\.table))
        let keys = Set(document.entries.map { "\($0.table).\($0.key)" })
        if tables.contains("protonvpn") || tables.contains("portmap") || keys.contains("qbittorrent.base_url") { return .qbPortSync }
        if tables.contains("wireguard") || tables.contains("service") || keys.contains("qbittorrent.host")
            || keys.contains("natpmp.refresh_interval") || keys.contains("natpmp.lease_lifetime") {
            return .qbouncer
        }
        return nil
    }

    /// `portsync config --from FILE`: the translation of the file at `path`, or why there is none.
    static func convert(path: String) throws(ConfigurationError) -> String {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 1 << 20)
        } catch {
            throw ConfigurationError("--from", "cannot read \(path): \(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw ConfigurationError(path, "is not UTF-8 text") }
        let document = try TOMLDocument.parse(text, fileName: path)
        guard let format = detect(document) else {
            throw ConfigurationError(path, "is neither qb-port-sync's configuration (\(Format.qbPortSync.signature)) nor qbouncer's (\(Format.qbouncer.signature))")
        }
        return translate(document, format, path: path)
    }

    /// The message for a file of another tool given to portsync.
    static func refusal(_ format: Format, path: String) -> String {
        "this is a \(format.rawValue) configuration (\(format.signature)), not portsync's: `portsync config --from \(path)` prints the equivalent"
    }

    /// A portsync configuration, as TOML, doing what the other tool's file did: the keys that
    /// map, then a comment for each key with no equivalent and why.
    static func translate(_ document: TOMLDocument, _ format: Format, path: String) -> String {
        var translation = Translation(directory: path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : ".")
        for entry in document.entries {
            switch format {
            case .qbPortSync: translation.qbPortSync(entry)
            case .qbouncer: translation.qbouncer(entry)
            }
        }
        translation.finish(format)
        return translation.render(format, path: path)
    }

    private struct Translation {
        let directory: String
        /// Section → keys, in portsync's order of sections.
        var settings: [(section: String, key: String, value: String)] = []
        var notes: [String] = []
        var qbittorrentHost = "localhost"
        var qbittorrentPort: Int?
        var https = false

        mutating func set(_ section: String, _ key: String, _ value: TOMLValue) {
            let text: String = switch value {
            case .string(let string): JSONValue.quoted(string)
            case .integer(let number): String(number)
            case .boolean(let flag): String(flag)
            case .stringArray(let list): "[" + list.map(JSONValue.quoted).joined(separator: ", ") + "]"
            }
            settings.removeAll { $0.section == section && $0.key == key }
            settings.append((section, key, text))
        }

        mutating func note(_ entry: TOMLDocument.Entry, _ why: String) {
            notes.append("\(entry.table).\(entry.key): \(why)")
        }

        mutating func password(_ entry: TOMLDocument.Entry) {
            set("qbittorrent", "password_file", .string("\(directory)/qbittorrent-password"))
            note(entry, "not copied; put the password alone in \(directory)/qbittorrent-password (chmod 600), which password_file names")
        }

        mutating func qbPortSync(_ entry: TOMLDocument.Entry) {
            switch ("\(entry.table).\(entry.key)", entry.value) {
            case ("qbittorrent.base_url", .string): set("qbittorrent", "url", entry.value)
            case ("qbittorrent.username", .string): set("qbittorrent", "username", entry.value)
            case ("qbittorrent.password", .string(let text)) where !text.trimmingSpaces.isEmpty: password(entry)
            case ("qbittorrent.password", _): note(entry, "empty: the password comes from PORTSYNC_QBITTORRENT_PASSWORD (was QB_PORT_SYNC_QB_PASSWORD) or password_file")
            case ("protonvpn.forwarded_port_path", .string(let path)):
                // qb-port-sync reads a relative path from its file's directory: made absolute, it
                // means the same wherever the new file goes.
                if !path.trimmingSpaces.isEmpty { set("proton", "port_file", .string(path.hasPrefix("/") ? path : "\(directory)/\(path)")) }
            case ("portmap.gateway", .string(let gateway)):
                if !gateway.trimmingSpaces.isEmpty { set("natpmp", "gateway", .string(gateway)) }
            case ("portmap.autodiscover_gateway", _):
                note(entry, "no equivalent needed: portsync takes the gateway from the tunnel's address ([natpmp] interface), never the LAN's default route")
            case ("portmap.internal_port", .integer(let port)):
                if port == 0 {
                    set("natpmp", "zero_internal_port", .boolean(true))
                } else {
                    set("natpmp", "internal_port", entry.value)
                }
            case ("portmap.protocol", _):
                note(entry, "no equivalent: portsync maps TCP and UDP both, as the ProtonVPN gateway needs")
            case ("portmap.refresh_secs", _):
                note(entry, "not carried over: portsync asks for 60 s leases and renews every 45 s (lease_seconds, renew_seconds), as ProtonVPN caps leases at 60 s")
            default:
                note(entry, "unknown to qb-port-sync too; left out")
            }
        }

        mutating func qbouncer(_ entry: TOMLDocument.Entry) {
            switch ("\(entry.table).\(entry.key)", entry.value) {
            case ("wireguard.interface", .string):
                set("natpmp", "interface", entry.value)
            case ("wireguard.health_check_host", _), ("wireguard.health_check_interval", _):
                note(entry, "no equivalent needed: portsync follows the tunnel through rtnetlink events, with no ping")
            case ("natpmp.gateway", .string): set("natpmp", "gateway", entry.value)
            case ("natpmp.refresh_interval", .integer): set("natpmp", "renew_seconds", entry.value)
            case ("natpmp.lease_lifetime", .integer): set("natpmp", "lease_seconds", entry.value)
            case ("qbittorrent.host", .string(let host)): qbittorrentHost = host
            case ("qbittorrent.port", .integer(let port)): qbittorrentPort = port
            case ("qbittorrent.use_https", .boolean(let flag)): https = flag
            case ("qbittorrent.verify_ssl", .boolean(let flag)):
                if !flag { set("qbittorrent", "tls_verify", .boolean(false)) }
            case ("qbittorrent.username", .string): set("qbittorrent", "username", entry.value)
            case ("qbittorrent.password", .string(let text)) where !text.trimmingSpaces.isEmpty: password(entry)
            case ("qbittorrent.password", _): note(entry, "empty: the password comes from PORTSYNC_QBITTORRENT_PASSWORD (was QBOUNCER_QBT_PASSWORD) or password_file")
            case ("qbittorrent.interface_binding", .string):
                set("qbittorrent", "bind_interface", .boolean(true))
                note(entry, "bind_interface binds qBittorrent to [natpmp] interface, the tunnel itself")
            case ("killswitch.enabled", _), ("killswitch.user", _):
                note(entry, "no equivalent: portsync changes no firewall; bind_interface keeps qBittorrent's traffic on the tunnel")
            case ("service.log_level", .string(let level)): set("daemon", "log_level", .string(level.lowercased()))
            case ("service.state_file", _):
                note(entry, "not carried over: portsync keeps its own state (its default, or [daemon] state_file)")
            case ("service.max_consecutive_failures", _), ("service.failure_backoff_base", _), ("service.failure_backoff_max", _):
                note(entry, "no equivalent: portsync backs off by itself (0.5 s doubling to 15 s per client; NAT-PMP's own retry rules)")
            default:
                note(entry, "unknown to qbouncer too; left out")
            }
        }

        mutating func finish(_ format: Format) {
            switch format {
            case .qbPortSync:
                // qb-port-sync reads the ProtonVPN app's file, else asks the gateway: portsync's auto.
                set("source", "strategy", .string("auto"))
            case .qbouncer:
                set("source", "strategy", .string("natpmp"))
                let scheme = https ? "https" : "http"
                let port = qbittorrentPort ?? 80
                let host = qbittorrentHost.contains(":") ? "[\(qbittorrentHost)]" : qbittorrentHost
                let defaultPort = (https && port == 443) || (!https && port == 80)
                set("qbittorrent", "url", .string("\(scheme)://\(host)\(defaultPort ? "" : ":\(port)")"))
            }
        }

        func render(_ format: Format, path: String) -> String {
            var lines = ["# portsync's equivalent of \(format.rawValue)'s \(path)"]
            for section in ["source", "proton", "natpmp", "qbittorrent", "daemon"] {
                let keys = settings.filter { $0.section == section }
                guard !keys.isEmpty else { continue }
                lines += ["", "[\(section)]"] + keys.map { "\($0.key) = \($0.value)" }
            }
            if !notes.isEmpty {
                lines += ["", "# Not carried over:"] + notes.map { "# - \($0)" }
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}
