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

/// The shell of `CommandSession`: finds and starts the program, hands its lines and its end to
/// the session, and makes the session's observations.
public final class CommandSource: PortSource {
    static let name = "command"

    public let identity = PortObservation.Source.command
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?

    private let loop: EventLoop
    private var runner: MachineRunner<CommandSession>!
    private var session: CommandSession { runner.machine }
    private var child: Subprocess?

    public init(loop: EventLoop, settings: CommandSourceSettings) {
        self.loop = loop
        runner = MachineRunner(loop: loop, name: "\(Self.name).timer", machine: CommandSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit { stop(final: false) }

    public func start() throws {
        runner.send(.start)
    }

    public func stop(final: Bool) {
        runner.stop()
        child = nil  // a child still running goes with it, killed with its process group
    }

    public func clientsVerified(_ port: Port) {}

    public var status: SourceStatus {
        var status = SourceStatus()
        status.state = session.state
        status.detail = session.settings.argv.joined(separator: " ").oneLine(limit: 120)
        return status
    }

    private func perform(_ effect: CommandSession.Effect) {
        switch effect {
        case .run: run()
        case .observed(let port, let ports):
            onObservation?(PortObservation(source: identity, port: port, time: loop.now, ports: ports.isEmpty ? nil : ports))
        case .statusChanged: onStatusChange?()
        case .log(let level, let message): loop.logger.log(level, Self.name, message)
        }
    }

    private func run() {
        let settings = session.settings
        let program = settings.argv.first ?? ""
        let searchPath = ChildEnvironment.searchPath(of: settings.environment)
        guard let executable = ChildEnvironment.executable(program, searching: searchPath) else {
            return runner.send(.notStarted(ChildEnvironment.notFound(program, searching: searchPath), misconfigured: true))
        }
        let timeout: Duration = if case .interval = settings.mode { settings.timeout } else { .seconds(10 * 365 * 86_400) }
        do {
            let child = try Subprocess(loop: loop, name: Self.name, executable: executable, arguments: Array(settings.argv.dropFirst()),
                                       environment: settings.environment, timeout: timeout, capturesErrorLine: true,
                                       onOutputLine: { [unowned self] line in self.printed(line) }) { [unowned self] termination in
                self.ended(termination)
            }
            self.child = child
            loop.logger.debug(Self.name, "running \(executable) (pid \(child.pid))")
        } catch {
            runner.send(.notStarted("\(error)", misconfigured: false))
        }
    }

    private func printed(_ line: String) {
        loop.logger.trace(Self.name, "← \(line.oneLine(limit: 120))")
        runner.send(.printed(line))
    }

    private func ended(_ termination: Subprocess.Termination) {
        guard let child else { return }
        runner.send(.ended(termination, outlivedTimeout: child.outlivedTimeout, errorLine: child.errorLine))
    }
}
