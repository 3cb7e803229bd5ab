/// The kinds of client a configuration section can name.
enum ClientKind: String, CaseIterable, Sendable {
    case qbittorrent
    case transmission
    case deluge
}

/// A named client section, `[qbittorrent.movies]`: its own values, starting from the kind's
/// defaults (not from the unnamed section's), read through the same keys as `[qbittorrent]`.
struct NamedClient: Equatable {
    var kind: ClientKind
    var name: String
    var qbittorrent = Configuration.QBittorrent()
    var client: Configuration.TorrentClient
    /// "qbittorrent.url" → "config.toml:12", as in `Configuration.origins`.
    var origins: [String: String] = [:]

    /// `qbittorrent.movies`: in logs, metrics, `status` and the state file.
    var label: String { "\(kind.rawValue).\(name)" }

    init(kind: ClientKind, name: String, defaults: Configuration) {
        self.kind = kind
        self.name = name
        client = kind == .deluge ? defaults.deluge : defaults.transmission
    }
}

extension Configuration {
    /// `[transmission]` or `[deluge]` (`[qbittorrent]` has keys of its own).
    subscript(client kind: ClientKind) -> TorrentClient {
        get { kind == .deluge ? deluge : transmission }
        set {
            if kind == .deluge { deluge = newValue } else { transmission = newValue }
        }
    }

    /// One client in use: its label, its kind, and the configuration as its section's keys read
    /// it (a named section's values in the kind's place).
    struct ClientSection {
        var label: String
        var kind: ClientKind
        var view: Configuration
    }

    /// Every client to keep on the port: the unnamed sections first (`[qbittorrent]` when
    /// present or when no other client is configured, so a file without client sections keeps
    /// today's meaning; `[transmission]` and `[deluge]` only when present), then the named ones
    /// in the file's order.
    var clients: [ClientSection] {
        let onlyDefault = !presentSections.contains(where: { section in ClientKind.allCases.contains { $0.rawValue == section } })
            && namedClients.isEmpty
        var sections = ClientKind.allCases.filter { presentSections.contains($0.rawValue) || ($0 == .qbittorrent && onlyDefault) }
            .map { ClientSection(label: $0.rawValue, kind: $0, view: self) }
        sections += namedClients.map { ClientSection(label: $0.label, kind: $0.kind, view: viewing($0)) }
        return sections
    }

    /// This configuration with `named`'s values in the place of its kind's section.
    func viewing(_ named: NamedClient) -> Configuration {
        var view = self
        switch named.kind {
        case .qbittorrent: view.qbittorrent = named.qbittorrent
        case .transmission: view.transmission = named.client
        case .deluge: view.deluge = named.client
        }
        view.origins = origins.filter { !$0.key.hasPrefix("\(named.kind.rawValue).") }.merging(named.origins) { $1 }
        return view
    }

    /// Takes the kind's section of `view` (as `viewing` made it, then changed) back into `named`.
    static func storing(_ view: Configuration, origins: [String: String], into named: inout NamedClient) {
        switch named.kind {
        case .qbittorrent: named.qbittorrent = view.qbittorrent
        case .transmission: named.client = view.transmission
        case .deluge: named.client = view.deluge
        }
        named.origins.merge(origins) { $1 }
    }
}
