import Coordination
import HTTP
import Reactor
import Sinks
import Watchers

/// `portsync run`: wires the plan's sources to the coordinator, the coordinator to the clients,
/// and the outcome to the state file, systemd and the metrics. It stops cleanly on SIGTERM/SIGINT
/// and re-reads the configuration on SIGHUP (a bad new one is reported and the old one kept).
/// The loop (and so its clock) comes from outside: tests drive the daemon in their own loop.
final class Daemon {
    private let loop: EventLoop
    private let loader: ConfigurationLoader
    private(set) var loaded: LoadedConfiguration
    let sinks: SinkSet
    let sources: SourceSet
    let recorder: StateRecorder
    let history: HistoryRecorder
    private(set) var connectability: ConnectabilityWatch
    /// `[notify]`; `notifications.notify(_:)` tells of what the daemon decides elsewhere.
    let notifications: Notifications
    private let dispatcher: Dispatcher
    /// What the connectability was last looked at for: a port verified, a tunnel, a trouble.
    private var lookedAt: String?
    private var recording = false
    private var reloads = ReloadCounts()
    private var recordAgain = false
    /// The kind of verdict the notifications last went by.
    private var toldVerdict: Connectability.Verdict.Kind?
    /// When the clients were last asked what they say of their connectability.
    private var lastObserved: (at: Instant, port: Port?)?
    static let observeSpacing = Duration.seconds(5)
    private let socketTable = SocketTable()
    private var systemd: SystemdService!
    private var metricsServer: HTTPServer?

    init(loop: EventLoop, loader: ConfigurationLoader, loaded: LoadedConfiguration, environment: [String: String]) {
        self.loop = loop
        self.loader = loader
        self.loaded = loaded
        let plan = SyncPlan(loaded)
        sinks = SinkSet(loop: loop, settings: plan.sinks)
        sources = SourceSet(loop: loop, plan: plan.sources)
        recorder = StateRecorder(path: loaded.configuration.daemon.stateFile, logger: loop.logger)
        history = HistoryRecorder(stateFile: loaded.configuration.daemon.stateFile, logger: loop.logger)
        notifications = Notifications(loop: loop, settings: plan.notify)
        dispatcher = Dispatcher(loop: loop, sinks: sinks)
        connectability = Self.makeConnectability(loop, loaded.configuration)
        systemd = SystemdService(loop: loop, environment: environment) { [unowned self] in self.snapshot().statusLine }
        dispatcher.afterBatch = { [unowned self] in self.recordOutcome() }
        dispatcher.onHandOff = { [unowned self] change in self.history.handedOff(change, clients: self.sinks.clients, now: self.loop.now) }
        dispatcher.onWithdrawn = { [unowned self] source, reason in
            self.history.withdrawn(source: source.rawValue, reason: reason, clients: self.sinks.clients)
        }
        history.onRecord = { [unowned self] record in
            self.notifications.recorded(record, clients: self.sinks.clients, sources: self.sources.statuses)
        }
        sources.onObservation = { [unowned self] observation in self.dispatcher.observed(observation) }
        sources.onChange = { [unowned self] in self.recordOutcome() }
        sources.onTunnelBack = { [unowned self] tunnel in
            guard self.dispatcher.coordinator.desired != nil else { return }
            self.loop.logger.info("portsync", "the tunnel is back (\(tunnel.interface) \(tunnel.address), index \(tunnel.index)): checking the clients' listeners")
            self.sinks.interfacesChanged()
        }
        sinks.onStatusChange = { [unowned self] status in
            if status.health == .verified, let port = status.verifiedPort { self.sources.clientsVerified(port) }
            self.recordOutcome()
        }
        wire(connectability)
    }

    /// `[connectability]` as configured: the monitor's timing and heals, and the outside check.
    private static func makeConnectability(_ loop: EventLoop, _ configuration: Configuration) -> ConnectabilityWatch {
        let settings = configuration.connectability
        let outside = settings.checkURL.isEmpty ? nil
            : OutsideCheck(loop: loop, template: OutsideCheck.Template(text: settings.checkURL), tls: settings.tls.options)
        return ConnectabilityWatch(loop: loop, settings: settings.monitor, outside: outside)
    }

    private func wire(_ connectability: ConnectabilityWatch) {
        connectability.gather = { [unowned self] in self.connectabilityFacts() }
        connectability.reopen = { [unowned self] label in self.sinks.reassert(label) }
        // The history is about ports: verdicts count from the first port on.
        connectability.onRecord = { [unowned self] record, verdictChanged in
            guard let port = self.dispatcher.coordinator.desired else { return }
            self.history.connectability(record)
            // The person hears of a loss and of a recovery, not of every change of cause.
            guard verdictChanged, record.kind != self.toldVerdict else { return }
            self.toldVerdict = record.kind
            if record.kind == .connectable {
                self.notifications.notify(.connectabilityRecovered(port: port))
            } else if record.kind == .notConnectable {
                self.notifications.notify(.connectabilityLost(port: port, why: record.detail ?? "not connectable"))
            }
        }
        connectability.onChange = { [unowned self] in self.recordOutcome() }
        connectability.onHealFailed = { [unowned self] cause in
            if !self.sources.recover(because: "not connectable: \(cause)") {
                self.loop.logger.warning(ConnectabilityWatch.name, "nothing more to try: see portsync status; a recovery_command would be run now")
            }
        }
        connectability.remap = { [unowned self] in self.sources.remap() }
    }

    /// Runs until SIGTERM or SIGINT. A second daemon on the same state file is refused, naming
    /// the first: both would set the same clients. (The lock stays with the state file the
    /// daemon started with; a reload that moves the file keeps it.)
    func run() throws -> ExitCode {
        let stateFile = loaded.configuration.daemon.stateFile
        let lock: StateLock?
        do {
            switch try StateLock.acquire(stateFile: stateFile) {
            case .success(let held): lock = held
            case .failure(let held):
                loop.logger.error("portsync", "another portsync\(held.pid.map { " (pid \($0))" } ?? "") already runs on the state file \(stateFile) (its lock \(held.path)); one daemon per state: stop it first, or give this one its own [daemon] state_file")
                return .usageOrConfiguration
            }
        } catch {
            lock = nil
            loop.logger.warning("portsync", "cannot lock the state file: \(error); a second daemon on it would not be stopped")
        }
        defer { withExtendedLifetime(lock) {} }
        let signals = try SignalSource(loop: loop) { [unowned self] signal in self.handle(signal) }
        defer { signals.close() }
        try start()
        try loop.run()
        stop()
        return .success
    }

    func start() throws {
        let configuration = loaded.configuration
        recorder.load()
        history.load()
        let clients = (SyncPlan(loaded).sinks.map(\.summary) + [configuration.notify.summary].compactMap { $0 }).joined(separator: ", ")
        loop.logger.info("portsync", "\(CommandLineInterface.version) running (pid \(ProcessEnvironment.processID)); strategy \(configuration.source.strategy.rawValue), \(clients), configuration \(configuration.file ?? "defaults")")
        try sources.start(memory: remembered)
        sinks.connect()
        startMetrics(configuration.daemon.metricsListen)
        systemd.start()
        systemd.update(settled: settled)
    }

    func stop() {
        systemd.stopping()
        // A change handed off but not yet verified is kept, with what each client did so far.
        history.flush(sinks.clients, now: loop.now)
        connectability.stop()
        metricsServer?.close()
        sources.stop(final: true)
        loop.logger.info("portsync", "stopped")
    }

    /// After every change: the state file, then systemd; a look at the connectability when a
    /// port was verified, the tunnel changed, or trouble began.
    private func recordOutcome() {
        // A look made here is judged at once and calls back (as may a client it asks): what
        // comes in meanwhile is recorded by this call, once more, never lost.
        guard !recording else {
            recordAgain = true
            return
        }
        recording = true
        defer { recording = false }
        repeat {
            recordAgain = false
            var snapshot = snapshot()
            let look = lookKey(snapshot)
            if look != lookedAt {
                lookedAt = look
                connectability.look()
                snapshot = self.snapshot()
            }
            notifications.observe(snapshot.clients)
            history.observe(snapshot.clients, now: loop.now)
            recorder.record(snapshot, desired: dispatcher.coordinator.desired, verifiedPort: sinks.verifiedPort, sources: sources)
            systemd.update(settled: settled)
        } while recordAgain
    }

    /// The first sync was tried: the clients answered (or failed) for the first port, and
    /// NAT-PMP, when in use, mapped or failed once.
    private var settled: Bool {
        let clientsTried = dispatcher.coordinator.desired == nil || !sinks.statuses.contains { $0.health.isPending }
        return clientsTried && sources.settled
    }

    /// What the state file left for `source`: the port last applied, and the source's own keeps.
    private func remembered(_ source: PortObservation.Source) -> SourceMemory {
        recorder.state?.memory(for: source) ?? SourceMemory()
    }

    /// What a connectability verdict depends on, beyond what the monitor looks at again by
    /// itself: whether the clients are on the port, which port, which tunnel.
    private func lookKey(_ snapshot: DaemonSnapshot) -> String {
        let state = switch snapshot.health {
        case .ok: "ok"
        case .starting, .applying: "applying"
        case .waitingForPort, .vpnDown: "no port"
        case .failing: "failing"
        }
        var tunnel = "none"
        if case .usable(let usable)? = sources.link { tunnel = "\(usable.address)%\(usable.index)" }
        // What a client says of itself comes after a look asked it: its answer is looked at (and,
        // within `observeSpacing` of the ask, not asked again).
        let said = snapshot.clients.map { "\($0.status.connection.map { "\($0.state.rawValue)/\($0.externalAddress.map { "\($0)" } ?? "-")" } ?? "-")" }
            .joined(separator: ",")
        return "\(state) \(snapshot.port.map { "\($0)" } ?? "-") \(tunnel) \(said)"
    }

    /// The facts the connectability is judged on; nil while a change is on its way.
    private func connectabilityFacts() -> Connectability.Facts? {
        let snapshot = snapshot()
        let coordinator = dispatcher.coordinator
        var tunnel: Tunnel?
        if case .usable(let usable)? = sources.link { tunnel = usable }
        let source = coordinator.desiredSource
        let status = source.flatMap { sources.status(of: $0) }
        var forwarded: Port?
        var problem: String?
        switch snapshot.health {
        case .starting, .applying:
            return nil
        case .waitingForPort, .vpnDown:
            problem = status?.problem?.message ?? snapshot.health.description
        case .ok, .failing:
            if case .forwarding? = status?.state { forwarded = coordinator.desired } else { problem = status?.problem?.message ?? "\(source?.title ?? "the source") names no port now" }
        }
        // What the clients say is from their last answer, asked at most every few seconds for a
        // port (the look its answer brings does not ask again); the next look has their fresh one.
        if coordinator.desired != nil, lastObserved.map({ $0.port != coordinator.desired || loop.now - $0.at >= Self.observeSpacing }) ?? true {
            lastObserved = (loop.now, coordinator.desired)
            sinks.observeConnections()
        }
        let clients = snapshot.clients.filter(\.isTorrentClient).compactMap { client -> Connectability.ClientFacts? in
            guard let port = client.wanted ?? coordinator.desired else { return nil }
            let visible = client.listenerVisible
            let said = client.status.connection
            return Connectability.ClientFacts(
                label: client.label, title: client.title, port: port,
                listener: visible ? socketTable.listener(on: port, tunnel: tunnel) : .unseen("\(client.title) is not on this machine"),
                incoming: visible ? socketTable.incoming(on: port, tunnel: tunnel) : nil,
                report: said?.state, leavesFrom: said?.externalAddress,
                canReopen: client.canReopenListener)
        }
        var facts = Connectability.Facts(forwarded: forwarded, source: source?.title, problem: problem, publicAddress: status?.publicAddress,
                                         tunnelAddress: tunnel?.address, clients: clients)
        if let tunnel { facts.handshake = Self.handshake(WireGuardHandshakes.read(interface: tunnel.interface)) }
        return facts
    }

    /// The newest of the peers' handshakes, as the verdict weighs it; nil when the tunnel is
    /// not WireGuard's (a stand-in, OpenVPN).
    static func handshake(_ reading: WireGuardHandshakes.Reading, now: Int64 = WallClock.now) -> Connectability.Handshake? {
        switch reading {
        case .peers(let peers): peers.compactMap { $0 }.max().map { .ago(seconds: max(0, now - $0)) } ?? .never
        case .notWireGuard: nil
        case .notPermitted: .unreadable("it needs CAP_NET_ADMIN, which the system service has and a user service has not")
        case .failed(let why): .unreadable(why)
        }
    }

    func snapshot() -> DaemonSnapshot {
        let coordinator = dispatcher.coordinator
        var linkUp: Bool?
        if let link = sources.link { if case .usable = link { linkUp = true } else { linkUp = false } }
        var leaseLeft: Int?
        if let source = coordinator.desiredSource, source.rank == .lease, let status = sources.status(of: source) {
            let left = status.leaseExpiry.map { ($0 - loop.clock.now()).components.seconds } ?? 0
            leaseLeft = Int(max(0, left))
        }
        let livePort = coordinator.hasLivePort(now: loop.now)
        let health = Health.assess(desired: coordinator.desired, heldBack: coordinator.holdsBackAChange, livePort: livePort, link: sources.link,
                                   tunnelDecides: sources.tunnelDecides, clients: sinks.clients.map { ($0.label, $0.status, $0.wanted) })
        let clients = sinks.clients.map { client in
            var client = client
            client.health = Health.assess(desired: coordinator.desired, livePort: livePort, link: nil, tunnelDecides: false,
                                          clients: [(client.label, client.status, client.wanted)])
            return client
        }
        return DaemonSnapshot(port: sinks.verifiedPort ?? recorder.state?.port, source: coordinator.desiredSource?.rawValue,
                              health: health, clients: clients, portChanges: dispatcher.portChanges,
                              lastChange: dispatcher.lastChange, sources: sources.statuses, linkUp: linkUp, leaseSecondsLeft: leaseLeft, hook: sinks.hookRecord,
                              lastRecord: history.last, changesByReason: history.counts, connectability: connectability.record,
                              notifications: notifications.counters, reloads: reloads)
    }

    private func startMetrics(_ address: SocketAddress?) {
        metricsServer?.close()
        metricsServer = nil
        guard let address else { return }
        do {
            metricsServer = try HTTPServer(loop: loop, name: "metrics.http", address: address) { [unowned self] request in
                MetricsEndpoint.respond(to: request, self.snapshot())
            }
            loop.logger.info("portsync", "metrics and health on http://\(address)/metrics and /healthz")
        } catch {
            loop.logger.error("portsync", "cannot serve metrics on \(address): \(error)")
        }
    }

    private func handle(_ signal: Signal) {
        switch signal {
        case .terminate, .interrupt:
            loop.logger.info("portsync", "\(signal): stopping")
            loop.stop()
        case .hangup:
            reload()
        }
    }

    func reload() {
        let logger = loop.logger
        systemd.reloading()
        defer { systemd.reloaded() }
        let fresh: LoadedConfiguration
        do {
            fresh = try loader.load()
        } catch {
            logger.error("config", "SIGHUP: \(error); keeping the previous configuration")
            reloads.count(.rejected)
            return
        }
        fresh.warnings.forEach { logger.warning("config", $0) }
        guard fresh != loaded else {
            logger.info("config", "SIGHUP: configuration unchanged")
            reloads.count(.unchanged)
            return
        }
        reloads.count(.applied)
        let old = loaded.configuration
        loaded = fresh
        let configuration = fresh.configuration
        let plan = SyncPlan(fresh)
        logger.level = configuration.daemon.logLevel
        recorder.move(to: configuration.daemon.stateFile)
        history.move(toStateFile: configuration.daemon.stateFile)
        if !plan.sources.isSame(as: sources.plan) {
            sources.replace(with: plan.sources)
            dispatcher.reset(firstReason: .reload)
            do {
                try sources.start(memory: remembered)
            } catch {
                logger.error("portsync", "SIGHUP: cannot start the sources: \(error)")
            }
        }
        sinks.update(plan.sinks)
        notifications.update(plan.notify)
        if configuration.daemon.metricsListen != old.daemon.metricsListen { startMetrics(configuration.daemon.metricsListen) }
        if configuration.connectability != old.connectability {
            connectability.stop()
            connectability = Self.makeConnectability(loop, configuration)
            wire(connectability)
            lookedAt = nil
            recordOutcome()
        }
        logger.notice("config", "SIGHUP: configuration reloaded from \(configuration.file ?? "defaults")")
    }
}
