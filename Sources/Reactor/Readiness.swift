import CLinux

/// What a registration waits for.
public struct Interest: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = Interest(rawValue: UInt32(CLINUX_EPOLLIN))
    public static let writable = Interest(rawValue: UInt32(CLINUX_EPOLLOUT))
}

/// What epoll reported for a registration.
public struct Readiness: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = Readiness(rawValue: UInt32(CLINUX_EPOLLIN))
    public static let writable = Readiness(rawValue: UInt32(CLINUX_EPOLLOUT))
    public static let error = Readiness(rawValue: UInt32(CLINUX_EPOLLERR))
    public static let hangup = Readiness(rawValue: UInt32(CLINUX_EPOLLHUP))
    public static let readHangup = Readiness(rawValue: UInt32(CLINUX_EPOLLRDHUP))

    public var description: String {
        let names: [(Readiness, String)] = [
            (.readable, "IN"), (.writable, "OUT"), (.error, "ERR"), (.hangup, "HUP"), (.readHangup, "RDHUP"),
        ]
        let present = names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "none" : present.joined(separator: "|")
    }
}

/// A registration in the loop. Its number travels in epoll's data, never the fd, so an event
/// that arrives for a registration removed earlier in the same wakeup is recognised and dropped
/// even when the fd number has been reused.
public struct RegistrationID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64
    public var description: String { "#\(rawValue)" }
}
