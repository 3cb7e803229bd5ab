import CLinux
import Glibc
import Reactor

/// sd_notify spoken directly on `$NOTIFY_SOCKET` (no libsystemd): one datagram of
/// newline-separated `KEY=VALUE` lines. A path or an abstract name (`@…`); for an abstract one
/// the address length covers exactly the name, never the whole sockaddr_un.
final class SystemdNotifier {
    /// The socket address: `sockaddr_un` bytes and the length to pass.
    struct Address: Equatable, SockAddrConvertible {
        let bytes: [UInt8]
        let length: socklen_t

        /// nil for an empty value; throws for what cannot be an AF_UNIX address.
        init?(_ value: String) throws {
            guard !value.isEmpty else { return nil }
            var name = Array(value.utf8)
            let abstract = name.first == UInt8(ascii: "@")
            guard abstract || name.first == UInt8(ascii: "/") else {
                throw ConfigurationError("NOTIFY_SOCKET", "\"\(value)\" is neither a path nor an @abstract name")
            }
            if abstract { name[0] = 0 }
            let capacity = MemoryLayout<sockaddr_un>.size - 2
            guard name.count < capacity else { throw ConfigurationError("NOTIFY_SOCKET", "\"\(value)\" is too long") }
            let family = withUnsafeBytes(of: sa_family_t(AF_UNIX)) { Array($0) }
            bytes = family + name + [UInt8](repeating: 0, count: capacity - name.count)
            length = socklen_t(2 + name.count + (abstract ? 0 : 1))
        }

        func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
            try bytes.withUnsafeBytes { try body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
        }
    }

    private let address: Address
    private let socket: Socket
    private let logger: Logger
    private var failed = false
    /// Half the watchdog timeout, when systemd asked this process for pings.
    let watchdogInterval: Duration?

    /// nil when not started by systemd with a notify socket.
    init?(environment: [String: String], logger: Logger) {
        guard let value = environment["NOTIFY_SOCKET"] else { return nil }
        do {
            guard let address = try Address(value) else { return nil }
            self.address = address
        } catch {
            logger.error("systemd", "\(error); not notifying systemd")
            return nil
        }
        do {
            socket = try Socket(family: AF_UNIX, kind: .datagram, name: "socket(AF_UNIX)")
        } catch {
            logger.error("systemd", "\(error); not notifying systemd")
            return nil
        }
        self.logger = logger
        watchdogInterval = Self.watchdogInterval(environment: environment, pid: getpid())
        if let problem = Self.watchdogProblem(environment: environment) { logger.warning("systemd", problem) }
    }

    deinit { socket.close() }

    /// The longest interval between pings: enough for any timeout of two hours or more.
    static let longestWatchdogInterval = Duration.seconds(3600)

    /// `WATCHDOG_USEC / 2`, at most `longestWatchdogInterval`, when `WATCHDOG_PID` is unset or
    /// this process; nil when `WATCHDOG_USEC` is not a positive number of microseconds.
    static func watchdogInterval(environment: [String: String], pid: Int32) -> Duration? {
        guard let microseconds = watchdogMicroseconds(environment) else { return nil }
        if let owner = environment["WATCHDOG_PID"], Int32(owner) != pid { return nil }
        return min(.microseconds(microseconds / 2), longestWatchdogInterval)
    }

    /// The line to log about a `WATCHDOG_USEC` that is unusable or absurdly long, if it is.
    static func watchdogProblem(environment: [String: String]) -> String? {
        guard let text = environment["WATCHDOG_USEC"] else { return nil }
        guard let microseconds = watchdogMicroseconds(environment) else {
            return "WATCHDOG_USEC=\(text.oneLine(limit: 40)) is not a positive number of microseconds; no watchdog pings"
        }
        guard Duration.microseconds(microseconds / 2) <= longestWatchdogInterval else {
            return "WATCHDOG_USEC=\(text) is longer than two hours; pinging the watchdog every hour"
        }
        return nil
    }

    private static func watchdogMicroseconds(_ environment: [String: String]) -> Int64? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = Int64(text), microseconds > 0 else { return nil }
        return microseconds
    }

    func notify(_ assignments: String...) {
        notify(assignments)
    }

    /// Sends `KEY=value` lines. Each value is made one printable line first: text from outside
    /// (qBittorrent's version, an error message) must not add a line such as `WATCHDOG=trigger`.
    func notify(_ assignments: [String]) {
        let assignments = assignments.map(Self.oneLine)
        let message = Array(assignments.joined(separator: "\n").utf8)
        logger.trace("systemd", "notify \(assignments.joined(separator: " | "))")
        do {
            guard case .done = try socket.send(message, to: address, name: "sendto NOTIFY_SOCKET") else {
                throw SystemCallError(call: "sendto NOTIFY_SOCKET", errno: .wouldBlock)
            }
            failed = false
        } catch {
            guard !failed else { return }
            failed = true  // said once; systemd may simply be gone
            logger.error("systemd", "\(error)")
        }
    }

    /// `KEY=value` with the value as one printable line of at most 200 characters.
    static func oneLine(_ assignment: String) -> String {
        guard let equals = assignment.firstIndex(of: "=") else { return assignment.oneLine() }
        return "\(assignment[..<equals])=\(assignment[assignment.index(after: equals)...].oneLine())"
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (systemd 253+ wants it; 252 ignores unknown keys).
    func reloading() {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        notify("RELOADING=1", "MONOTONIC_USEC=\(Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1000)")
    }
}
