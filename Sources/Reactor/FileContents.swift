import Glibc

/// Whole-file reads for small files (configuration, secrets, port files, state), and the
/// names in a directory.
public enum FileContents {
    /// The bytes of the regular file at `path`, at most `maxBytes` (more is an error: EFBIG).
    /// Anything else (a FIFO, a device, a directory) is refused with `NotARegularFileError`
    /// before a byte is read: the open is non-blocking, so a FIFO with no writer cannot freeze
    /// the loop. A symbolic link to a regular file is followed, as every reader here always has.
    public static func read(atPath path: String, maxBytes: Int = 1 << 20) throws -> [UInt8] {
        let fd = FileDescriptor(rawValue: try systemCall("open") { open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY) })
        defer { fd.close() }
        var info = stat()
        _ = try systemCall("fstat") { fstat(fd.rawValue, &info) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw NotARegularFileError(path: path, mode: info.st_mode) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = try chunk.withUnsafeMutableBytes { buffer in
                try systemCall("read") { Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maxBytes { throw SystemCallError(call: "read", errno: .fileTooLarge) }
        }
    }

    /// Removes the file at `path`; one that is not there is not an error.
    public static func remove(_ path: String) throws(SystemCallError) {
        do throws(SystemCallError) {
            _ = try systemCall("unlink \(path)") { unlink(path) }
        } catch where error.errno == .noSuchFileOrDirectory {
            return  // already gone: what was asked for
        }
    }

    /// Whether something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The names in the directory at `path` (not `.` and `..`), in the order the kernel lists
    /// them; none when it cannot be read.
    public static func names(inDirectory path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

extension FileContents {
    /// Replaces the file at `path` with `bytes` so that a reader sees either the old or the new
    /// content, never a mix, even across a crash: a temporary file in the same directory,
    /// fsync, rename over, fsync of the directory. Missing parent directories are created 0700.
    /// The temporary file has a random name and is created exclusively, never through a
    /// symbolic link: one planted by another user in a directory it can write makes the open
    /// fail, never a write to the file it points at.
    public static func writeAtomically(_ bytes: [UInt8], toPath path: String, mode: mode_t = 0o644) throws {
        let directory = directory(of: path)
        try makeDirectories(directory)
        let (temporary, fd) = try createTemporary(besides: path, mode: mode)
        // The descriptor is closed exactly once, and the temporary file never outlives a failure
        // (a rename refused in a sticky directory, a path that is a directory).
        do {
            defer { fd.close() }
            try fd.writeAll(bytes)
            _ = try systemCall("fsync") { fsync(fd.rawValue) }
        } catch {
            unlink(temporary)
            throw error
        }
        do {
            _ = try systemCall("rename \(temporary) to \(path)") { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
        let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            // Makes the rename itself durable; a failure here loses nothing already written.
            fsync(directoryFD)
            Glibc.close(directoryFD)
        }
    }

    /// Appends `bytes` to `path` in one write (`O_APPEND`: whole, after whatever is there),
    /// creating it with `mode` (and missing parent directories 0700); never through a symbolic
    /// link. No fsync: for a log whose last line may be lost in a crash, not for state.
    public static func append(_ bytes: [UInt8], toPath path: String, mode: mode_t = 0o600) throws {
        try makeDirectories(directory(of: path))
        let fd = FileDescriptor(rawValue: try systemCall("open \(path)") {
            open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode)
        })
        defer { fd.close() }
        try fd.writeAll(bytes)
    }

    /// `path.tmp.` and 64 random bits (the kernel's getrandom), in hex.
    static func temporaryName(besides path: String) -> String {
        "\(path).tmp.\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    }

    /// `path.tmp.<random>`, created exclusively (a name that exists, planted or left over, is
    /// passed over for another), never through a symbolic link.
    private static func createTemporary(besides path: String, mode: mode_t) throws -> (String, FileDescriptor) {
        var attempts = 0
        while true {
            let temporary = temporaryName(besides: path)
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            if fd >= 0 { return (temporary, FileDescriptor(rawValue: fd)) }
            let error = Errno(rawValue: errno)
            attempts += 1
            guard error == .fileExists, attempts < 8 else { throw SystemCallError(call: "open \(temporary)", errno: error) }
        }
    }

    /// The directory that holds `path`: `.` for a bare name, `/` for a file at the root.
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `mkdir -p` with mode 0700 for what it creates.
    public static func makeDirectories(_ path: String) throws {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            let directory = current
            do {
                _ = try systemCall("mkdir \(directory)") { mkdir(directory, 0o700) }
            } catch {
                guard error.errno == .fileExists else { throw error }
            }
        }
    }
}
