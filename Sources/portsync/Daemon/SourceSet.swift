import Domain
import Reactor
import Watchers

/// The watchers of a plan's sources, started and stopped together: observations go to
/// `onObservation`, and `onChange` hears of everything else that changes the daemon's state
/// (the tunnel, a failed NAT-PMP cycle).
final class SourceSet {
    var onObservation: (PortObservation) -> Void = { _ in }
    var onChange: () -> Void = {}
    /// The tunnel came back (or was recreated) after having been usable before.
    var onTunnelBack: (Tunnel) -> Void = { _ in }

    /// Replaced on a reload, between `stop()` and `start`.
    var sources: [SyncPlan.Source]
    private let loop: EventLoop
    private var files: [PortFileWatcher] = []
    private var gluetun: GluetunPoller?
    private var tunnelWatcher: TunnelWatcher?
    private(set) var natpmp: NATPMPClient?
    private var recovery: RecoveryCommand?
    private var lastTunnel: Tunnel?
    private(set) var link: TunnelTracker.State?
    /// NAT-PMP mapped or failed at least once.
    private(set) var natpmpTried = false
    private(set) var natpmpFailures = 0
    /// When the NAT-PMP lease was last granted or renewed (wall clock).
    private(set) var lastRenewal: Int64?

    init(loop: EventLoop, sources: [SyncPlan.Source]) {
        self.loop = loop
        self.sources = sources
    }

    /// The tunnel being down is the health (NAT-PMP is the only source).
    var tunnelDecides: Bool {
        sources.contains { if case .natpmp(let natpmp) = $0 { natpmp.tunnelDecides } else { false } }
    }

    /// `preferred`, `internalPort`: what the last run used, so that NAT-PMP keeps them.
    func start(preferred: Port?, internalPort: UInt16?) throws {
        for source in sources {
            switch source {
            case .portFile(let name, let path, let source, let portIndex):
                let watcher = PortFileWatcher(loop: loop, name: name, path: path, source: source, portIndex: portIndex) {
                    [unowned self] observation in self.onObservation(observation)
                }
                try watcher.start()
                files.append(watcher)
            case .gluetun(let settings):
                let poller = GluetunPoller(loop: loop, settings: settings) { [unowned self] observation in self.onObservation(observation) }
                poller.start()
                gluetun = poller
            case .natpmp(let plan):
                try startNATPMP(plan, preferred: preferred, internalPort: internalPort)
            }
        }
    }

    private func startNATPMP(_ plan: SyncPlan.NATPMP, preferred: Port?, internalPort: UInt16?) throws {
        let client = NATPMPClient(loop: loop, settings: plan.settings) { [unowned self] observation in
            self.natpmpTried = true
            if observation.port != nil { self.lastRenewal = WallClock.now }
            self.onObservation(observation)
        }
        if let preferred { client.prefer(preferred) }
        if let internalPort { client.restore(internalPort: internalPort) }
        if !plan.recoveryCommand.isEmpty {
            recovery = RecoveryCommand(loop: loop, command: plan.recoveryCommand, threshold: plan.recoveryAfter,
                                       cooldown: plan.recoveryCooldown)
        }
        client.onFailure = { [unowned self] streak in
            self.natpmpTried = true
            self.natpmpFailures += 1
            self.recovery?.failed(streak: streak)
            self.onChange()
        }
        natpmp = client
        let watcher = TunnelWatcher(loop: loop, interface: plan.interface, gateway: plan.gateway) { [unowned self] state in
            self.tunnelChanged(state)
        }
        tunnelWatcher = watcher
        try watcher.start()
    }

    /// `deleteMappings`: only when portsync stops (delete_on_exit), never on a reload.
    func stop(deleteMappings: Bool = false) {
        files.forEach { $0.stop() }
        files = []
        gluetun?.stop()
        gluetun = nil
        tunnelWatcher?.stop()
        tunnelWatcher = nil
        natpmp?.stop(deleteMappings: deleteMappings)
        natpmp = nil
        recovery = nil
        link = nil
        lastTunnel = nil
    }

    /// The tunnel came, went or changed.
    private func tunnelChanged(_ state: TunnelTracker.State) {
        link = state
        natpmp?.tunnelChanged(state)
        if case .usable(let tunnel) = state {
            if lastTunnel != nil { onTunnelBack(tunnel) }
            lastTunnel = tunnel
        }
        onChange()
    }

    /// Whether NAT-PMP, when in use, has settled for readiness: mapped or failed once, or the
    /// tunnel is not there at all.
    var natpmpSettled: Bool {
        guard natpmp != nil else { return true }
        switch link {
        case nil, .awaitingRoute?: return false
        case .unusable?: return true
        case .usable?: return natpmpTried
        }
    }
}
