import CLinux
import Glibc
import Reactor

/// Wakes the loop whenever a file is written (inotify `IN_MODIFY`), so that a test waiting for
/// what another process writes there looks at once, not at its next timeout.
public final class FileChangeWakeup {
    private let source: Registration

    public init(loop: EventLoop, path: String) throws {
        let fd = FileDescriptor(rawValue: try systemCall("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) })
        do {
            _ = try systemCall("inotify_add_watch") { inotify_add_watch(fd.rawValue, path, UInt32(IN_MODIFY)) }
        } catch {
            fd.close()
            throw error
        }
        source = try Registration(loop: loop, owning: fd, interest: .readable, name: "test.inotify", onFailure: .stopLoop) { _ in
            // The events only wake the loop; what changed is read from the file itself.
            while case .done(let bytes) = try fd.read(upTo: 4096), !bytes.isEmpty {}
        }
    }

    deinit { source.cancel() }
}
