import Reactor

/// `portsync run`: owns the loop and everything in it; stops cleanly on SIGTERM/SIGINT and
/// re-reads the configuration on SIGHUP (a bad new one is reported and the old one kept).
final class Daemon {
    private let loop: EventLoop
    private let logger: Logger
    private let loader: ConfigurationLoader
    private(set) var loaded: LoadedConfiguration
    private var signals: SignalSource?

    init(loader: ConfigurationLoader, loaded: LoadedConfiguration, logger: Logger) throws {
        self.loader = loader
        self.loaded = loaded
        self.logger = logger
        loop = try EventLoop(logger: logger)
    }

    func run() throws -> ExitCode {
        signals = try SignalSource(loop: loop) { [unowned self] signal in self.handle(signal) }
        defer { signals?.close() }
        let configuration = loaded.configuration
        logger.info("portsync", "\(CommandLineInterface.version) running (pid \(ProcessEnvironment.processID)); strategy \(configuration.source.strategy.rawValue), qBittorrent at \(configuration.qbittorrent.url), configuration \(configuration.file ?? "defaults")")
        try loop.run()
        logger.info("portsync", "stopped")
        return .success
    }

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
        do {
            let fresh = try loader.load()
            fresh.warnings.forEach { logger.warning("config", $0) }
            guard fresh != loaded else {
                logger.info("config", "SIGHUP: configuration unchanged")
                return
            }
            loaded = fresh
            logger.level = fresh.configuration.daemon.logLevel
            logger.notice("config", "SIGHUP: configuration reloaded from \(fresh.configuration.file ?? "defaults")")
        } catch {
            logger.error("config", "SIGHUP: \(error); keeping the previous configuration")
        }
    }
}
