import CLinux
import Glibc

/// One inotify record: watch descriptor, mask, cookie and the name of the entry in a watched
/// directory (empty for events about the watched object itself).
public struct InotifyEvent: Equatable, Sendable {
    public let watch: Int32
    public let mask: UInt32
    public let cookie: UInt32
    public let name: String

    public init(watch: Int32, mask: UInt32, cookie: UInt32 = 0, name: String = "") {
        self.watch = watch
        self.mask = mask
        self.cookie = cookie
        self.name = name
    }

    public func has(_ flag: UInt32) -> Bool { mask & flag != 0 }

    /// Decodes the records of one read(2) from an inotify fd (`struct inotify_event` with its
    /// NUL-padded name). A truncated record ends the list instead of being guessed at.
    public static func parse(_ bytes: [UInt8]) -> [InotifyEvent] {
        var events: [InotifyEvent] = []
        var offset = 0
        let header = 16
        while offset + header <= bytes.count {
            func word(_ at: Int) -> UInt32 {
                UInt32(bytes[offset + at]) | UInt32(bytes[offset + at + 1]) << 8
                    | UInt32(bytes[offset + at + 2]) << 16 | UInt32(bytes[offset + at + 3]) << 24
            }
            let length = Int(word(12))
            guard offset + header + length <= bytes.count else { break }
            let nameBytes = bytes[(offset + header)..<(offset + header + length)].prefix { $0 != 0 }
            events.append(InotifyEvent(watch: Int32(bitPattern: word(0)), mask: word(4), cookie: word(8),
                                       name: String(decoding: nameBytes, as: UTF8.self)))
            offset += header + length
        }
        return events
    }

    public var description: String {
        let names: [(UInt32, String)] = [
            (UInt32(IN_MODIFY), "MODIFY"), (UInt32(IN_ATTRIB), "ATTRIB"), (UInt32(IN_CLOSE_WRITE), "CLOSE_WRITE"),
            (UInt32(IN_MOVED_FROM), "MOVED_FROM"), (UInt32(IN_MOVED_TO), "MOVED_TO"), (UInt32(IN_CREATE), "CREATE"),
            (UInt32(IN_DELETE), "DELETE"), (UInt32(IN_DELETE_SELF), "DELETE_SELF"), (UInt32(IN_MOVE_SELF), "MOVE_SELF"),
            (UInt32(IN_Q_OVERFLOW), "Q_OVERFLOW"), (UInt32(IN_IGNORED), "IGNORED"), (UInt32(IN_ISDIR), "ISDIR"),
        ]
        let flags = names.filter { has($0.0) }.map(\.1).joined(separator: "|")
        return name.isEmpty ? "wd=\(watch) \(flags)" : "wd=\(watch) \(flags) \"\(name)\""
    }
}
