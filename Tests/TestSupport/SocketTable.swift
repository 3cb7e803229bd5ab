import Foundation
import Glibc

/// What `ss` shows of a process's sockets, to make sure a torrent client under test holds
/// nothing outside loopback.
public enum SocketTable {
    public static var ssCommand: String? {
        ["/usr/bin/ss", "/bin/ss", "/usr/sbin/ss", "/sbin/ss"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// `ss -H -tuanp` lines (TCP and UDP, every state) of the processes `pids`, in `namespace`
    /// (nil: the test's own).
    public static func sockets(of pids: [pid_t], namespace: String? = nil) throws -> [String] {
        guard let ss = ssCommand else { throw InstanceError(message: "ss (iproute2) is not installed") }
        let output = if let namespace {
            try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "exec", namespace, ss, "-H", "-tuanp"])
        } else {
            try NetworkLab.run(ss, ["-H", "-tuanp"])
        }
        return output.split(separator: "\n").map(String.init).filter { line in pids.contains { line.contains("pid=\($0),") } }
    }

    /// Throws, quoting them, when any socket of `pids` has a local or peer address outside
    /// loopback (127.0.0.0/8, ::1); a listener's `*` peer is fine, a `0.0.0.0` or `*` local
    /// address is not. Returns the lines it checked.
    @discardableResult
    public static func requireLoopbackOnly(_ pids: [pid_t], namespace: String? = nil, what: String) throws -> [String] {
        let lines = try sockets(of: pids, namespace: namespace)
        let outside = lines.filter { line in
            let columns = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard columns.count >= 6 else { return true }
            return !isLoopback(columns[4], local: true) || !isLoopback(columns[5], local: false)
        }
        guard outside.isEmpty else {
            throw InstanceError(message: "\(what) holds sockets outside loopback:\n\(outside.joined(separator: "\n"))")
        }
        return lines
    }

    /// `127.0.0.1:51413`, `127.0.0.1%lo:52100`, `[::1]:51413`; a peer may also be `*` or
    /// `0.0.0.0:*` / `[::]:*` (nobody: a listener or an unconnected UDP socket).
    static func isLoopback(_ address: String, local: Bool) -> Bool {
        guard let colon = address.lastIndex(of: ":") else { return false }
        let port = address[address.index(after: colon)...]
        var host = String(address[..<colon])
        if let percent = host.firstIndex(of: "%") { host = String(host[..<percent]) }
        if !local && port == "*" && ["0.0.0.0", "*", "[::]", "[::ffff:0.0.0.0]"].contains(host) { return true }
        return host.hasPrefix("127.") || host == "[::1]" || host.hasPrefix("[::ffff:127.")
    }
}
