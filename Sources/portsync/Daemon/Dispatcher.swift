import Coordination
import Domain
import Reactor
import Sinks
import Watchers

/// The coordinator's shell: feeds it the observations, hands each port it decides on to every
/// client, and keeps one timer on its deadline (an expiry or the end of a burst).
final class Dispatcher {
    /// Runs after each observation or deadline has been dealt with.
    var afterBatch: () -> Void = {}
    /// A port was handed to the clients (after they were given it).
    var onHandOff: (PortChange) -> Void = { _ in }
    /// The winning source named no port any more (`Coordinator.Effect.withdrawn`).
    var onWithdrawn: (PortObservation.Source, ChangeReason) -> Void = { _, _ in }
    private(set) var portChanges = 0
    /// When the desired port last changed (wall clock).
    private(set) var lastChange: Int64?

    private let loop: EventLoop
    private let sinks: SinkSet
    private var runner: MachineRunner<Coordinator>!

    init(loop: EventLoop, sinks: SinkSet) {
        self.loop = loop
        self.sinks = sinks
        reset()
    }

    deinit { runner.stop() }

    var coordinator: Coordinator { runner.machine }

    func observed(_ observation: PortObservation) {
        runner.send(.observed(observation))
    }

    /// Forgets every observation (the sources were replaced); the next hand-off has `firstReason`.
    func reset(firstReason: ChangeReason = .started) {
        runner?.stop()
        runner = MachineRunner(loop: loop, name: "coordinator.timer", machine: Coordinator(firstReason: firstReason),
                               deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.afterBatch = { [unowned self] in self.afterBatch() }
    }

    private func perform(_ effect: Coordinator.Effect) {
        switch effect {
        case .apply(let change):
            sinks.apply(change)
            onHandOff(change)
        case .desiredPortChanged:
            portChanges += 1
            lastChange = WallClock.now
        case .withdrawn(let source, let reason):
            onWithdrawn(source, reason)
        case .outranked(let outranking):
            if outranking.isNew {
                loop.logger.info("portsync", outranking.description)
            } else {
                loop.logger.trace("portsync", outranking.description)
            }
        case .log(let level, let message):
            loop.logger.log(level, "portsync", message)
        }
    }
}
