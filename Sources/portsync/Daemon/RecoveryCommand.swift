import Reactor

/// Runs the configured recovery command (`/bin/sh -c …`, e.g. restarting the tunnel unit) after
/// enough failed NAT-PMP cycles, at most once per cool-down, as a `Subprocess`: the loop hears
/// of its end through a pidfd, and one still running after `timeout` is killed.
final class RecoveryCommand {
    static let name = "natpmp.recovery"

    private let loop: EventLoop
    private let command: String
    private let threshold: Int
    private let cooldown: Duration
    private let timeout: Duration
    private var lastRun: Instant?
    /// The last child, kept after it ended (it must not go away inside its own exit report).
    private var child: Subprocess?
    private(set) var runs = 0

    init(loop: EventLoop, command: String, threshold: Int, cooldown: Duration, timeout: Duration = .seconds(60)) {
        self.loop = loop
        self.command = command
        self.threshold = threshold
        self.cooldown = cooldown
        self.timeout = timeout
    }

    /// A NAT-PMP cycle failed for the `streak`-th time in a row.
    func failed(streak: Int) {
        guard streak >= threshold else { return }
        run(because: "\(streak) NAT-PMP failures in a row")
    }

    /// Runs the command now (unless it runs already or ran within the cool-down), saying why.
    func run(because reason: String) {
        guard child?.isRunning != true else { return }
        if let lastRun, loop.now < lastRun + cooldown { return }
        lastRun = loop.now
        runs += 1
        let child: Subprocess
        do {
            child = try Subprocess(loop: loop, name: Self.name, executable: "/bin/sh", arguments: ["-c", command],
                                   environment: ProcessEnvironment.forChildren(ProcessEnvironment.variables()), timeout: timeout) {
                [unowned self] termination in self.ended(termination)
            }
        } catch {
            loop.logger.error(Self.name, "\(error)")
            return
        }
        self.child = child
        loop.logger.warning(Self.name, "\(reason): running the recovery command (pid \(child.pid))")
    }

    private func ended(_ termination: Subprocess.Termination) {
        loop.logger.log(termination == .exited(0) ? .info : .error, Self.name, "the recovery command \(termination)")
    }
}
