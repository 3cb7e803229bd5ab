import CLinux
import Glibc

/// Where the loop reads "now" from. Injectable so that timer logic is tested without sleeping.
public protocol TimeSource: AnyObject {
    func now() -> Instant
}

/// CLOCK_BOOTTIME: monotonic, and it advances during suspend.
public final class BootClock: TimeSource {
    public init() {}

    public func now() -> Instant {
        var spec = timespec()
        clock_gettime(CLOCK_BOOTTIME, &spec)
        return Instant(nanoseconds: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }
}

/// A clock that moves only when told to: for tests.
public final class ManualClock: TimeSource {
    private var current: Instant

    public init(start: Instant = Instant(nanoseconds: 1_000_000_000_000)) {
        current = start
    }

    public func now() -> Instant { current }

    public func advance(by duration: Duration) {
        current = current + duration
    }
}
