import HTTP
import Reactor
import Sinks
import Watchers

/// `portsync run`: the watchers feed the coordinator, the coordinator drives the qBittorrent
/// sink, and the outcome goes to the state file. It stops cleanly on SIGTERM/SIGINT and
/// re-reads the configuration on SIGHUP (a bad new one is reported and the old one kept).
final class Daemon {
    private let loop: EventLoop
    private let logger: Logger
    private let loader: ConfigurationLoader
    private(set) var loaded: LoadedConfiguration
    private var signals: SignalSource?
    private var coordinator = Coordinator()
    private var burstGate = BurstGate()
    private var burstTimer: Timer!
    private var sink: QBittorrentSink
    private var watchers: [PortFileWatcher] = []
    private var gluetun: GluetunPoller?
    private var tunnelWatcher: TunnelWatcher?
    private var natpmp: NATPMPClient?
    private var recovery: RecoveryCommand?
    private var linkState: TunnelTracker.State?
    private var lastTunnel: Tunnel?
    private let notifier: SystemdNotifier?
    private var watchdogTimer: Timer!
    private var readyTimer: Timer!
    private var ready = false
    private var natpmpTried = false
    private var lastStatusLine: String?
    /// When the NAT-PMP lease was last granted or renewed (wall clock).
    private var lastRenewal: Int64?
    private var metricsServer: HTTPServer?
    private var portChanges = 0
    private var lastChange: Int64?
    private var natpmpFailures = 0
    private var stateStore: StateStore
    private var state: DaemonState?
    private var expiryTimer: Timer!

    init(loader: ConfigurationLoader, loaded: LoadedConfiguration, logger: Logger, environment: [String: String]) throws {
        self.loader = loader
        self.loaded = loaded
        self.logger = logger
        notifier = SystemdNotifier(environment: environment, logger: logger)
        loop = try EventLoop(logger: logger)
        sink = QBittorrentSink(loop: loop, settings: QBittorrentSettings(loaded.configuration, loaded.credentials))
        stateStore = StateStore(path: loaded.configuration.daemon.stateFile)
        expiryTimer = loop.makeTimer(name: "coordinator.expiry") { [unowned self] in self.decide() }
        watchdogTimer = loop.makeTimer(name: "systemd.watchdog") { [unowned self] in self.pingWatchdog() }
        readyTimer = loop.makeTimer(name: "systemd.ready") { [unowned self] in self.becomeReady() }
        burstTimer = loop.makeTimer(name: "coordinator.burst") { [unowned self] in self.handOffAfterBurst() }
        sink.onStatusChange = { [unowned self] status in
            if status.health == .verified, let port = status.verifiedPort { self.natpmp?.prefer(port) }
            self.recordOutcome()
        }
    }

    func run() throws -> ExitCode {
        let configuration = loaded.configuration
        signals = try SignalSource(loop: loop) { [unowned self] signal in self.handle(signal) }
        defer { signals?.close() }
        loadState()
        logger.info("portsync", "\(CommandLineInterface.version) running (pid \(ProcessEnvironment.processID)); strategy \(configuration.source.strategy.rawValue), qBittorrent at \(configuration.qbittorrent.url), configuration \(configuration.file ?? "defaults")")
        try startWatchers(configuration)
        startMetrics(configuration.daemon.metricsListen)
        readyTimer.schedule(after: .seconds(10))  // ready at the latest then, whatever answers
        pingWatchdog()
        checkReady()
        try loop.run()
        notifier?.notify("STOPPING=1")
        metricsServer?.close()
        stopWatchers(deleteMappings: loaded.configuration.natpmp.deleteOnExit)
        logger.info("portsync", "stopped")
        return .success
    }

    // MARK: Sources

    /// `auto`: the ProtonVPN file (an immediate hint) and NAT-PMP on the interface (the
    /// authority, and what keeps the lease alive), each as it becomes available.
    private func startWatchers(_ configuration: Configuration) throws {
        let strategy = configuration.source.strategy
        if strategy == .auto || strategy == .file {
            let watcher = PortFileWatcher(loop: loop, name: "proton.file", path: configuration.proton.portFile, source: .protonFile) {
                [unowned self] observation in self.observed(observation)
            }
            try watcher.start()
            watchers = [watcher]
        }
        if strategy == .gluetun {
            if configuration.gluetun.portFile.isEmpty {
                let poller = GluetunPoller(loop: loop, settings: GluetunSettings(configuration, loaded.credentials)) {
                    [unowned self] observation in self.observed(observation)
                }
                poller.start()
                gluetun = poller
            } else {
                let watcher = PortFileWatcher(loop: loop, name: "gluetun.file", path: configuration.gluetun.portFile,
                                              source: .gluetunFile, portIndex: configuration.gluetun.portIndex) {
                    [unowned self] observation in self.observed(observation)
                }
                try watcher.start()
                watchers = [watcher]
            }
        }
        if strategy == .auto || strategy == .natpmp {
            let client = NATPMPClient(loop: loop, settings: NATPMPSettings(configuration)) { [unowned self] observation in
                self.observed(observation)
            }
            if let port = coordinator.desired ?? state?.port { client.prefer(port) }
            if let previous = state?.natpmpInternalPort { client.restore(internalPort: previous) }
            let natpmp = configuration.natpmp
            if !natpmp.recoveryCommand.isEmpty {
                recovery = RecoveryCommand(loop: loop, command: natpmp.recoveryCommand, threshold: natpmp.recoveryAfter,
                                           cooldown: .seconds(natpmp.recoveryCooldownSeconds))
            }
            client.onFailure = { [unowned self] streak in
                self.natpmpTried = true
                self.natpmpFailures += 1
                self.recovery?.failed(streak: streak)
                self.recordOutcome()
            }
            self.natpmp = client
            let watcher = TunnelWatcher(loop: loop, interface: natpmp.interface, gateway: natpmp.gateway) { [unowned self] state in
                self.tunnelChanged(state)
            }
            tunnelWatcher = watcher
            try watcher.start()
        }
    }

    /// `deleteMappings`: only when portsync stops (delete_on_exit), never on a reload.
    private func stopWatchers(deleteMappings: Bool = false) {
        watchers.forEach { $0.stop() }
        watchers = []
        gluetun?.stop()
        gluetun = nil
        tunnelWatcher?.stop()
        tunnelWatcher = nil
        natpmp?.stop(deleteMappings: deleteMappings)
        natpmp = nil
        recovery = nil
        linkState = nil
    }

    /// The tunnel came, went or changed. When it comes back (or is recreated), qBittorrent's
    /// listener is looked at: bound to the tunnel, it stays on the vanished interface and
    /// refuses every connection until it re-opens its sockets.
    private func tunnelChanged(_ state: TunnelTracker.State) {
        linkState = state
        natpmp?.tunnelChanged(state)
        if case .usable(let tunnel) = state {
            if lastTunnel != nil, coordinator.desired != nil {
                logger.info("portsync", "the tunnel is back (\(tunnel.interface) \(tunnel.address), index \(tunnel.index)): checking qBittorrent's listener")
                sink.interfacesChanged()
            }
            lastTunnel = tunnel
        }
        recordOutcome()
    }

    private func observed(_ observation: PortObservation) {
        if observation.source == .natpmp {
            natpmpTried = true
            if observation.port != nil { lastRenewal = WallClock.now }
        }
        if let decision = coordinator.observe(observation, now: loop.now) {
            if !decision.again {
                portChanges += 1
                lastChange = WallClock.now
            }
            handOff(decision)
        }
        scheduleExpiry()
        recordOutcome()
    }

    /// Gives the port to the sink now, or after a burst of changes has settled.
    private func handOff(_ decision: Coordinator.Decision, why: String = "") {
        if let later = burstGate.changed(at: loop.now) {
            if !burstTimer.isScheduled { logger.info("portsync", "the port changes in a burst: applying the last value once it settles") }
            logger.debug("portsync", "port \(decision.port) from \(decision.source.rawValue) (in a burst)")
            burstTimer.schedule(at: later)
        } else {
            let was = decision.again ? " (again)" : decision.previous.map { " (was \($0))" } ?? ""
            logger.notice("portsync", "port \(decision.port) from \(decision.source.rawValue)\(was)\(why)")
            sink.apply(decision.port)
        }
    }

    private func handOffAfterBurst() {
        burstGate.handedOff(at: loop.now)
        guard let port = coordinator.desired else { return }
        logger.notice("portsync", "port \(port) from \(coordinator.desiredSource?.rawValue ?? "?") (the last of a burst)")
        sink.apply(port)
    }

    private func decide() {
        if let decision = coordinator.decide(now: loop.now) {
            handOff(decision, why: " (an observation expired)")
        }
        scheduleExpiry()
        recordOutcome()
    }

    private func scheduleExpiry() {
        if let expiry = coordinator.nextExpiry(after: loop.now) { expiryTimer.schedule(at: expiry) } else { expiryTimer.cancel() }
    }

    // MARK: State

    private func loadState() {
        do {
            state = try stateStore.load()
            if let state, let port = state.port {
                logger.info("portsync", "last applied port \(port) (\(state.source ?? "?")) \(state.appliedAt.map { WallClock.age($0) } ?? "")")
            }
        } catch {
            logger.warning("portsync", "state file \(stateStore.path): \(error); starting without it")
        }
    }

    /// Writes the state file when the port, its source or the health changed, and tells systemd.
    private func recordOutcome() {
        defer {
            checkReady()
            sendStatus()
        }
        let status = sink.status
        var next = state ?? DaemonState(health: "", pid: ProcessEnvironment.processID, updatedAt: 0)
        next.pid = ProcessEnvironment.processID
        next.health = healthText(status)
        next.qbittorrentVersion = status.version ?? next.qbittorrentVersion
        next.natpmpInternalPort = natpmp?.internalPort ?? next.natpmpInternalPort
        if case .usable(let tunnel)? = linkState {
            next.natpmpGateway = "\(tunnel.gateway)"
            next.natpmpGatewayRule = "\(tunnel.gatewayRule)"
        }
        if status.health == .verified, let port = status.verifiedPort, port == coordinator.desired {
            if next.port != port { next.appliedAt = WallClock.now }
            next.port = port
            next.source = coordinator.desiredSource?.rawValue
        }
        guard next != state else { return }
        next.updatedAt = WallClock.now
        do {
            try stateStore.save(next)
            state = next
        } catch {
            logger.error("portsync", "cannot write the state file: \(error)")
        }
    }

    private func healthText(_ status: SinkStatus) -> String {
        let tunnelDown: String? = switch linkState {
        case .awaitingRoute?, .unusable?: "VPN down: \(linkState!)"
        case .usable?, nil: nil
        }
        guard let desired = coordinator.desired else {
            if let tunnelDown { return tunnelDown }
            return coordinator.hasLivePort(now: loop.now) ? "starting" : "waiting for a forwarded port"
        }
        if let tunnelDown, loaded.configuration.source.strategy == .natpmp { return tunnelDown }
        switch status.health {
        case .verified where status.verifiedPort == desired: return "ok"
        case .idle, .applying, .verified: return "applying port \(desired)"
        case .unreachable(let message), .failing(let message), .loginRefused(let message): return message
        }
    }

    // MARK: Metrics

    private func startMetrics(_ address: SocketAddress?) {
        metricsServer?.close()
        metricsServer = nil
        guard let address else { return }
        do {
            metricsServer = try HTTPServer(loop: loop, name: "metrics.http", address: address) { [unowned self] request in
                MetricsEndpoint.respond(to: request, self.snapshot())
            }
            logger.info("portsync", "metrics and health on http://\(address)/metrics and /healthz")
        } catch {
            logger.error("portsync", "cannot serve metrics on \(address): \(error)")
        }
    }

    func snapshot() -> DaemonSnapshot {
        let status = sink.status
        let counters = sink.counters
        var linkUp: Bool?
        if let linkState { if case .usable = linkState { linkUp = true } else { linkUp = false } }
        var leaseLeft: Int?
        if coordinator.desiredSource == .natpmp {
            let left = natpmp?.leaseExpiry.map { ($0 - loop.clock.now()).components.seconds } ?? 0
            leaseLeft = Int(max(0, left))
        }
        return DaemonSnapshot(port: status.health == .verified ? status.verifiedPort : state?.port, source: coordinator.desiredSource?.rawValue,
                              health: healthText(status), qbittorrentVersion: status.version, portChanges: portChanges,
                              lastChange: lastChange, applies: counters.applies, applyFailures: counters.failedApplies,
                              logins: counters.logins, loginFailures: counters.failedLogins, qbittorrentRequests: counters.requests,
                              natpmpRenewals: natpmp?.mappingsGranted, natpmpFailures: natpmp == nil ? nil : natpmpFailures,
                              linkUp: linkUp, leaseSecondsLeft: leaseLeft)
    }

    // MARK: systemd

    /// Ready once the loop runs and the first sync was tried: qBittorrent answered (or failed)
    /// for the first port, and NAT-PMP, when in use, mapped or failed once.
    private func checkReady() {
        guard !ready else { return }
        let sinkTried = coordinator.desired == nil || (sink.status.health != .idle && sink.status.health != .applying)
        let natpmpSettled: Bool
        switch linkState {
        case _ where natpmp == nil: natpmpSettled = true
        case nil: natpmpSettled = false
        case .unusable?: natpmpSettled = true
        case .awaitingRoute?: natpmpSettled = false
        case .usable?: natpmpSettled = natpmpTried
        }
        if sinkTried && natpmpSettled { becomeReady() }
    }

    private func becomeReady() {
        guard !ready else { return }
        ready = true
        readyTimer.cancel()
        notifier?.notify("READY=1", "STATUS=\(statusLine())")
        lastStatusLine = statusLine()
    }

    private func sendStatus() {
        guard ready, let notifier else { return }
        let line = statusLine()
        guard line != lastStatusLine else { return }
        lastStatusLine = line
        notifier.notify("STATUS=\(line)")
    }

    /// In words: "port 51413 on qBittorrent v4.5.2 via natpmp; lease renewed at 16:31:02".
    func statusLine() -> String {
        let health = healthText(sink.status)
        guard health == "ok", let port = coordinator.desired, let source = coordinator.desiredSource else { return health }
        var line = "port \(port) on qBittorrent\(sink.status.version.map { " \($0)" } ?? "") via \(source.rawValue)"
        if source == .natpmp, let lastRenewal { line += "; lease renewed at \(WallClock.text(lastRenewal).suffix(8))" }
        return line
    }

    /// WATCHDOG=1 from the loop itself: a stuck loop stops pinging and systemd restarts it.
    private func pingWatchdog() {
        guard let notifier, let interval = notifier.watchdogInterval else { return }
        notifier.notify("WATCHDOG=1")
        watchdogTimer.schedule(after: interval)
    }

    // MARK: Signals

    private func handle(_ signal: Signal) {
        switch signal {
        case .terminate, .interrupt:
            logger.info("portsync", "\(signal): stopping")
            loop.stop()
        case .hangup:
            reload()
        }
    }

    private func reload() {
        notifier?.reloading()
        defer { notifier?.notify("READY=1", "STATUS=\(statusLine())") }
        let fresh: LoadedConfiguration
        do {
            fresh = try loader.load()
        } catch {
            logger.error("config", "SIGHUP: \(error); keeping the previous configuration")
            return
        }
        fresh.warnings.forEach { logger.warning("config", $0) }
        guard fresh != loaded else {
            logger.info("config", "SIGHUP: configuration unchanged")
            return
        }
        let old = loaded.configuration
        let previousCredentials = loaded.credentials
        loaded = fresh
        let configuration = fresh.configuration
        logger.level = configuration.daemon.logLevel
        stateStore = StateStore(path: configuration.daemon.stateFile)
        if configuration.source != old.source || configuration.proton != old.proton || configuration.natpmp != old.natpmp
            || configuration.gluetun != old.gluetun || fresh.credentials.gluetunAPIKey != previousCredentials.gluetunAPIKey
            || fresh.credentials.gluetunPassword != previousCredentials.gluetunPassword {
            stopWatchers()
            coordinator = Coordinator()
            lastTunnel = nil
            do {
                try startWatchers(configuration)
            } catch {
                logger.error("portsync", "SIGHUP: cannot watch \(configuration.proton.portFile): \(error)")
            }
        }
        sink.update(QBittorrentSettings(configuration, fresh.credentials))
        if configuration.daemon.metricsListen != old.daemon.metricsListen { startMetrics(configuration.daemon.metricsListen) }
        logger.notice("config", "SIGHUP: configuration reloaded from \(configuration.file ?? "defaults")")
    }
}
