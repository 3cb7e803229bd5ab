import Glibc
import HTTP
import Reactor

exit(Main.run(arguments: Array(CommandLine.arguments.dropFirst()), environment: ProcessEnvironment.variables()).rawValue)

/// Parses the command line, loads the configuration and runs the command.
enum Main {
    static func run(arguments: [String], environment: [String: String]) -> ExitCode {
        let invocation: Invocation
        do {
            switch try CommandLineInterface.parse(arguments) {
            case .help(let text):
                ProcessEnvironment.printToStandardOutput(text + "\n")
                return .success
            case .version:
                ProcessEnvironment.printToStandardOutput(CommandLineInterface.versionWithCommit + "\n")
                return .success
            case .completions(let shell):
                ProcessEnvironment.printToStandardOutput(Completions.script(for: shell))
                return .success
            case .invocation(let parsed):
                invocation = parsed
            }
        } catch {
            return fail(error.description, .usageOrConfiguration)
        }

        if invocation.from != nil || invocation.fromEnvironment {
            do {
                let translation = if let from = invocation.from {
                    try ForeignConfiguration.convert(path: from)
                } else {
                    try ForeignEnvironment.convert(environment)
                }
                ProcessEnvironment.printToStandardOutput(translation)
                return .success
            } catch {
                return fail(error.description, .usageOrConfiguration)
            }
        }
        var loader = ConfigurationLoader(environment: environment, userID: ProcessEnvironment.userID,
                                         workingDirectory: ProcessEnvironment.workingDirectory,
                                         explicitFile: invocation.configFile, flags: invocation.flags)
        if invocation.command == .doctor && ProcessEnvironment.userID == 0 {
            // Root's doctor checks with the secrets the system service is given.
            loader.serviceCredentials = ServiceCredentials.find(unit: "portsync.service", searchPath: ServiceCredentials.searchPath(environment: environment))
        }
        let loaded: LoadedConfiguration
        do {
            loaded = try loader.load()
        } catch {
            if invocation.command == .doctor { return Doctor.reportConfigurationError(error) }
            return fail(error.description, .usageOrConfiguration)
        }
        if invocation.command.connects && loaded.configuration.usesHTTPS {
            // Checked here so that a missing OpenSSL stops the start, not every request later.
            do {
                try TLSLibrary.check()
            } catch {
                return fail(error.description, .usageOrConfiguration)
            }
        }
        let logger = Logger(level: loaded.configuration.daemon.logLevel, traceEnabled: invocation.trace)
        loaded.warnings.forEach { logger.warning("config", $0) }

        switch invocation.command {
        case .config:
            ProcessEnvironment.printToStandardOutput(ConfigurationPrinter.render(loaded))
            return .success
        case .run:
            do {
                let loop = try EventLoop(logger: logger)
                return try Daemon(loop: loop, loader: loader, loaded: loaded, environment: environment).run()
            } catch {
                logger.error("portsync", "\(error)")
                return .transientFailure
            }
        case .once:
            if loaded.configuration.daemon.logLevel == .info && !invocation.trace { logger.level = .warning }
            var once = OnceCommand(loaded: loaded, logger: logger, json: invocation.json)
            if let timeout = invocation.timeout { once.timeout = timeout }
            return once.run()
        case .status:
            return StatusCommand(loaded: loaded, json: invocation.json).run()
        case .history:
            return HistoryCommand(loaded: loaded, json: invocation.json).run()
        case .doctor:
            if loaded.configuration.daemon.logLevel == .info && !invocation.trace { logger.level = .error }
            return Doctor(loaded: loaded, logger: logger).run()
        }
    }

    private static func fail(_ message: String, _ code: ExitCode) -> ExitCode {
        ProcessEnvironment.printToStandardError("portsync: \(message)\n")
        return code
    }
}
