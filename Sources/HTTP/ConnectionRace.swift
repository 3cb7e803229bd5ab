import Reactor

/// Connecting to one of a host's addresses as RFC 8305 (Happy Eyeballs) does, the pure machine:
/// the first attempt at once, the next one `stagger` later while none has connected, or at once
/// when the last one started failed; the first to connect wins and the others are abandoned.
/// All of it within one deadline, however many addresses there are. Attempts are the
/// addresses' indexes, in the order `interleaved` gives.
struct ConnectionRace: LoopStateMachine {
    enum Input: Equatable {
        case start
        case connected(attempt: Int)
        case failed(attempt: Int, TCPConnectionError)
        case deadlineReached
    }

    enum Effect: Equatable {
        /// Start connecting to the address `attempt`.
        case attempt(Int)
        /// Close an attempt still connecting: another won, or time is up.
        case abandon(Int)
        case won(Int)
        /// None connected: the last failure, or `.timedOut` at the deadline.
        case failed(TCPConnectionError)
    }

    /// RFC 8305 §5's recommended delay between attempts.
    static let defaultStagger = Duration.milliseconds(250)

    let addressCount: Int
    let stagger: Duration
    let timeout: Duration
    /// The next address to try, and the attempts still connecting.
    private var next = 0
    private var connecting: [Int] = []
    private var deadline: Instant?
    private var nextAttemptAt: Instant?
    private(set) var isFinished = false

    init(addressCount: Int, stagger: Duration = defaultStagger, timeout: Duration) {
        precondition(addressCount > 0, "a race needs an address")
        self.addressCount = addressCount
        self.stagger = stagger
        self.timeout = timeout
    }

    var nextDeadline: Instant? {
        guard let deadline else { return nil }
        return nextAttemptAt.map { min($0, deadline) } ?? deadline
    }

    mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        guard !isFinished else { return [] }
        switch input {
        case .start:
            guard deadline == nil else { return [] }
            deadline = now + timeout
            return startNext(now)
        case .connected(let attempt):
            guard connecting.contains(attempt) else { return [] }
            return finish(.won(attempt), keeping: attempt)
        case .failed(let attempt, let error):
            guard let index = connecting.firstIndex(of: attempt) else { return [] }
            connecting.remove(at: index)
            // An attempt's own timeout, due with the race's deadline, starts nothing more.
            if let deadline, now >= deadline { return finish(.failed(.timedOut)) }
            if next < addressCount { return startNext(now) }
            return connecting.isEmpty ? finish(.failed(error)) : []
        case .deadlineReached:
            guard let deadline else { return [] }
            if now >= deadline { return finish(.failed(.timedOut)) }
            guard let nextAttemptAt, now >= nextAttemptAt else { return [] }
            return startNext(now)
        }
    }

    private mutating func startNext(_ now: Instant) -> [Effect] {
        let attempt = next
        next += 1
        connecting.append(attempt)
        nextAttemptAt = next < addressCount ? now + stagger : nil
        return [.attempt(attempt)]
    }

    private mutating func finish(_ outcome: Effect, keeping winner: Int? = nil) -> [Effect] {
        isFinished = true
        deadline = nil
        nextAttemptAt = nil
        let abandoned = connecting.filter { $0 != winner }
        connecting = []
        return abandoned.map(Effect.abandon) + [outcome]
    }

    /// The addresses with the families taking turns, starting with the first address's family
    /// (RFC 8305 §4), each family's addresses in the order given: a family that does not work
    /// costs one stagger per turn, not one per address.
    static func interleaved(_ addresses: [SocketAddress]) -> [SocketAddress] {
        guard let first = addresses.first else { return [] }
        let preferred = addresses.filter { $0.family == first.family }
        let other = addresses.filter { $0.family != first.family }
        var result: [SocketAddress] = []
        for index in 0..<max(preferred.count, other.count) {
            if index < preferred.count { result.append(preferred[index]) }
            if index < other.count { result.append(other[index]) }
        }
        return result
    }
}
