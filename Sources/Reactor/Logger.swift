import Glibc

/// Log levels with their journald priorities.
public enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
    case debug = 7

    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = level
    }

    public var name: String {
        switch self {
        case .error: "error"
        case .warning: "warning"
        case .notice: "notice"
        case .info: "info"
        case .debug: "debug"
        }
    }

    /// Ordered by priority number: `error` < `debug`. A threshold lets through what is <= it.
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Writes one line per message to fd 2: with the `<N>` priority prefix when stderr is the
/// journal, with the local date and time (ISO 8601) and the level name on a terminal or in a file.
/// Every line names its source (`proton.file`, `qbittorrent.http`, …).
public final class Logger {
    public enum Style: Sendable {
        case journal
        case plain
    }

    public var level: LogLevel
    /// `--trace`: one line per dispatched event, whatever the level.
    public var traceEnabled: Bool
    public let style: Style
    private let output: (String) -> Void

    public init(level: LogLevel = .info, traceEnabled: Bool = false, style: Style? = nil,
                output: ((String) -> Void)? = nil) {
        self.level = level
        self.traceEnabled = traceEnabled
        self.style = style ?? (Logger.stderrIsJournal() ? .journal : .plain)
        self.output = output ?? Logger.writeToStandardError
    }

    public func isEnabled(_ level: LogLevel) -> Bool { level <= self.level }

    public func log(_ level: LogLevel, _ source: String, _ message: @autoclosure () -> String) {
        guard isEnabled(level) else { return }
        emit(level: level, tag: level.name, source: source, message: message())
    }

    public func error(_ source: String, _ message: @autoclosure () -> String) { log(.error, source, message()) }
    public func warning(_ source: String, _ message: @autoclosure () -> String) { log(.warning, source, message()) }
    public func notice(_ source: String, _ message: @autoclosure () -> String) { log(.notice, source, message()) }
    public func info(_ source: String, _ message: @autoclosure () -> String) { log(.info, source, message()) }
    public func debug(_ source: String, _ message: @autoclosure () -> String) { log(.debug, source, message()) }

    /// One trace line; only with `--trace`.
    public func trace(_ source: String, _ message: @autoclosure () -> String) {
        guard traceEnabled else { return }
        emit(level: .debug, tag: "trace", source: source, message: message())
    }

    private func emit(level: LogLevel, tag: String, source: String, message: String) {
        // One line per message, whatever the message holds: a CR or LF from outside cannot
        // start a forged line of its own.
        let flat = message.oneLine(limit: .max)
        switch style {
        case .journal:
            output("<\(level.rawValue)>\(source): \(flat)\n")
        case .plain:
            output("\(Logger.timestamp()) \(tag.padded(to: 8))\(source): \(flat)\n")
        }
    }

    /// `$JOURNAL_STREAM` is "dev:inode" of the stream systemd connected; it only counts when fd 2
    /// is still that stream (a child whose stderr was redirected inherits the variable).
    static func stderrIsJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// SIGPIPE keeps its disposition (sockets are written with `MSG_NOSIGNAL` instead), so a
    /// write to fd 2 is safe because of what fd 2 is: a terminal or a file never gives EPIPE;
    /// journald's stream is written by a service that systemd started with SIGPIPE ignored
    /// (`IgnoreSIGPIPE=yes`, the default, which the units keep); and a pipe whose reader went
    /// away ends the process like any other command in a pipeline.
    static func writeToStandardError(_ line: String) {
        // stderr gone (EPIPE with SIGPIPE ignored, EIO): there is nowhere left to report that.
        try? FileDescriptor(rawValue: 2).writeAll(Array(line.utf8))
    }

    /// Local wall-clock date and time in ISO 8601 with the zone's offset,
    /// `2026-12-06T14:09:32.123+01:00`: a file or a terminal kept across midnight still says when.
    static func timestamp() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return timestamp(seconds: spec.tv_sec, nanoseconds: Int(spec.tv_nsec))
    }

    /// `seconds` since the epoch in the local zone (`TZ`), as `timestamp()` writes it.
    static func timestamp(seconds: Int, nanoseconds: Int) -> String {
        var seconds = seconds
        var parts = tm()
        localtime_r(&seconds, &parts)
        func digits(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let offset = parts.tm_gmtoff / 60
        let sign = offset < 0 ? "-" : "+"
        let date = "\(digits(Int(parts.tm_year) + 1900, 4))-\(digits(Int(parts.tm_mon) + 1, 2))-\(digits(Int(parts.tm_mday), 2))"
        let time = "\(digits(Int(parts.tm_hour), 2)):\(digits(Int(parts.tm_min), 2)):\(digits(Int(parts.tm_sec), 2))"
        let zone = "\(sign)\(digits(abs(offset) / 60, 2)):\(digits(abs(offset) % 60, 2))"
        return "\(date)T\(time).\(digits(nanoseconds / 1_000_000, 3))\(zone)"
    }
}

extension String {
    /// Padded with spaces to `width`, and followed by at least one: for columns.
    public func padded(to width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
