import Domain
import Reactor
import Watchers

/// The plan's sources, started and stopped together: observations go to `onObservation`, and
/// `onChange` hears of everything else that changes the daemon's state (a tunnel, a failed
/// cycle). It knows sources only as `PortSource`s: their rank is in their observations, their
/// state in their status.
final class SourceSet {
    var onObservation: (PortObservation) -> Void = { _ in }
    var onChange: () -> Void = {}
    /// A source's tunnel came back (or was recreated) after having been usable before.
    var onTunnelBack: (Tunnel) -> Void = { _ in }

    private let loop: EventLoop
    private(set) var plan: SyncPlan.Sources
    private(set) var sources: [any PortSource] = []
    private var recovery: RecoveryCommand?
    /// Per source, by name: the last link seen, whether it was ever usable, the failure streak.
    private var links: [String: TunnelTracker.State] = [:]
    private var wasUsable: Set<String> = []
    private var streaks: [String: Int] = [:]

    init(loop: EventLoop, plan: SyncPlan.Sources) {
        self.loop = loop
        self.plan = plan
    }

    /// `memory`: the port and what each source kept, from the state file.
    func start(memory: (PortObservation.Source) -> SourceMemory) throws {
        if let command = plan.recovery {
            recovery = RecoveryCommand(loop: loop, command: command.command, threshold: command.after, cooldown: command.cooldown)
        }
        for settings in plan.settings {
            let source = settings.makeSource(loop: loop, memory: memory(settings.identity))
            source.onObservation = { [unowned self] observation in self.onObservation(observation) }
            source.onStatusChange = { [unowned self, unowned source] in self.statusChanged(source) }
            sources.append(source)
            try source.start()
        }
    }

    /// A reload with other sources: the running ones stop, `start` makes the new ones.
    func replace(with plan: SyncPlan.Sources) {
        stop()
        self.plan = plan
    }

    /// `final`: only when portsync stops (a source may then drop its mappings), never on a reload.
    func stop(final: Bool = false) {
        sources.forEach { $0.stop(final: final) }
        sources = []
        recovery = nil
        links = [:]
        wasUsable = []
        streaks = [:]
    }

    /// Runs the recovery command, when there is one, for `reason`; false when there is none.
    func recover(because reason: String) -> Bool {
        guard let recovery else { return false }
        recovery.run(because: reason)
        return true
    }

    /// Every source that maps the port at a gateway asks for its mapping again.
    func remap() {
        sources.forEach { $0.remap() }
    }

    func clientsVerified(_ port: Port) {
        sources.forEach { $0.clientsVerified(port) }
    }

    private func statusChanged(_ source: any PortSource) {
        let name = source.identity.rawValue
        let status = source.status
        if let link = status.link, link != links[name] {
            links[name] = link
            if case .usable(let tunnel) = link {
                if wasUsable.contains(name) { onTunnelBack(tunnel) }
                wasUsable.insert(name)
            }
        }
        if status.failureStreak > streaks[name, default: 0], plan.recovery?.source == source.identity {
            recovery?.failed(streak: status.failureStreak)
        }
        streaks[name] = status.failureStreak
        onChange()
    }

    var statuses: [(source: PortObservation.Source, status: SourceStatus)] {
        sources.map { ($0.identity, $0.status) }
    }

    /// The tunnel of the first source that speaks through one.
    var link: TunnelTracker.State? {
        sources.lazy.compactMap(\.status.link).first
    }

    /// The tunnel being down is the health when the only source speaks through it.
    var tunnelDecides: Bool {
        sources.count == 1 && sources[0].status.link != nil
    }

    /// Every source has had its first try, for readiness.
    var settled: Bool {
        sources.allSatisfy(\.status.settled)
    }

    func status(of source: PortObservation.Source) -> SourceStatus? {
        sources.first { $0.identity == source }?.status
    }
}
