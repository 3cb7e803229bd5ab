import Domain
import Reactor

extension PortObservation.Source {
    /// A program that prints the port (`piactl get portforward`, anything else).
    public static let command = PortObservation.Source("command", rank: .hint, title: "command", spokenName: "the command")
}

/// `[command]`: a program that prints the forwarded port, run with a timeout every `interval`,
/// or kept running when it prints a line per change (`piactl monitor portforward`).
public struct CommandSourceSettings: PortSourceSettings, Equatable {
    public enum Mode: Equatable, Sendable {
        /// Run every so often; each run's whole output is one reading.
        case interval(Duration)
        /// Kept running; each line it prints is one reading.
        case stream
    }

    /// The program and its arguments, never through a shell: an absolute path or a bare name
    /// on `PATH`.
    public var argv: [String]
    public var mode: Mode
    /// How long one run may take (interval mode); then it is killed with its process group.
    public var timeout: Duration
    /// `NAME=value`: what the program inherits (`ChildEnvironment.passedOn`).
    public var environment: [String]
    /// Which of several ports it prints (one per line): 0 = the first.
    public var portIndex: Int

    public init(argv: [String], mode: Mode, timeout: Duration = .seconds(10), environment: [String], portIndex: Int = 0) {
        self.argv = argv
        self.mode = mode
        self.timeout = timeout
        self.environment = environment
        self.portIndex = portIndex
    }

    public var identity: PortObservation.Source { .command }
    public var summary: String { "the command \(argv.first ?? "")" }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        CommandSource(loop: loop, settings: self)
    }
}

/// Runs the command and reads what it prints like a port file: a port, ports one per line,
/// or nothing (no port right now); anything else is said with the content and the last good
/// port stands. A run that fails is said with its stderr's first line.
public final class CommandSource: PortSource {
    static let name = "command"
    /// A streaming command that ended is started again after this, doubling to a minute.
    static let firstRestartDelay = Duration.seconds(1)
    static let longestRestartDelay = Duration.seconds(60)

    public let identity = PortObservation.Source.command
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private let settings: CommandSourceSettings
    private var child: Subprocess?
    private var output: [String] = []
    private var timer: Timer!
    private var state = SourceStatus.State.starting
    private var lastReported: Port??
    private var restartDelay = CommandSource.firstRestartDelay
    private var startedAt: Instant?
    private var running = false

    public init(loop: EventLoop, settings: CommandSourceSettings) {
        self.loop = loop
        self.settings = settings
        timer = loop.makeTimer(name: "\(Self.name).timer") { [unowned self] in self.run() }
    }

    deinit { stop(final: false) }

    public func start() throws {
        running = true
        run()
    }

    public func stop(final: Bool) {
        running = false
        timer.cancel()
        child = nil  // a child still running goes with it, killed with its process group
    }

    public func clientsVerified(_ port: Port) {}

    public var status: SourceStatus {
        var status = SourceStatus()
        status.state = state
        status.detail = settings.argv.joined(separator: " ").oneLine(limit: 120)
        return status
    }

    private var program: String { settings.argv.first ?? "" }

    private func run() {
        guard running else { return }
        let searchPath = ChildEnvironment.searchPath(of: settings.environment)
        guard let executable = ChildEnvironment.executable(program, searching: searchPath) else {
            return finished(.misconfigured(SourceProblem(ChildEnvironment.notFound(program, searching: searchPath),
                                                         fix: "install it, or fix [command].argv")))
        }
        output = []
        startedAt = loop.now
        let timeout: Duration = if case .interval = settings.mode { settings.timeout } else { .seconds(10 * 365 * 86_400) }
        do {
            child = try Subprocess(loop: loop, name: Self.name, executable: executable, arguments: Array(settings.argv.dropFirst()),
                                   environment: settings.environment, timeout: timeout, capturesErrorLine: true,
                                   onOutputLine: { [unowned self] line in self.printed(line) }) { [unowned self] termination in
                self.ended(termination)
            }
            loop.logger.debug(Self.name, "running \(executable) (pid \(child!.pid))")
        } catch {
            finished(.failing(SourceProblem("\(program) could not start: \(error)", fix: "check [command].argv")))
        }
    }

    private func printed(_ line: String) {
        loop.logger.trace(Self.name, "← \(line.oneLine(limit: 120))")
        switch settings.mode {
        case .interval: output.append(line)
        case .stream: take(line)
        }
    }

    private func ended(_ termination: Subprocess.Termination) {
        guard let child else { return }
        let verdict = Self.verdict(termination, outlivedTimeout: child.outlivedTimeout, timeout: settings.timeout,
                                   errorLine: child.errorLine, program: program)
        switch settings.mode {
        case .interval(let interval):
            if let problem = verdict {
                finished(.failing(problem))
            } else {
                take(output.joined(separator: "\n"))
            }
            timer.schedule(after: interval)
        case .stream:
            // It should never end: said, and started again (sooner once it has run a while).
            let problem = verdict ?? SourceProblem("\(program) ended", fix: "a streaming command (mode = \"stream\") must keep running")
            if let startedAt, loop.now - startedAt > Self.longestRestartDelay { restartDelay = Self.firstRestartDelay }
            finished(.failing(SourceProblem("\(problem.message); starting it again in \(restartDelay.limitText)", fix: problem.fix)))
            timer.schedule(after: restartDelay)
            restartDelay = min(restartDelay * 2, Self.longestRestartDelay)
        }
    }

    /// Why a run failed, nil when it exited with 0: in one line, its stderr's first line with it.
    static func verdict(_ termination: Subprocess.Termination, outlivedTimeout: Bool, timeout: Duration, errorLine: String?,
                        program: String) -> SourceProblem? {
        let said = errorLine.map { ": \($0)" } ?? ""
        switch termination {
        case _ where outlivedTimeout:
            return SourceProblem("\(program) was still running after \(timeout.limitText) and was killed\(said)",
                                 fix: "make it print the port and exit, or use mode = \"stream\" for one that keeps running")
        case .exited(0):
            return nil
        case .exited(let code):
            return SourceProblem("\(program) exited with \(code)\(said)", fix: "run it by hand to see why")
        case .killed(let signal):
            return SourceProblem("\(program) was killed by signal \(signal)\(said)", fix: "run it by hand to see why")
        case .unknown(let why):
            return SourceProblem("\(program) ended, but \(why)", fix: "run it by hand to see why")
        }
    }

    /// What the command printed, as a port file's content; words with no digit in them (piactl's
    /// "Inactive", "Attempting", "Failed") say that there is no port right now.
    private func take(_ text: String) {
        let port: Port??
        switch PortFile.reading(Array(text.utf8), portIndex: settings.portIndex) {
        case .port(let found, let all):
            port = .some(found)
            finished(.forwarding(found), ports: all, port: port)
            return
        case .empty:
            port = .some(nil)
        case .garbage where !text.contains(where: \.isNumber):
            return finished(.failing(SourceProblem("\(program) says \"\(text.trimmingSpaces.oneLine(limit: 60))\": no port right now",
                                                   fix: "check the VPN's port forwarding")), port: .some(nil))
        case .garbage(let error):
            loop.logger.warning(Self.name, "\(program) printed \(error); keeping the last port")
            return finished(.failing(SourceProblem("\(program) printed \(error)", fix: "make it print the port's digits alone")))
        case .noPortAtIndex(let count):
            loop.logger.warning(Self.name, "\(program) printed \(count) port(s); port_index \(settings.portIndex) is not among them")
            port = .some(nil)
            return finished(.misconfigured(SourceProblem("\(program) printed \(count) port(s); port_index \(settings.portIndex) is not among them",
                                                         fix: "set [command].port_index below \(count)")), port: port)
        case .missing, .notARegularFile, .unreadable:
            return  // not a file: never read as one
        }
        finished(.failing(SourceProblem("\(program) printed no port: none is forwarded right now", fix: "check the VPN's port forwarding")), port: port)
    }

    /// Takes `next` as the state and makes the observation `port` (a port, or `.some(nil)` for
    /// "none") unless it repeats the last; a changed state no observation carried is said.
    private func finished(_ next: SourceStatus.State, ports: [Port] = [], port: Port?? = nil) {
        let changed = next != state
        state = next
        if let port, lastReported != .some(port) {
            lastReported = .some(port)
            if let port {
                loop.logger.debug(Self.name, "\(program) says port \(port)")
            } else {
                loop.logger.info(Self.name, next.problemText ?? "\(program): no port")
            }
            onObservation?(PortObservation(source: identity, port: port, time: loop.now, ports: ports.isEmpty ? nil : ports))
        } else if changed {
            if let problem = next.problemText { loop.logger.warning(Self.name, problem) }
            onStatusChange?()
        }
    }
}

private extension SourceStatus.State {
    var problemText: String? {
        switch self {
        case .starting, .forwarding: nil
        case .waiting(let problem), .unavailable(let problem), .failing(let problem), .misconfigured(let problem): problem.message
        }
    }
}
