import Foundation
import Reactor

/// Collects log lines instead of writing them to stderr.
public final class LogCapture {
    private final class Lines { var all: [String] = [] }
    private let storage = Lines()
    public let logger: Logger

    public init(level: LogLevel = .debug, trace: Bool = false) {
        let storage = self.storage
        logger = Logger(level: level, traceEnabled: trace, style: .plain) { storage.all.append($0) }
    }

    public var lines: [String] { storage.all }
    public var text: String { storage.all.joined() }

    public func count(_ fragment: String) -> Int { storage.all.filter { $0.contains(fragment) }.count }
}

/// Runs the loop until `condition` holds, at most `limit` wakeups of at most 100 ms each.
public func runUntil(_ loop: EventLoop, limit: Int = 100, _ condition: () -> Bool) throws {
    var rounds = 0
    while !condition() && rounds < limit {
        try loop.runOnce(timeout: .milliseconds(100))
        rounds += 1
    }
}

/// Runs the loop until `condition` holds or `seconds` pass; returns whether it held.
@discardableResult
public func runUntil(_ loop: EventLoop, seconds: Double, _ condition: () -> Bool) throws -> Bool {
    try loop.run(within: .milliseconds(Int64(seconds * 1000)), until: condition)
}

/// Runs the loop for `seconds`, whatever happens.
public func runFor(_ loop: EventLoop, seconds: Double) throws {
    _ = try runUntil(loop, seconds: seconds) { false }
}

/// Polls `condition` every 20 ms for at most `seconds`; whether it held.
public func waitFor(seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { return false }
        usleep(20_000)
    }
    return true
}
