import CLinux
import Glibc

/// The daemon's only loop: level-triggered epoll, one timerfd for all timers, one `now` per
/// wakeup. Handlers run on this thread, one at a time, and must not block.
public final class EventLoop {
    public typealias Handler = (Readiness) throws -> Void

    private struct Entry {
        let fd: FileDescriptor
        let name: String
        var interest: Interest
        let onFailure: FailurePolicy
        let handler: Handler
    }

    public let clock: TimeSource
    public let logger: Logger
    /// The time of the current wakeup, shared by every handler it dispatches.
    public private(set) var now: Instant

    private let epoll: FileDescriptor
    private let timerFD: FileDescriptor
    private var registrations: [UInt64: Entry] = [:]
    /// epoll_wait's buffer, made once: a wakeup allocates nothing for it.
    private let events: UnsafeMutableBufferPointer<epoll_event>
    private var dispatching = false
    private var lastID: UInt64 = 0
    private static let timerRegistration: UInt64 = 0

    private var timerQueue = TimerQueue()
    private var timers: [UInt64: Timer] = [:]
    private var armedDeadline: Instant?
    private var stopRequested = false

    /// How many events and timers the loop dispatched (tests read it).
    public private(set) var dispatches: UInt64 = 0

    public init(clock: TimeSource = BootClock(), logger: Logger) throws {
        self.clock = clock
        self.logger = logger
        now = clock.now()
        events = .allocate(capacity: 64)
        epoll = FileDescriptor(rawValue: try systemCall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
        do {
            timerFD = FileDescriptor(rawValue: try systemCall("timerfd_create") {
                timerfd_create(CLOCK_BOOTTIME, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
            })
        } catch {
            epoll.close()
            events.deallocate()
            throw error
        }
        try control(EPOLL_CTL_ADD, timerFD, id: EventLoop.timerRegistration, interest: .readable)
    }

    deinit {
        timerFD.close()
        epoll.close()
        events.deallocate()
    }

    /// The number of live registrations, the loop's own timer not counted.
    public var registrationCount: Int { registrations.count }

    // MARK: Registrations

    /// Watches `fd` with a handler that cannot fail. The caller keeps owning the fd: deregister
    /// before closing it (or use a `Registration`, which owns its fd).
    @discardableResult
    public func register(_ fd: FileDescriptor, interest: Interest, name: String,
                         handler: @escaping (Readiness) -> Void) throws -> RegistrationID {
        // A handler that cannot throw never reaches its policy.
        try register(fd, interest: interest, name: name, onFailure: .stopLoop, handler: handler)
    }

    /// Watches `fd`; when `handler` throws, `onFailure` says what happens. The caller keeps
    /// owning the fd.
    @discardableResult
    public func register(_ fd: FileDescriptor, interest: Interest, name: String, onFailure: FailurePolicy,
                         handler: @escaping Handler) throws -> RegistrationID {
        lastID += 1
        try control(EPOLL_CTL_ADD, fd, id: lastID, interest: interest)
        registrations[lastID] = Entry(fd: fd, name: name, interest: interest, onFailure: onFailure, handler: handler)
        return RegistrationID(rawValue: lastID)
    }

    /// Whether `id` is in the loop: not yet deregistered, nor disabled after a failure.
    public func isRegistered(_ id: RegistrationID) -> Bool {
        registrations[id.rawValue] != nil
    }

    public func setInterest(_ id: RegistrationID, _ interest: Interest) throws {
        guard var entry = registrations[id.rawValue], entry.interest != interest else { return }
        try control(EPOLL_CTL_MOD, entry.fd, id: id.rawValue, interest: interest)
        entry.interest = interest
        registrations[id.rawValue] = entry
    }

    /// Stops watching. Safe from inside any handler, including the registration's own: events
    /// already fetched for it in this wakeup are dropped.
    public func deregister(_ id: RegistrationID) {
        guard let entry = registrations.removeValue(forKey: id.rawValue) else { return }
        do {
            try control(EPOLL_CTL_DEL, entry.fd, id: id.rawValue, interest: [])
        } catch {
            // The fd was closed before deregistration; the kernel already dropped it from the set.
            logger.debug(entry.name, "deregister: \(error)")
        }
    }

    private func control(_ operation: Int32, _ fd: FileDescriptor, id: UInt64, interest: Interest) throws {
        var event = epoll_event()
        event.events = interest.rawValue
        event.data.u64 = id
        _ = try systemCall("epoll_ctl") { epoll_ctl(epoll.rawValue, operation, fd.rawValue, &event) }
    }

    // MARK: Timers

    /// A timer with a fixed name and action; schedule it as often as needed.
    public func makeTimer(name: String, action: @escaping () -> Void) -> Timer {
        lastID += 1
        return Timer(loop: self, id: lastID, name: name, action: action)
    }

    func schedule(_ timer: Timer, at deadline: Instant) {
        timers[timer.id] = timer
        timerQueue.schedule(timer.id, at: deadline)
    }

    func cancel(_ timer: Timer) {
        timers[timer.id] = nil
        timerQueue.cancel(timer.id)
    }

    func deadline(of timer: Timer) -> Instant? {
        timerQueue.deadline(of: timer.id)
    }

    // MARK: Running

    /// Runs until `stop()` is called from a handler; throws `SourceFailure` when a vital
    /// source's handler failed.
    public func run() throws {
        stopRequested = false
        while !stopRequested {
            try runOnce(timeout: nil)
        }
    }

    /// Runs wakeups until `condition` holds or `limit` has passed on the loop's clock; returns
    /// whether it held. For the one-shot commands, which wait for one outcome and then exit.
    @discardableResult
    public func run(within limit: Duration, until condition: () -> Bool) throws -> Bool {
        let deadline = clock.now() + limit
        while !condition() {
            let left = deadline - clock.now()
            guard left > .zero else { return false }
            try runOnce(timeout: min(left, .milliseconds(250)))
        }
        return true
    }

    /// Asks `run()` to return after the current wakeup.
    public func stop() {
        stopRequested = true
    }

    /// One wakeup: waits for events (at most `timeout`; nil = until something happens),
    /// dispatches them, then runs the timers that are due. Not re-entrant: handlers never call it.
    public func runOnce(timeout: Duration? = nil) throws {
        precondition(!dispatching, "runOnce called from a handler")
        try armTimerFD()
        let waitMilliseconds: Int32 = timeout.map {
            let nanoseconds = max(0, $0.nanoseconds)  // rounded up, without overflowing at Int64.max
            return Int32(clamping: nanoseconds / 1_000_000 + (nanoseconds % 1_000_000 == 0 ? 0 : 1))
        } ?? -1
        let count = Int(try systemCall("epoll_wait") {
            epoll_wait(epoll.rawValue, events.baseAddress, Int32(events.count), waitMilliseconds)
        })
        now = clock.now()
        dispatching = true
        defer { dispatching = false }
        for index in 0..<count {
            let id = events[index].data.u64
            let readiness = Readiness(rawValue: events[index].events)
            if id == EventLoop.timerRegistration {
                drainTimerFD()
                continue
            }
            guard let entry = registrations[id] else { continue }
            dispatches += 1
            logger.trace(entry.name, "fd=\(entry.fd.rawValue) events=\(readiness)")
            do {
                try entry.handler(readiness)
            } catch {
                try failed(entry, RegistrationID(rawValue: id), error)
            }
        }
        runDueTimers()
    }

    /// A handler threw: its source leaves the loop, and its policy says what else happens.
    private func failed(_ entry: Entry, _ id: RegistrationID, _ error: any Error) throws {
        deregister(id)
        switch entry.onFailure {
        case .disable(let notify):
            logger.error(entry.name, "\(error); source disabled")
            notify(error)
        case .stopLoop:
            logger.error(entry.name, "\(error); stopping, this source is vital")
            throw SourceFailure(source: entry.name, error: error)
        }
    }

    private func runDueTimers() {
        for id in timerQueue.popDue(at: now) {
            guard let timer = timers.removeValue(forKey: id) else { continue }
            dispatches += 1
            logger.trace(timer.name, "timer")
            timer.action()
        }
    }

    private func drainTimerFD() {
        armedDeadline = nil  // a one-shot timerfd that fired is disarmed
        var expirations: UInt64 = 0
        // EAGAIN means another wakeup already consumed the expiry; nothing else can fail here.
        _ = withUnsafeMutableBytes(of: &expirations) { Glibc.read(timerFD.rawValue, $0.baseAddress, 8) }
    }

    /// Arms the timerfd to the earliest deadline, relative to the clock's `now` so that an
    /// injected clock works too. Unchanged deadlines cost no system call.
    private func armTimerFD() throws {
        let next = timerQueue.nextDeadline
        guard next != armedDeadline else { return }
        armedDeadline = next
        var spec = itimerspec()
        if let next {
            let delay = max(1, (next - clock.now()).nanoseconds)
            spec.it_value.tv_sec = Int(delay / 1_000_000_000)
            spec.it_value.tv_nsec = Int(delay % 1_000_000_000)
        }
        _ = try systemCall("timerfd_settime") { timerfd_settime(timerFD.rawValue, 0, &spec, nil) }
    }
}

/// A named one-shot timer owned by one piece of code. Scheduling it again replaces its
/// previous deadline; it fires at most once per scheduling.
public final class Timer {
    unowned let loop: EventLoop
    let id: UInt64
    public let name: String
    let action: () -> Void

    init(loop: EventLoop, id: UInt64, name: String, action: @escaping () -> Void) {
        self.loop = loop
        self.id = id
        self.name = name
        self.action = action
    }

    public func schedule(at deadline: Instant) {
        loop.schedule(self, at: deadline)
    }

    /// `delay` after the current wakeup's `now`.
    public func schedule(after delay: Duration) {
        loop.schedule(self, at: loop.now + delay)
    }

    public func cancel() {
        loop.cancel(self)
    }

    /// When it will fire, or nil when it is not scheduled.
    public var deadline: Instant? { loop.deadline(of: self) }

    public var isScheduled: Bool { deadline != nil }
}
