import Glibc
import Reactor

/// The lock beside a state file (`state.json.lock`, flock(2), held for the process's life): one
/// `portsync run` per state, and no `portsync once` beside it, since two processes setting the
/// same clients fight. The holder's pid is written in it, for the message of the one refused.
/// The kernel drops the lock when its holder ends, however it ends.
final class StateLock {
    /// The lock is held by another process (its pid, when it wrote one).
    struct Held: Error, Equatable {
        let path: String
        let pid: Int32?
    }

    let path: String
    private let fd: FileDescriptor

    private init(path: String, fd: FileDescriptor) {
        self.path = path
        self.fd = fd
    }

    deinit { fd.close() }

    static func path(forStateFile stateFile: String) -> String { "\(stateFile).lock" }

    /// Takes the lock of `stateFile`, without waiting. A lock that cannot be made at all (a
    /// read-only directory) throws: the daemon runs on without the state file anyway.
    static func acquire(stateFile: String) throws -> Result<StateLock, Held> {
        let path = path(forStateFile: stateFile)
        try FileContents.makeDirectories(FileContents.directory(of: path))
        let fd = FileDescriptor(rawValue: try systemCall("open \(path)") { open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600) })
        do {
            _ = try systemCall("flock \(path)") { flock(fd.rawValue, LOCK_EX | LOCK_NB) }
        } catch where error.errno == .wouldBlock {
            let text = (try? FileContents.read(atPath: path, maxBytes: 64)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            fd.close()
            return .failure(Held(path: path, pid: Int32(text.trimmingSpaces)))
        } catch {
            fd.close()
            throw error
        }
        _ = ftruncate(fd.rawValue, 0)
        try? fd.writeAll(Array("\(getpid())\n".utf8))
        return .success(StateLock(path: path, fd: fd))
    }
}
