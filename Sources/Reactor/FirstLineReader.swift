/// A `LineReader` that keeps only the first line with something on it (at most `limit`
/// bytes), printable and trimmed: a child's stderr, for a one-line report of why it failed.
public final class FirstLineReader {
    private var reader: LineReader!
    private var first: String?

    public init(loop: EventLoop, name: String, limit: Int = 512) throws {
        reader = try LineReader(loop: loop, name: name, limit: limit) { [unowned self] line in
            if self.first == nil, !line.trimmingSpaces.isEmpty { self.first = line }
        }
    }

    /// The end to hand to the writer (a child's fd 2); close it here once the child has it.
    public var writeEnd: FileDescriptor? { reader.writeEnd }

    public func closeWriteEnd() {
        reader.closeWriteEnd()
    }

    /// The first line so far, printable and trimmed; nil when nothing was written.
    public var line: String? {
        first.map { $0.trimmingSpaces.oneLine(limit: 200) }
    }

    /// Reads what is left now and stops watching: the writer has ended.
    public func finish() {
        reader.finish()
    }
}
