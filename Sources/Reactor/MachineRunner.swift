/// A pure state machine as the shells drive it: inputs in, effects out, one deadline.
public protocol LoopStateMachine {
    associatedtype Input
    associatedtype Effect

    mutating func handle(_ input: Input, now: Instant) -> [Effect]
    /// When the machine wants `deadlineInput` next; nil: not at all.
    var nextDeadline: Instant? { get }
}

/// Runs a pure state machine in the loop: feeds it one input at a time (inputs that arrive
/// while effects are carried out wait their turn, so the machine never re-enters itself),
/// carries out its effects, and keeps one timer on its next deadline.
public final class MachineRunner<Machine: LoopStateMachine> {
    public private(set) var machine: Machine
    /// Carries out one effect; set by the owner (capture it unowned).
    public var perform: (Machine.Effect) -> Void = { _ in }
    /// Runs after each batch of inputs, before the timer is armed.
    public var afterBatch: () -> Void = {}

    private let loop: EventLoop
    private let deadlineInput: Machine.Input
    private var pending: [Machine.Input] = []
    private var running = false
    private var timer: Timer!

    public init(loop: EventLoop, name: String, machine: Machine, deadlineInput: Machine.Input) {
        self.loop = loop
        self.machine = machine
        self.deadlineInput = deadlineInput
        timer = loop.makeTimer(name: name) { [unowned self] in self.send(self.deadlineInput) }
    }

    deinit { timer.cancel() }

    public func send(_ input: Machine.Input) {
        pending.append(input)
        guard !running else { return }
        running = true
        defer { running = false }
        while !pending.isEmpty {
            for effect in machine.handle(pending.removeFirst(), now: loop.now) { perform(effect) }
        }
        afterBatch()
        if let deadline = machine.nextDeadline { timer.schedule(at: deadline) } else { timer.cancel() }
    }

    /// Stops the timer (the owner is shutting down).
    public func stop() {
        timer.cancel()
    }
}
