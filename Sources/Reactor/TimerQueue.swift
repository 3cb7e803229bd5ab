/// Deadlines of the loop's timers, one per owner: scheduling an owner again replaces its
/// previous deadline. A handful of timers live at once, so a linear scan beats a heap here.
struct TimerQueue {
    private struct Entry {
        var deadline: Instant
        var sequence: UInt64
    }

    private var entries: [UInt64: Entry] = [:]
    private var sequence: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty }

    mutating func schedule(_ owner: UInt64, at deadline: Instant) {
        sequence += 1
        entries[owner] = Entry(deadline: deadline, sequence: sequence)
    }

    mutating func cancel(_ owner: UInt64) {
        entries[owner] = nil
    }

    func deadline(of owner: UInt64) -> Instant? {
        entries[owner]?.deadline
    }

    var nextDeadline: Instant? {
        entries.values.min { $0.deadline < $1.deadline }?.deadline
    }

    /// Removes and returns the owners due at `now`, earliest first (ties: scheduled first).
    mutating func popDue(at now: Instant) -> [UInt64] {
        let due = entries.filter { $0.value.deadline <= now }
            .sorted { ($0.value.deadline, $0.value.sequence) < ($1.value.deadline, $1.value.sequence) }
        for (owner, _) in due { entries[owner] = nil }
        return due.map(\.key)
    }
}
