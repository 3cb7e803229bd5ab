import Glibc

/// An open file descriptor. A plain value: whoever created it closes it.
public struct FileDescriptor: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    public var description: String { "fd \(rawValue)" }

    /// Reads what is there into `buffer`. `.done(0)` is end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemCallError) -> IOResult<Int> {
        try nonBlockingCall("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    /// Reads up to `maxCount` bytes. An empty array is end of file.
    public func read(upTo maxCount: Int) throws -> IOResult<[UInt8]> {
        var bytes = [UInt8](repeating: 0, count: maxCount)
        let result = try bytes.withUnsafeMutableBytes { try read(into: $0) }
        switch result {
        case .wouldBlock: return .wouldBlock
        case .done(let count):
            bytes.removeSubrange(count...)
            return .done(bytes)
        }
    }

    /// Writes as much of `bytes` as the kernel takes now.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SystemCallError) -> IOResult<Int> {
        try nonBlockingCall("write") { Glibc.write(rawValue, bytes.baseAddress, bytes.count) }
    }

    public func write(_ bytes: [UInt8]) throws -> IOResult<Int> {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes all of `bytes` to a blocking descriptor (stderr, stdout, a file), through short
    /// writes and EINTR.
    public func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try bytes.withUnsafeBytes { buffer in
                try systemCall("write") { Glibc.write(rawValue, buffer.baseAddress! + offset, buffer.count - offset) }
            }
        }
    }

    /// Closes the descriptor. EINTR is not retried: on Linux the descriptor is gone either way.
    /// EBADF means the program closed something it did not own: a bug, so it stops here.
    public func close() {
        if Glibc.close(rawValue) == -1 && Errno.current == .badFileDescriptor {
            preconditionFailure("close: fd \(rawValue) was not open")
        }
    }
}
