/// A password or API key. It prints as "<redacted>" however it is interpolated, so it cannot
/// reach a log line, a trace or an error message by accident.
public struct Secret: Equatable, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public let value: String
    /// Where it came from, for messages: "file /run/credentials/x", "PORTSYNC_QBITTORRENT_PASSWORD".
    public let origin: String

    public init(value: String, origin: String) {
        self.value = value
        self.origin = origin
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

