import Glibc

/// A path that should name a regular file names something else: reading a FIFO would block,
/// reading a device would never end.
public struct NotARegularFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    /// What is there instead: "a FIFO", "a directory", …
    public let kind: String

    public init(path: String, mode: mode_t) {
        self.path = path
        switch mode & S_IFMT {
        case S_IFIFO: kind = "a FIFO"
        case S_IFDIR: kind = "a directory"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a file"
        }
    }

    public var description: String { "\(path) is \(kind), not a regular file" }
}
