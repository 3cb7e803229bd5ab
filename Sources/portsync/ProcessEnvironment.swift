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

    static var workingDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    static var userID: UInt32 { getuid() }
    static var processID: Int32 { getpid() }

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
