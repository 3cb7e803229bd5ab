/// A point on the loop's clock (CLOCK_BOOTTIME in the daemon: it keeps counting through
/// suspend, so a lease that ran out while the laptop slept is seen as run out).
public struct Instant: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// Saturates at the ends of the clock instead of wrapping: a deadline centuries away stays
    /// in the future, never jumps into the past.
    public static func + (lhs: Instant, rhs: Duration) -> Instant {
        // In Duration's 128 bits, then back to Int64 nanoseconds, saturating.
        Instant(nanoseconds: (Duration.nanoseconds(lhs.nanoseconds) + rhs).nanoseconds)
    }

    public static func - (lhs: Instant, rhs: Duration) -> Instant {
        Instant(nanoseconds: (Duration.nanoseconds(lhs.nanoseconds) - rhs).nanoseconds)
    }

    public static func - (lhs: Instant, rhs: Instant) -> Duration {
        .nanoseconds(lhs.nanoseconds) - .nanoseconds(rhs.nanoseconds)
    }

    public var description: String { Duration.nanoseconds(nanoseconds).secondsText }
}

extension Duration {
    /// "30 s", or "300 ms" when not a whole number of seconds: for messages.
    public var limitText: String {
        let (seconds, attoseconds) = components
        return attoseconds == 0 ? "\(seconds) s" : "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
    }

    /// Whole nanoseconds, saturating at Int64's range.
    public var nanoseconds: Int64 {
        // Compared first: `components` traps for durations whose seconds do not fit in Int64.
        if self >= .nanoseconds(Int64.max) { return .max }
        if self <= .nanoseconds(Int64.min) { return .min }
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled &+ attoseconds / 1_000_000_000
    }

    public var milliseconds: Double { Double(nanoseconds) / 1_000_000 }

    /// "12.345s" style, for logs and traces.
    public var secondsText: String {
        let ns = nanoseconds
        let sign = ns < 0 ? "-" : ""
        let magnitude = ns.magnitude
        let millis = (magnitude / 1_000_000) % 1000
        let padded = String(millis)
        return "\(sign)\(magnitude / 1_000_000_000).\(String(repeating: "0", count: 3 - padded.count))\(padded)s"
    }
}
