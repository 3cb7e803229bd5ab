import Glibc
import Reactor

/// What the process was started with.
enum ProcessEnvironment {
    static func variables() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }

    /// The environment for a command we run (the recovery command): ours without secrets and
    /// without systemd's notify and watchdog variables, since the command is not the service
    /// and must not see the passwords. `NAME=value` entries, sorted.
    static func forChildren(_ variables: [String: String]) -> [String] {
        variables.filter { name, _ in
            !(name.hasPrefix("PORTSYNC_") && (name.hasSuffix("_PASSWORD") || name.hasSuffix("_API_KEY")))
                && !["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"].contains(name)
        }.map { "\($0.key)=\($0.value)" }.sorted()
    }

    static var workingDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static var userID: UInt32 { getuid() }
    static var processID: Int32 { getpid() }

    /// The groups the process runs in: its effective group and its supplementary groups.
    static var groups: [gid_t] {
        let count = getgroups(0, nil)
        var list = [gid_t](repeating: 0, count: Int(max(count, 0)))
        let filled = list.isEmpty ? 0 : getgroups(Int32(list.count), &list)
        return [getegid()] + list.prefix(Int(max(filled, 0)))
    }

    /// Writes to fd 1 (Glibc's `stdout` global is not usable from Swift 6).
    static func printToStandardOutput(_ text: String) {
        write(to: 1, text)
    }

    static func printToStandardError(_ text: String) {
        write(to: 2, text)
    }

    private static func write(to fd: Int32, _ text: String) {
        // The reader went away (a closed pipe): nothing more to say.
        try? FileDescriptor(rawValue: fd).writeAll(Array(text.utf8))
    }
}
