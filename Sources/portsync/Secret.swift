/// A password or API key. It prints as "<redacted>" however it is interpolated, so it cannot
/// reach a log line, a trace or an error message by accident.
struct Secret: Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String
    /// Where it came from, for messages: "file /run/credentials/x", "PORTSYNC_QBITTORRENT_PASSWORD".
    let origin: String

    var description: String { "<redacted>" }
    var debugDescription: String { "<redacted>" }
}

/// The secrets the configuration points at, read when the configuration is loaded.
struct Credentials: Equatable {
    var qbittorrentPassword: Secret?
    var qbittorrentAPIKey: Secret?
    var gluetunAPIKey: Secret?
}
