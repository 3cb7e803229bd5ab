import CLinux
import Glibc

/// A child process in the loop. It is spawned with `posix_spawn` and only the environment it
/// is given, with stdin on /dev/null, an empty signal mask and default dispositions (whatever
/// ours are: signalfd blocks TERM, INT and HUP here), in a process group of its own. Its end is
/// seen through a pidfd, which the loop watches: readable when the child exits, so nothing
/// polls and nothing wakes while it runs. It is reaped at once and `onExit` is told how it
/// ended. One that outlives `timeout` is killed with its whole process group (SIGKILL). With
/// `capturesErrorLine`, its stdout goes to /dev/null and its stderr to a pipe in the loop, of
/// which the first line is kept (`errorLine`), for a one-line report of why it failed; with
/// `onOutputLine` too, its stdout goes to a pipe of its own, each line handed over as it comes.
public final class Subprocess {
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        case exited(Int32)
        case killed(signal: Int32)
        /// It could not be reaped (waitpid failed): how it ended is unknown.
        case unknown(String)

        public var description: String {
            switch self {
            case .exited(let code): "exited with \(code)"
            case .killed(let signal): "was killed by signal \(signal)"
            case .unknown(let reason): "ended, but \(reason)"
            }
        }
    }

    public let pid: pid_t
    public let name: String
    public private(set) var termination: Termination?
    /// It was killed for outliving its timeout.
    public private(set) var outlivedTimeout = false
    /// The first line it wrote to stderr, printable, at most 200 characters; nil when it wrote
    /// none (or `capturesErrorLine` was off). Complete when `onExit` is called.
    public var errorLine: String? { errorOutput?.line }

    private let loop: EventLoop
    private let timeout: Duration
    private let onExit: (Termination) -> Void
    private var exit: Registration?
    private var deadline: Timer!
    private var errorOutput: FirstLineReader?
    private var standardOutput: LineReader?
    private let leftBehind: LeftBehindProcesses?

    /// `environment`: `NAME=value` entries, all the child gets. `leftBehind`: where what the
    /// child leaves running in its process group when it ends is noted. Throws when it cannot
    /// be started or watched (a kernel without pidfd_open, before 5.3: the child is killed then).
    public init(loop: EventLoop, name: String, executable: String, arguments: [String], environment: [String],
                timeout: Duration, capturesErrorLine: Bool = false, leftBehind: LeftBehindProcesses? = nil,
                onOutputLine: ((String) -> Void)? = nil, onExit: @escaping (Termination) -> Void) throws {
        self.loop = loop
        self.leftBehind = leftBehind
        self.name = name
        self.timeout = timeout
        self.onExit = onExit
        let errorOutput = capturesErrorLine ? try FirstLineReader(loop: loop, name: "\(name).stderr") : nil
        self.errorOutput = errorOutput
        let standardOutput = try onOutputLine.map { try LineReader(loop: loop, name: "\(name).stdout", onLine: $0) }
        self.standardOutput = standardOutput
        pid = try Self.spawn(executable, arguments: arguments, environment: environment, errorOutput: errorOutput?.writeEnd,
                             standardOutput: standardOutput?.writeEnd, ownProcessGroup: true)
        errorOutput?.closeWriteEnd()
        standardOutput?.closeWriteEnd()
        deadline = loop.makeTimer(name: name) { [unowned self] in self.timedOut() }
        do {
            let pidfd = FileDescriptor(rawValue: try systemCall("pidfd_open") { clinux_pidfd_open(pid, 0) })
            exit = try Registration(loop: loop, owning: pidfd, interest: .readable, name: name,
                                    onFailure: .disable { [unowned self] error in self.finish(.unknown("\(error)")) }) {
                [unowned self] _ in try self.reap()
            }
        } catch {
            // Unwatched, it could neither be reaped nor timed out: it goes now.
            Self.killAndReap(pid)
            throw error
        }
        deadline.schedule(after: timeout)
    }

    /// Stops watching. A child still running goes with its owner (a reload that drops the hook,
    /// the daemon stopping): killed with its process group and reaped here, so that no zombie
    /// is left behind, as systemd would kill it on stop anyway.
    deinit {
        deadline.cancel()
        exit?.cancel()
        if isRunning { Self.killAndReap(pid) }
    }

    public var isRunning: Bool { termination == nil }

    /// `posix_spawn` of `executable` with only `environment`, stdin on /dev/null, an empty
    /// signal mask and default dispositions. `outputPath`: a file that stdout and stderr append
    /// to (nil: ours). `errorOutput`: the child's stderr instead, with stdout on /dev/null, or on
    /// `standardOutput` when given.
    /// `ownProcessGroup`: a group of its own, so that it can be killed whole.
    public static func spawn(_ executable: String, arguments: [String], environment: [String], outputPath: String? = nil,
                             errorOutput: FileDescriptor? = nil, standardOutput: FileDescriptor? = nil,
                             ownProcessGroup: Bool) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else if let errorOutput {
            if let standardOutput {
                posix_spawn_file_actions_adddup2(&actions, standardOutput.rawValue, 1)
            } else {
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            }
            posix_spawn_file_actions_adddup2(&actions, errorOutput.rawValue, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        clinux_sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (ownProcessGroup ? POSIX_SPAWN_SETPGROUP : 0)))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        // posix_spawn returns the error number instead of setting errno.
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw SystemCallError(call: "posix_spawn \(executable)", errno: Errno(rawValue: result)) }
        return pid
    }

    /// The pidfd became readable: the child has ended. What it left in its group is noted
    /// before it is reaped, while the group's id cannot have been reused.
    private func reap() throws {
        leftBehind?.note(groupOf: pid)
        var status: Int32 = 0
        guard try systemCall("waitpid", { waitpid(pid, &status, WNOHANG) }) == pid else { return }
        // WIFEXITED: the low 7 bits are 0, and the code is in bits 8-15; else they are the signal.
        finish(status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .killed(signal: status & 0x7f))
    }

    private func finish(_ termination: Termination) {
        self.termination = termination
        errorOutput?.finish()
        standardOutput?.finish()
        deadline.cancel()
        exit?.cancel()
        exit = nil
        onExit(termination)
    }

    private func timedOut() {
        loop.logger.warning(name, "pid \(pid) is still running after \(timeout.limitText): killing it and its process group")
        outlivedTimeout = true
        Self.killGroup(pid)
    }

    /// SIGKILL to the child's process group. The child is not reaped yet, so the group exists.
    private static func killAndReap(_ pid: pid_t) {
        killGroup(pid)
        var status: Int32 = 0
        _ = try? systemCall("waitpid") { waitpid(pid, &status, 0) }  // killed: this returns at once
    }

    private static func killGroup(_ pid: pid_t) {
        // ESRCH, the only possible failure, would mean the group is gone already: nothing to kill.
        _ = try? systemCall("kill") { kill(-pid, SIGKILL) }
    }
}
