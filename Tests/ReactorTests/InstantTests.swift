import Testing
@testable import Reactor
import TestSupport

@Suite struct InstantTests {
    @Test func arithmeticSaturatesInsteadOfWrapping() {
        let now = Instant(nanoseconds: 5_000_000_000)
        #expect(now + .seconds(Int64.max) == Instant(nanoseconds: .max), "centuries out stays in the future")
        #expect(Instant(nanoseconds: .max - 1) + .nanoseconds(10) == Instant(nanoseconds: .max))
        #expect(Instant(nanoseconds: .min + 1) - .nanoseconds(10) == Instant(nanoseconds: .min))
        #expect(now - .seconds(-Int64.max) == Instant(nanoseconds: .max))
        #expect(now + .seconds(-Int64.max) == Instant(nanoseconds: .min))
        #expect(Instant(nanoseconds: .max) - Instant(nanoseconds: .min) > .seconds(18_000_000_000))
        #expect(now + .seconds(1) == Instant(nanoseconds: 6_000_000_000))
        #expect(now - Instant(nanoseconds: 2_000_000_000) == .seconds(3))
    }

    @Test func anEndlessTimeoutDoesNotOverflow() throws {
        let loop = try EventLoop(logger: Logger(level: .error, style: .plain) { _ in })
        let wakeup = try Wakeup(loop: loop, name: "test.wakeup") {}
        try wakeup.signal()
        defer { wakeup.close() }
        try loop.runOnce(timeout: .seconds(Int64.max))
    }
}
