import Domain
import Reactor

/// How a run of the hook ended.
public enum HookOutcome: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case killed(signal: Int32)
    /// Still running after the timeout, so killed.
    case timedOut(Duration)
    /// It could not be started (the program is missing, not executable).
    case notStarted(String)
    /// It ended, but how is unknown (it could not be reaped).
    case unknown(String)

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): "exited with \(code)"
        case .killed(let signal): "was killed by signal \(signal)"
        case .timedOut(let limit): "was still running after \(limit.limitText) and was killed"
        case .notStarted(let why): "could not start: \(why)"
        case .unknown(let why): "ended, but \(why)"
        }
    }
}

/// The last run of the hook, for the log, `status` and the state file.
public struct HookRun: Equatable, Sendable, CustomStringConvertible {
    public var port: Port
    public var outcome: HookOutcome
    /// The first line it wrote to stderr, printable and bounded.
    public var errorLine: String?

    public init(port: Port, outcome: HookOutcome, errorLine: String? = nil) {
        self.port = port
        self.outcome = outcome
        self.errorLine = errorLine
    }

    /// "the hook for port 51413 exited with 1: iptables: Permission denied".
    public var description: String {
        "the hook for port \(port) \(outcome)\(errorLine.map { ": \($0)" } ?? "")"
    }
}
