import Glibc

/// The read end of a pipe in the loop that keeps only the first line written to it (at most
/// `limit` bytes of it) and drains and drops the rest, so a writer never blocks on a full
/// pipe. A child's stderr, for a one-line report of why it failed.
public final class FirstLineReader {
    /// The end to hand to the writer (a child's fd 2); close it here once the child has it.
    public private(set) var writeEnd: FileDescriptor?
    private var source: Registration?
    private var bytes: [UInt8] = []
    private var lineComplete = false
    private let limit: Int
    /// Reads per wakeup, at most, as `TCPConnection`'s: a child that writes without end (a
    /// `yes >&2`) cannot hold the loop; level-triggered epoll reports the rest next time.
    static let readsPerWakeup = 16

    public init(loop: EventLoop, name: String, limit: Int = 512) throws {
        self.limit = limit
        var ends: [Int32] = [-1, -1]
        _ = try systemCall("pipe") { pipe(&ends) }
        let readEnd = FileDescriptor(rawValue: ends[0])
        writeEnd = FileDescriptor(rawValue: ends[1])
        do {
            // Close-on-exec for both (the loop has one thread: no spawn can come in between);
            // the child gets its own copy as fd 2. Only our end is non-blocking: the writer
            // keeps ordinary blocking writes.
            for end in ends { _ = try systemCall("fcntl") { fcntl(end, F_SETFD, FD_CLOEXEC) } }
            _ = try systemCall("fcntl") { fcntl(readEnd.rawValue, F_SETFL, O_NONBLOCK) }
        } catch {
            readEnd.close()
            closeWriteEnd()
            throw error
        }
        source = try Registration(loop: loop, owning: readEnd, interest: .readable, name: name,
                                  onFailure: .disable { _ in }) { [unowned self] _ in try self.drain() }
    }

    deinit {
        closeWriteEnd()
        source?.cancel()
    }

    public func closeWriteEnd() {
        writeEnd?.close()
        writeEnd = nil
    }

    /// The first line so far, printable and trimmed; nil when nothing was written.
    public var line: String? {
        let text = String(decoding: bytes, as: UTF8.self).trimmingSpaces
        return text.isEmpty ? nil : text.oneLine(limit: 200)
    }

    /// Reads what is in the pipe now (one wakeup's worth: whatever the child left behind may
    /// still be writing) and stops watching it: the writer has ended.
    public func finish() {
        // A read that fails leaves the line as it is: the report goes on without the rest.
        try? drain()
        source?.cancel()
        source = nil
    }

    private func drain() throws {
        guard let fd = source?.fd else { return }
        for _ in 0..<Self.readsPerWakeup {
            guard case .done(let chunk) = try fd.read(upTo: 4096) else { return }
            guard !chunk.isEmpty else {
                source?.cancel()  // end of file: every writer closed it
                source = nil
                return
            }
            guard !lineComplete else { continue }
            let end = chunk.firstIndex(of: 0x0A)
            bytes += chunk[..<(end ?? chunk.endIndex)].prefix(limit - bytes.count)
            lineComplete = end != nil || bytes.count >= limit
        }
    }
}

