import HTTP

/// The kinds of client a configuration section can name.
enum ClientKind: String, CaseIterable, Sendable {
    case qbittorrent
    case transmission
    case deluge
}

/// One client table: the kind's own (`[qbittorrent]`), or a named one (`[qbittorrent.movies]`),
/// which starts from the kind's defaults, not from the unnamed table's. Its values are the
/// kind's own type, so that no key of one kind can reach another's values.
struct ClientSection: Equatable {
    enum Values: Equatable {
        case qbittorrent(Configuration.QBittorrent)
        case transmission(Configuration.TorrentClient)
        case deluge(Configuration.TorrentClient)
    }

    /// nil: the kind's own table.
    let name: String?
    var values: Values
    /// "qbittorrent.url" → "config.toml:12": where each of its keys' values came from (kept
    /// here for a named table; the unnamed ones' are `Configuration.origins`, and `clients`
    /// hands them out with their sections).
    var origins: [String: String] = [:]

    init(_ kind: ClientKind, name: String? = nil) {
        self.name = name
        values = switch kind {
        case .qbittorrent: .qbittorrent(Configuration.QBittorrent())
        case .transmission: .transmission(Configuration.TorrentClient(url: try! HTTPURL(parsing: "http://127.0.0.1:9091")))
        case .deluge: .deluge(Configuration.TorrentClient(url: try! HTTPURL(parsing: "http://127.0.0.1:8112")))
        }
    }

    var kind: ClientKind {
        switch values {
        case .qbittorrent: .qbittorrent
        case .transmission: .transmission
        case .deluge: .deluge
        }
    }

    /// `qbittorrent.movies`, or the kind alone: in logs, metrics, `status` and the state file.
    var label: String { name.map { "\(kind.rawValue).\($0)" } ?? kind.rawValue }

    /// What every kind has.
    var url: HTTPURL {
        switch values {
        case .qbittorrent(let client): client.url
        case .transmission(let client), .deluge(let client): client.url
        }
    }

    var tls: Configuration.TLS {
        switch values {
        case .qbittorrent(let client): client.tls
        case .transmission(let client), .deluge(let client): client.tls
        }
    }

    var passwordFile: String {
        switch values {
        case .qbittorrent(let client): client.passwordFile
        case .transmission(let client), .deluge(let client): client.passwordFile
        }
    }

    var portIndex: Int? {
        switch values {
        case .qbittorrent(let client): client.portIndex
        case .transmission(let client), .deluge(let client): client.portIndex
        }
    }

    /// qBittorrent's values; nil for another kind.
    var qbittorrent: Configuration.QBittorrent? {
        if case .qbittorrent(let client) = values { client } else { nil }
    }

    /// Transmission's or Deluge's values (they have the same keys); nil for qBittorrent.
    var torrentClient: Configuration.TorrentClient? {
        switch values {
        case .qbittorrent: nil
        case .transmission(let client), .deluge(let client): client
        }
    }

    /// Changes qBittorrent's values; a section of another kind is left as it is (its keys never
    /// call this).
    mutating func changeQBittorrent(_ change: (inout Configuration.QBittorrent) throws(InvalidValue) -> Void) throws(InvalidValue) {
        guard case .qbittorrent(var client) = values else { return }
        try change(&client)
        values = .qbittorrent(client)
    }

    /// Changes Transmission's or Deluge's values.
    mutating func changeTorrentClient(_ change: (inout Configuration.TorrentClient) throws(InvalidValue) -> Void) throws(InvalidValue) {
        switch values {
        case .qbittorrent: return
        case .transmission(var client):
            try change(&client)
            values = .transmission(client)
        case .deluge(var client):
            try change(&client)
            values = .deluge(client)
        }
    }

    /// The TLS keys' values, whichever the kind.
    mutating func changeTLS(_ change: (inout Configuration.TLS) throws(InvalidValue) -> Void) throws(InvalidValue) {
        try changeQBittorrent { client throws(InvalidValue) in try change(&client.tls) }
        try changeTorrentClient { client throws(InvalidValue) in try change(&client.tls) }
    }
}

extension Configuration {
    /// The kind's own table, `[qbittorrent]`.
    subscript(unnamed kind: ClientKind) -> ClientSection {
        get { clientSections.first { $0.kind == kind && $0.name == nil }! }
        set {
            let index = clientSections.firstIndex { $0.kind == kind && $0.name == nil }!
            clientSections[index] = newValue
        }
    }

    /// `[qbittorrent]`'s values.
    var qbittorrent: QBittorrent { self[unnamed: .qbittorrent].qbittorrent! }

    /// Every client to keep on the port: the unnamed sections first (`[qbittorrent]` when
    /// present or when no other client is configured, so a file without client sections keeps
    /// today's meaning; `[transmission]` and `[deluge]` only when present), then the named ones
    /// in the file's order.
    var clients: [ClientSection] {
        let named = clientSections.filter { $0.name != nil }
        let onlyDefault = !presentSections.contains(where: { section in ClientKind.allCases.contains { $0.rawValue == section } })
            && named.isEmpty
        return clientSections.filter { section in
            section.name != nil || presentSections.contains(section.kind.rawValue) || (section.kind == .qbittorrent && onlyDefault)
        }.map { section in
            guard section.name == nil else { return section }
            var unnamed = section
            unnamed.origins = origins.filter { $0.key.hasPrefix("\(section.kind.rawValue).") }
            return unnamed
        }
    }
}
