import Domain
import Reactor

/// The rules of the command source, pure: when to run the command, what its output and its end
/// mean, and what to tell. The shell (`CommandSource`) starts the program and reads its output.
///
/// What it prints is read like a port file: a port, ports one per line, or nothing (no port
/// right now); words with no digit in them (piactl's "Inactive", "Attempting") say there is no
/// port too; anything else is said with the content and the last good port stands. A run that
/// fails is said with its stderr's first line. With `interval`, each run's whole output is one
/// reading and the next run is `interval` after the end of the last; a `stream` gives a reading
/// per line, and one that ends is started again after 1 s, doubling to a minute (back to 1 s
/// once it had run for longer than that).
public struct CommandSession: LoopStateMachine {
    public enum Input: Equatable {
        case start
        /// A line the program printed.
        case printed(String)
        /// The program ended; `errorLine`: its stderr's first line.
        case ended(Subprocess.Termination, outlivedTimeout: Bool, errorLine: String?)
        /// The program could not be started: not found (`misconfigured`) or the spawn failed.
        case notStarted(String, misconfigured: Bool)
        case deadlineReached
    }

    public enum Effect: Equatable {
        case run
        /// A port (or, nil, none right now), with every port printed.
        case observed(Port?, ports: [Port])
        /// The state changed and no observation says so.
        case statusChanged
        case log(LogLevel, String)
    }

    static let firstRestartDelay = Duration.seconds(1)
    static let longestRestartDelay = Duration.seconds(60)

    public let settings: CommandSourceSettings
    public private(set) var state = SourceStatus.State.starting
    public private(set) var nextDeadline: Instant?
    private var output: [String] = []
    private var lastReported: Port??
    private var restartDelay = firstRestartDelay
    private var startedAt: Instant?

    public init(settings: CommandSourceSettings) {
        self.settings = settings
    }

    private var program: String { settings.argv.first ?? "" }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .start, .deadlineReached:
            nextDeadline = nil
            output = []
            startedAt = now
            effects.append(.run)
        case .printed(let line):
            switch settings.mode {
            case .interval: output.append(line)
            case .stream: take(line, &effects)
            }
        case .ended(let termination, let outlivedTimeout, let errorLine):
            ended(Self.verdict(termination, outlivedTimeout: outlivedTimeout, timeout: settings.timeout, errorLine: errorLine,
                               program: program), now, &effects)
        case .notStarted(let message, let misconfigured):
            let state: SourceStatus.State = misconfigured
                ? .misconfigured(SourceProblem(message, fix: "install it, or fix [command].argv"))
                : .failing(SourceProblem("\(program) could not start: \(message)", fix: "check [command].argv"))
            set(state, &effects)
            schedule(now)
        }
        return effects
    }

    private mutating func ended(_ verdict: SourceProblem?, _ now: Instant, _ effects: inout [Effect]) {
        switch settings.mode {
        case .interval:
            if let verdict { set(.failing(verdict), &effects) } else { take(output.joined(separator: "\n"), &effects) }
        case .stream:
            // It should never end: said, and started again (sooner once it has run a while).
            let problem = verdict ?? SourceProblem("\(program) ended", fix: "a streaming command (stream = true) must keep running")
            if let startedAt, now - startedAt > Self.longestRestartDelay { restartDelay = Self.firstRestartDelay }
            set(.failing(SourceProblem("\(problem.message); starting it again in \(restartDelay.limitText)", fix: problem.fix)), &effects)
        }
        schedule(now)
    }

    /// The next run: `interval` after this one, or the stream's back-off.
    private mutating func schedule(_ now: Instant) {
        switch settings.mode {
        case .interval(let interval):
            nextDeadline = now + interval
        case .stream:
            nextDeadline = now + restartDelay
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
                                 fix: "make it print the port and exit, or set stream = true for one that keeps running")
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

    /// What the command printed, as a port file's content.
    private mutating func take(_ text: String, _ effects: inout [Effect]) {
        switch PortFile.reading(Array(text.utf8), portIndex: settings.portIndex) {
        case .port(let port, let all):
            set(.forwarding(port), observing: .some(port), ports: all, &effects)
        case .empty:
            set(.failing(SourceProblem("\(program) printed no port: none is forwarded right now", fix: "check the VPN's port forwarding")),
                observing: .some(nil), &effects)
        case .garbage where !text.contains(where: \.isNumber):
            set(.failing(SourceProblem("\(program) says \"\(text.trimmingSpaces.oneLine(limit: 60))\": no port right now",
                                       fix: "check the VPN's port forwarding")), observing: .some(nil), &effects)
        case .garbage(let error):
            set(.failing(SourceProblem("\(program) printed \(error); keeping the last port", fix: "make it print the port's digits alone")), &effects)
        case .noPortAtIndex(let count):
            set(.misconfigured(SourceProblem("\(program) printed \(count) port(s); port_index \(settings.portIndex) is not among them",
                                             fix: "set [command].port_index below \(count)")), observing: .some(nil), &effects)
        case .missing, .notARegularFile, .unreadable:
            break  // not a file: never read as one
        }
    }

    /// Takes `next` as the state and makes the observation `observing` (a port, or `.some(nil)`
    /// for "none") unless it repeats the last; a changed state that no observation carried is
    /// said, with its problem in the log.
    private mutating func set(_ next: SourceStatus.State, observing: Port?? = nil, ports: [Port] = [], _ effects: inout [Effect]) {
        let changed = next != state
        state = next
        if let port = observing, lastReported != .some(port) {
            lastReported = .some(port)
            if let port {
                effects.append(.log(.debug, "\(program) says port \(port)"))
            } else if let problem = next.problem?.message {
                effects.append(.log(.info, problem))
            }
            effects.append(.observed(port, ports: ports))
        } else if changed {
            if let problem = next.problem?.message { effects.append(.log(.warning, problem)) }
            effects.append(.statusChanged)
        }
    }
}
