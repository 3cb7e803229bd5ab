import Glibc

/// The read end of a pipe in the loop that hands over each line written to it, as it comes (a
/// child's stdout or stderr). A line longer than `limit` bytes is cut there and the rest of it
/// dropped, so that a writer that never ends a line cannot grow memory; the writer never blocks
/// on a full pipe.
public final class LineReader {
    /// The end to hand to the writer (a child's fd 1 or 2); close it here once the child has it.
    public private(set) var writeEnd: FileDescriptor?
    private var source: Registration?
    private var partial: [UInt8] = []
    /// The line being read grew past `limit`: the rest of it is dropped.
    private var overlong = false
    private let limit: Int
    private let onLine: (String) -> Void
    /// Reads per wakeup, at most, as `TCPConnection`'s: a child that writes without end (a
    /// `yes`) cannot hold the loop; level-triggered epoll reports the rest next time.
    static let readsPerWakeup = 16

    /// `onLine`: each line, without its newline, decoded as UTF-8 (bad bytes replaced).
    public init(loop: EventLoop, name: String, limit: Int = 4096, onLine: @escaping (String) -> Void) throws {
        self.limit = limit
        self.onLine = onLine
        var ends: [Int32] = [-1, -1]
        _ = try systemCall("pipe") { pipe(&ends) }
        let readEnd = FileDescriptor(rawValue: ends[0])
        writeEnd = FileDescriptor(rawValue: ends[1])
        do {
            // Close-on-exec for both (the loop has one thread: no spawn can come in between);
            // the child gets its own copy. Only our end is non-blocking: the writer keeps
            // ordinary blocking writes.
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

    /// Reads what is in the pipe now (one wakeup's worth: whatever the child left behind may
    /// still be writing), hands over a last line that had no newline, and stops watching: the
    /// writer has ended.
    public func finish() {
        // A read that fails leaves the lines as they are: the report goes on without the rest.
        try? drain()
        endOfInput()
    }

    private func drain() throws {
        guard let fd = source?.fd else { return }
        for _ in 0..<Self.readsPerWakeup {
            guard case .done(let chunk) = try fd.read(upTo: 4096) else { return }
            guard !chunk.isEmpty else { return endOfInput() }  // every writer closed it
            var rest = chunk[...]
            while let newline = rest.firstIndex(of: 0x0A) {
                take(rest[..<newline])
                hand()
                rest = rest[rest.index(after: newline)...]
            }
            take(rest)
        }
    }

    private func take(_ bytes: ArraySlice<UInt8>) {
        guard !overlong else { return }
        partial += bytes.prefix(limit - partial.count)
        overlong = partial.count >= limit
    }

    private func hand() {
        let line = String(decoding: partial, as: UTF8.self)
        partial = []
        overlong = false
        onLine(line)
    }

    private func endOfInput() {
        source?.cancel()
        source = nil
        if !partial.isEmpty { hand() }
    }
}
