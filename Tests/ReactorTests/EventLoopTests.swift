import CLinux
import Glibc
import Testing
@testable import Reactor
import TestSupport

@Suite struct EventLoopTests {
    @Test func timersFireInDeadlineOrderOnAnInjectedClock() throws {
        let clock = ManualClock()
        let loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        var fired: [String] = []
        let late = loop.makeTimer(name: "late") { fired.append("late") }
        let early = loop.makeTimer(name: "early") { fired.append("early") }
        let middle = loop.makeTimer(name: "middle") { fired.append("middle") }
        late.schedule(after: .seconds(30))
        early.schedule(after: .seconds(10))
        middle.schedule(after: .seconds(20))

        clock.advance(by: .seconds(15))
        try loop.runOnce(timeout: .zero)
        #expect(fired == ["early"])
        clock.advance(by: .seconds(60))
        try loop.runOnce(timeout: .zero)
        #expect(fired == ["early", "middle", "late"])
        #expect(early.deadline == nil)
    }

    @Test func reArmingReplacesThePreviousDeadline() throws {
        let clock = ManualClock()
        let loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        var count = 0
        let timer = loop.makeTimer(name: "renew") { count += 1 }
        timer.schedule(after: .seconds(5))
        timer.schedule(after: .seconds(45))
        clock.advance(by: .seconds(10))
        try loop.runOnce(timeout: .zero)
        #expect(count == 0)
        clock.advance(by: .seconds(40))
        try loop.runOnce(timeout: .zero)
        #expect(count == 1)
        clock.advance(by: .seconds(100))
        try loop.runOnce(timeout: .zero)
        #expect(count == 1, "a timer fires once per scheduling")
    }

    @Test func cancelledTimerNeverFires() throws {
        let clock = ManualClock()
        let loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        var fired = false
        let timer = loop.makeTimer(name: "t") { fired = true }
        timer.schedule(after: .seconds(1))
        timer.cancel()
        clock.advance(by: .seconds(2))
        try loop.runOnce(timeout: .zero)
        #expect(!fired)
    }

    @Test func aTimerRescheduledFromItsOwnActionWaitsForTheNextWakeup() throws {
        let clock = ManualClock()
        let loop = try EventLoop(clock: clock, logger: LogCapture().logger)
        var count = 0
        var timer: Reactor.Timer!
        timer = loop.makeTimer(name: "tick") {
            count += 1
            timer.schedule(after: .zero)
        }
        timer.schedule(after: .zero)
        try loop.runOnce(timeout: .zero)
        #expect(count == 1)
        try loop.runOnce(timeout: .zero)
        #expect(count == 2)
    }

    @Test func theTimerfdWakesTheLoopOnTheRealClock() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var fired = false
        let timer = loop.makeTimer(name: "real") { fired = true }
        timer.schedule(after: .milliseconds(20))
        // One wakeup with a 10 s ceiling: the timer must be what ended it.
        try loop.runOnce(timeout: .seconds(10))
        #expect(fired && loop.dispatches == 1, "woken by the timerfd, not by the timeout")
    }

    @Test func runWithinStopsWhenTheConditionHoldsOrTheTimeIsUp() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var fired = false
        let timer = loop.makeTimer(name: "t") { fired = true }
        timer.schedule(after: .milliseconds(30))
        #expect(try loop.run(within: .seconds(5)) { fired })
        #expect(try loop.run(within: .milliseconds(100)) { false } == false)
    }

    @Test func deregisteringAnotherSourceInsideAHandlerDropsItsPendingEvent() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let first = Pipe(), second = Pipe()
        defer { first.close(); second.close() }
        first.write("a")
        second.write("b")
        var calls: [String] = []
        var ids: [String: RegistrationID] = [:]
        for (name, pipe, other) in [("first", first, "second"), ("second", second, "first")] {
            ids[name] = try loop.register(pipe.readEnd, interest: .readable, name: name, onFailure: .stopLoop) { _ in
                calls.append(name)
                _ = try drain(pipe.readEnd)
                loop.deregister(ids[other]!)
            }
        }
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(calls.count == 1, "both were readable, but whichever ran first removed the other: \(calls)")
        #expect(loop.registrationCount == 1)
    }

    @Test func deregisteringItselfInsideItsHandlerIsSafe() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let pipe = Pipe()
        defer { pipe.close() }
        pipe.write("x")
        var calls = 0
        var id: RegistrationID!
        id = try loop.register(pipe.readEnd, interest: .readable, name: "self") { _ in
            calls += 1
            loop.deregister(id)
        }
        try loop.runOnce(timeout: .milliseconds(100))
        try loop.runOnce(timeout: .zero)
        #expect(calls == 1, "still readable, but no longer registered")
        #expect(loop.registrationCount == 0)
    }

    @Test func aReusedFdNumberNeverReceivesTheOldRegistrationsEvents() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let first = Pipe(), second = Pipe()
        first.write("a")
        second.write("b")
        var calls: [String] = []
        var ids: [String: RegistrationID] = [:]
        var replacement: Pipe?
        var swapped = false
        for (name, pipe, otherName, other) in [("first", first, "second", second), ("second", second, "first", first)] {
            ids[name] = try loop.register(pipe.readEnd, interest: .readable, name: name, onFailure: .stopLoop) { _ in
                calls.append(name)
                _ = try drain(pipe.readEnd)
                guard !swapped else { return }
                swapped = true
                // Remove the other source, close its fd, and put a new, empty pipe on the same number.
                loop.deregister(ids[otherName]!)
                let fresh = Pipe()
                precondition(dup2(fresh.readEnd.rawValue, other.readEnd.rawValue) == other.readEnd.rawValue)
                fresh.readEnd.close()
                replacement = Pipe.adopting(read: other.readEnd, write: fresh.writeEnd)
                try loop.register(other.readEnd, interest: .readable, name: "reused", onFailure: .stopLoop) { _ in
                    calls.append("reused")
                    _ = try drain(other.readEnd)
                }
            }
        }
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(calls.count == 1, "the old event must not reach the reused fd's handler: \(calls)")
        replacement!.write("c")
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(calls.last == "reused")
        #expect(calls.count == 2)
        let (ran, swappedOut) = calls.first == "first" ? (first, second) : (second, first)
        ran.close()
        swappedOut.writeEnd.close()
        replacement!.close()  // the reused read-end number and the fresh write end
    }

    @Test func aHandlerDrainsUntilWouldBlockAndTheLoopThenSleeps() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let pipe = Pipe()
        defer { pipe.close() }
        let payload = [UInt8](repeating: 7, count: 60_000)
        #expect(try pipe.writeEnd.write(payload) == .done(60_000))
        var received = 0
        var wouldBlockSeen = false
        try loop.register(pipe.readEnd, interest: .readable, name: "drain", onFailure: .stopLoop) { _ in
            while true {
                switch try pipe.readEnd.read(upTo: 1024) {
                case .done(let bytes): received += bytes.count
                case .wouldBlock: wouldBlockSeen = true; return
                }
            }
        }
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(received == 60_000)
        #expect(wouldBlockSeen)
        let dispatches = loop.dispatches
        try loop.runOnce(timeout: .zero)
        #expect(loop.dispatches == dispatches, "nothing left to dispatch once drained")
    }

    @Test func aThrowingHandlerIsLoggedItsSourceDisabledAndItsOwnerTold() throws {
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        let pipe = Pipe()
        defer { pipe.close() }
        pipe.write("x")
        var calls = 0
        var told: [String] = []
        let id = try loop.register(pipe.readEnd, interest: .readable, name: "broken.source",
                                   onFailure: .disable { told.append("\($0)") }) { _ in
            calls += 1
            throw SystemCallError(call: "recv", errno: .connectionReset)
        }
        try loop.runOnce(timeout: .milliseconds(100))
        try loop.runOnce(timeout: .zero)
        #expect(calls == 1)
        #expect(!loop.isRegistered(id))
        #expect(told == ["recv: Connection reset by peer (errno 104)"])
        #expect(log.lines.contains { $0.contains("broken.source: recv: Connection reset by peer (errno 104); source disabled") }, "\(log.lines)")
    }

    @Test func aVitalSourceThatFailsStopsTheLoopWithItsError() throws {
        let log = LogCapture()
        let loop = try EventLoop(logger: log.logger)
        let pipe = Pipe()
        defer { pipe.writeEnd.close() }
        let source = try Registration(loop: loop, owning: pipe.readEnd, interest: .readable, name: "signal", onFailure: .stopLoop) { _ in
            throw SystemCallError(call: "read", errno: .badFileDescriptor)
        }
        pipe.write("x")
        let failure = #expect(throws: SourceFailure.self) { try loop.run() }
        #expect(failure?.description == "signal: read: Bad file descriptor (errno 9)")
        #expect(!source.isEnabled)
        #expect(log.lines.contains { $0.contains("signal: read: Bad file descriptor (errno 9); stopping, this source is vital") }, "\(log.lines)")
    }

    @Test func aRegistrationOwnsItsFdDisablesEnablesAndClosesItOnCancel() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        let pipe = Pipe()
        defer { pipe.writeEnd.close() }
        pipe.write("x")
        var calls = 0
        let source = try Registration(loop: loop, owning: pipe.readEnd, interest: .readable, name: "owned") { _ in calls += 1 }
        source.disable()
        try loop.runOnce(timeout: .milliseconds(50))
        #expect(calls == 0 && !source.isEnabled, "disabled: out of epoll")
        try source.enable()
        try loop.runOnce(timeout: .milliseconds(50))
        #expect(calls == 1 && source.isEnabled)
        source.cancel()
        source.cancel()
        #expect(loop.registrationCount == 0)
        var writer = pollfd(fd: pipe.writeEnd.rawValue, events: Int16(POLLOUT), revents: 0)
        #expect(poll(&writer, 1, 0) == 1 && writer.revents & Int16(POLLERR) != 0, "the read end closed with the registration")
    }

    @Test func systemCallErrorsReadWell() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        #expect(throws: SystemCallError(call: "epoll_ctl", errno: .badFileDescriptor)) {
            try loop.register(FileDescriptor(rawValue: 987_654), interest: .readable, name: "bad") { _ in }
        }
        #expect(SystemCallError(call: "epoll_ctl", errno: .badFileDescriptor).description == "epoll_ctl: Bad file descriptor (errno 9)")
        #expect(Errno.badFileDescriptor.name == "EBADF" && Errno(rawValue: 9).description == "Bad file descriptor (errno 9)")
        #expect(Errno(rawValue: 4095).name == "errno 4095")
    }

    @Test func traceShowsEveryDispatchedEvent() throws {
        let log = LogCapture()
        log.logger.traceEnabled = true
        let loop = try EventLoop(logger: log.logger)
        let pipe = Pipe()
        defer { pipe.close() }
        pipe.write("x")
        try loop.register(pipe.readEnd, interest: .readable, name: "proton.file", onFailure: .stopLoop) { _ in _ = try drain(pipe.readEnd) }
        let timer = loop.makeTimer(name: "natpmp.renew") {}
        timer.schedule(after: .zero)
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(log.lines.contains { $0.contains("trace") && $0.contains("proton.file: fd=\(pipe.readEnd.rawValue) events=IN") })
        #expect(log.lines.contains { $0.contains("natpmp.renew: timer") })
    }

    @Test func wakeupCoalescesSignalsIntoOneCall() throws {
        let loop = try EventLoop(logger: LogCapture().logger)
        var calls = 0
        let wakeup = try Wakeup(loop: loop, name: "wakeup") { calls += 1 }
        try wakeup.signal()
        try wakeup.signal()
        try wakeup.signal()
        try loop.runOnce(timeout: .milliseconds(100))
        try loop.runOnce(timeout: .zero)
        #expect(calls == 1)
        try wakeup.signal()
        try loop.runOnce(timeout: .milliseconds(100))
        #expect(calls == 2)
        wakeup.close()
    }
}

extension Pipe {
    static func adopting(read: FileDescriptor, write: FileDescriptor) -> Pipe {
        Pipe(readEnd: read, writeEnd: write)
    }

    init(readEnd: FileDescriptor, writeEnd: FileDescriptor) {
        self.readEnd = readEnd
        self.writeEnd = writeEnd
    }
}
