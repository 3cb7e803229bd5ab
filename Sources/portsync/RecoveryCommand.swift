import Glibc
import Reactor

/// Runs the configured recovery command (`/bin/sh -c …`, e.g. restarting the tunnel unit) after
/// enough failed NAT-PMP cycles, at most once per cool-down. The child starts with the signal
/// mask cleared (ours blocks SIGTERM for signalfd) and is reaped from a timer, never waited for.
final class RecoveryCommand {
    private let loop: EventLoop
    private let command: String
    private let threshold: Int
    private let cooldown: Duration
    private var lastRun: Instant?
    private var child: pid_t?
    private var reaper: Timer!
    private(set) var runs = 0

    init(loop: EventLoop, command: String, threshold: Int, cooldown: Duration) {
        self.loop = loop
        self.command = command
        self.threshold = threshold
        self.cooldown = cooldown
        reaper = loop.makeTimer(name: "recovery.reap") { [unowned self] in self.reap() }
    }

    deinit { reaper.cancel() }

    /// A NAT-PMP cycle failed for the `streak`-th time in a row.
    func failed(streak: Int) {
        guard streak >= threshold, child == nil else { return }
        if let lastRun, loop.now < lastRun + cooldown { return }
        lastRun = loop.now
        runs += 1
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let words: [String] = ["/bin/sh", "-c", command]
        let argv = words.map { strdup($0) } + [nil]
        let envp = Self.childEnvironment(ProcessEnvironment.variables()).map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", nil, &attributes, argv, envp)
        guard result == 0 else {
            loop.logger.error("natpmp.recovery", "posix_spawn /bin/sh: \(String(cString: strerror(result)))")
            return
        }
        child = pid
        loop.logger.warning("natpmp.recovery", "\(streak) NAT-PMP failures in a row: running the recovery command (pid \(pid))")
        reaper.schedule(after: .milliseconds(200))
    }

    /// Our environment without secrets and without systemd's notify and watchdog variables:
    /// the command is not the service, and must not see the passwords.
    static func childEnvironment(_ variables: [String: String]) -> [String] {
        variables.filter { name, _ in
            !(name.hasPrefix("PORTSYNC_") && (name.hasSuffix("_PASSWORD") || name.hasSuffix("_API_KEY")))
                && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"].contains(name)
        }.map { "\($0.key)=\($0.value)" }.sorted()
    }

    private func reap() {
        guard let pid = child else { return }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            child = nil
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            loop.logger.log(code == 0 ? .info : .error, "natpmp.recovery", "the recovery command exited with \(code)")
        } else {
            reaper.schedule(after: .seconds(1))
        }
    }
}
