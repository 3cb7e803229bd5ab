import Glibc

/// What children left running in their process groups when they ended (a hook's `sleep 60 &`),
/// killed with those groups when their owner goes (the daemon stopping, a reload dropping the
/// hook), as systemd kills a service's cgroup on stop: a foreground run has no cgroup to do it.
/// Each process is known by its pid and start time, and a group is killed only while one of
/// its own members is still in it, so a recycled pid is never hit.
public final class LeftBehindProcesses {
    struct Member: Equatable {
        let pid: pid_t
        let group: pid_t
        let startTime: UInt64
    }

    /// At most this many are remembered; the oldest are forgotten first.
    static let limit = 64
    private var members: [Member] = []

    public init() {}

    deinit { killAll() }

    /// The process groups with a live member, in the order they were noted.
    public var groups: [pid_t] {
        var seen: [pid_t] = []
        for member in members where !seen.contains(member.group) && Self.isAlive(member) { seen.append(member.group) }
        return seen
    }

    /// Notes the processes in `leader`'s group other than the leader. The leader has ended and
    /// is not reaped yet, so the group's id is still its own and cannot name another group.
    public func note(groupOf leader: pid_t) {
        members.removeAll { !Self.isAlive($0) }
        members += Self.processes().filter { $0.group == leader && $0.pid != leader }
        if members.count > Self.limit { members.removeFirst(members.count - Self.limit) }
    }

    /// SIGKILL to every group that still has one of its noted members.
    public func killAll() {
        for group in groups {
            // ESRCH, the only possible failure, means the group emptied meanwhile.
            _ = try? systemCall("kill") { kill(-group, SIGKILL) }
        }
        members = []
    }

    /// Whether the process is still there, with the same start time and in the same group.
    private static func isAlive(_ member: Member) -> Bool {
        process(member.pid) == member
    }

    /// Every process the kernel lists in /proc.
    private static func processes() -> [Member] {
        FileContents.names(inDirectory: "/proc").compactMap { pid_t($0).flatMap(process) }
    }

    /// /proc/PID/stat's process group (field 5) and start time (field 22). The command name
    /// (field 2) is in parentheses and may hold anything, so the fields are counted after its
    /// closing parenthesis, the last one in the line.
    static func process(_ pid: pid_t) -> Member? {
        guard let bytes = try? FileContents.read(atPath: "/proc/\(pid)/stat", maxBytes: 4096),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // After the name: state (3), ppid (4), pgrp (5), …, starttime (22).
        guard fields.count > 19, fields[0].first != UInt8(ascii: "Z"),
              let group = pid_t(String(decoding: fields[2], as: UTF8.self)),
              let startTime = UInt64(String(decoding: fields[19], as: UTF8.self)) else { return nil }
        return Member(pid: pid, group: group, startTime: startTime)
    }
}
