import Glibc
import Reactor

/// Runs the command hook: the shell around `HookSession`. Each run is a `Subprocess` (stdin
/// and stdout on /dev/null, stderr's first line kept, a process group of its own), its end seen
/// through a pidfd in the loop; nothing waits or polls.
public final class HookSink: PortSink {
    public let name = "hook.command"
    public let title = "command hook"
    public var onStatusChange: ((SinkStatus) -> Void)?

    private let loop: EventLoop
    private var runner: MachineRunner<HookSession>!
    /// The last child, kept after it ended (it must not go away inside its own exit report).
    private var child: Subprocess?
    /// What the runs left in the background: killed when this sink goes (the daemon stopping,
    /// a reload dropping the hook).
    private let leftBehind = LeftBehindProcesses()
    private var session: HookSession { runner.machine }

    public init(loop: EventLoop, settings: HookSettings) {
        self.loop = loop
        runner = MachineRunner(loop: loop, name: "hook.timer", machine: HookSession(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    deinit { runner.stop() }

    public var status: SinkStatus { session.status }
    public var counters: SinkCounters { session.counters }
    public var lastRun: HookRun? { session.lastRun }
    public var settings: HookSettings { session.settings }
    /// The pid of the hook running now.
    public var runningPID: pid_t? { child?.isRunning == true ? child?.pid : nil }

    public func apply(_ change: PortChange) {
        runner.send(.portChanged(change))
    }

    /// The hook has no sockets to re-open.
    public func reassert() {}

    /// Nothing to reach before a port: the hook is a program run with it.
    public func connect() {}

    /// Doctor looks for the hook's program itself; it never runs it.
    public func inspect() {}

    /// Nothing to repair: the hook runs when the port changes, not the interfaces.
    public func interfacesChanged() {}

    public func update(_ settings: any PortSinkSettings) -> Bool {
        guard let settings = settings as? HookSettings else { return false }
        runner.send(.settingsChanged(settings))
        return true
    }

    private func perform(_ effect: HookSession.Effect) {
        switch effect {
        case .run(let command, let environment):
            run(command, environment: environment)
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        case .statusChanged(let status):
            onStatusChange?(status)
        }
    }

    private func run(_ command: [String], environment: [String]) {
        guard let executable = ChildEnvironment.executable(command[0], searching: session.settings.searchPath) else {
            return runner.send(.ended(.notStarted(ChildEnvironment.notFound(command[0], searching: session.settings.searchPath)), errorLine: nil))
        }
        do {
            let child = try Subprocess(loop: loop, name: name, executable: executable, arguments: Array(command.dropFirst()),
                                       environment: environment, timeout: session.settings.timeout, capturesErrorLine: true,
                                       leftBehind: leftBehind) {
                [unowned self] termination in self.ended(termination)
            }
            self.child = child
            loop.logger.debug(name, "running \(executable) (pid \(child.pid)) for port \(session.running?.port.description ?? "?")")
        } catch {
            runner.send(.ended(.notStarted("\(error)"), errorLine: nil))
        }
    }

    private func ended(_ termination: Subprocess.Termination) {
        guard let child else { return }
        let outcome: HookOutcome = switch termination {
        case _ where child.outlivedTimeout: .timedOut(session.settings.timeout)
        case .exited(let code): .exited(code)
        case .killed(let signal): .killed(signal: signal)
        case .unknown(let why): .unknown(why)
        }
        runner.send(.ended(outcome, errorLine: child.errorLine))
    }
}

extension HookSession: LoopStateMachine {}
