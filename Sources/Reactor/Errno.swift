import Glibc

/// An error number left by a failed system call, with a name that reads well at the point of
/// use (`error.errno == .wouldBlock`). Printed as `Bad file descriptor (errno 9)`.
public struct Errno: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The value the last failed call left. Read only by the system call wrappers, at once.
    static var current: Errno { Errno(rawValue: Glibc.errno) }

    public static let notPermitted = Errno(rawValue: EPERM)
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    public static let permissionDenied = Errno(rawValue: EACCES)
    public static let interrupted = Errno(rawValue: EINTR)
    public static let badFileDescriptor = Errno(rawValue: EBADF)
    /// EAGAIN, which is EWOULDBLOCK on Linux.
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    public static let fileExists = Errno(rawValue: EEXIST)
    public static let notDirectory = Errno(rawValue: ENOTDIR)
    public static let fileTooLarge = Errno(rawValue: EFBIG)
    public static let brokenPipe = Errno(rawValue: EPIPE)
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    public static let connectionReset = Errno(rawValue: ECONNRESET)
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
    public static let networkUnreachable = Errno(rawValue: ENETUNREACH)
    public static let hostUnreachable = Errno(rawValue: EHOSTUNREACH)
    public static let inProgress = Errno(rawValue: EINPROGRESS)

    private static let names: [Errno: String] = [
        .notPermitted: "EPERM", .noSuchFileOrDirectory: "ENOENT", .permissionDenied: "EACCES", .interrupted: "EINTR", .badFileDescriptor: "EBADF",
        .wouldBlock: "EAGAIN", .fileExists: "EEXIST", .notDirectory: "ENOTDIR", .fileTooLarge: "EFBIG", .brokenPipe: "EPIPE",
        .connectionAborted: "ECONNABORTED", .connectionReset: "ECONNRESET", .noBufferSpace: "ENOBUFS", .timedOut: "ETIMEDOUT",
        .connectionRefused: "ECONNREFUSED", .networkUnreachable: "ENETUNREACH", .hostUnreachable: "EHOSTUNREACH",
        .inProgress: "EINPROGRESS",
    ]

    /// The C name (`EBADF`) for the numbers this program names, else `errno N`.
    public var name: String { Self.names[self] ?? "errno \(rawValue)" }

    public var description: String {
        "\(String(cString: strerror(rawValue))) (errno \(rawValue))"
    }
}
