import Glibc

/// Whole-file reads for small files (configuration, secrets, port files, state).
public enum FileContents {
    /// The file's bytes, at most `maxBytes` (more is an error: EFBIG).
    public static func read(atPath path: String, maxBytes: Int = 1 << 20) throws -> [UInt8] {
        let fd = FileDescriptor(rawValue: try systemCall("open") { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) })
        defer { fd.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try chunk.withUnsafeMutableBytes { buffer in
                try systemCall("read") { Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maxBytes { throw SystemCallError(call: "read", errno: EFBIG) }
        }
    }

    /// Whether something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }
}
