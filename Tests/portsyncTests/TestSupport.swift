import Foundation
@testable import portsync

/// A directory under /tmp, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/portsync-test-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    func write(_ name: String, _ contents: String, mode: Int = 0o600) -> String {
        let file = "\(path)/\(name)"
        try! FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: file, contents: Data(contents.utf8), attributes: [.posixPermissions: mode])
        return file
    }
}

/// A loader with a clean environment: nothing from the machine running the tests leaks in.
func loader(file: String? = nil, environment: [String: String] = [:], flags: [FlagSetting] = [],
            home: String = "/nonexistent-home") -> ConfigurationLoader {
    var variables = ["HOME": home, "XDG_RUNTIME_DIR": "/run/user/1000"]
    variables.merge(environment) { $1 }
    return ConfigurationLoader(environment: variables, userID: 1000, workingDirectory: "/work/dir",
                               explicitFile: file, flags: flags)
}

/// The configuration error that loading `text` as a file gives, as printed.
func loadError(_ text: String, environment: [String: String] = [:]) -> String? {
    let directory = TemporaryDirectory()
    let file = directory.write("config.toml", text)
    do {
        _ = try loader(file: file, environment: environment).load()
        return nil
    } catch {
        return error.description.replacingOccurrences(of: directory.path + "/", with: "")
    }
}

/// The built `portsync` binary, next to the test bundle.
var portsyncBinary: String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var candidate = bundle
    while candidate.path != "/" {
        let binary = candidate.appendingPathComponent("portsync").path
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        candidate.deleteLastPathComponent()
    }
    return bundle.appendingPathComponent("portsync").path
}

/// A child process with captured output.
final class Child {
    let process = Process()
    private let outputPipe = Pipe()
    private let errorPipe = Pipe()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: portsyncBinary)
        process.arguments = arguments
        var variables = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "XDG_RUNTIME_DIR": "/run/user/1000"]
        variables.merge(environment) { $1 }
        process.environment = variables
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        try process.run()
    }

    /// Waits at most `seconds` for the exit; kills the child if it is still running then.
    @discardableResult
    func wait(seconds: Double = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    var standardOutput: String { String(decoding: outputPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
    var standardError: String { String(decoding: errorPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }

    /// Reads stderr until `text` appears (or `seconds` pass); returns what was read.
    func waitForError(containing text: String, seconds: Double = 10) -> String {
        var collected = ""
        let handle = errorPipe.fileHandleForReading
        let deadline = Date().addingTimeInterval(seconds)
        let fd = handle.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !collected.contains(text) && Date() < deadline {
            let count = read(fd, &buffer, buffer.count)
            if count > 0 { collected += String(decoding: buffer[0..<count], as: UTF8.self) } else { usleep(10_000) }
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return collected
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Runs to completion and returns (exit code, stdout, stderr).
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32?, String, String) {
        let child = try Child(arguments, environment: environment)
        let status = child.wait()
        return (status, child.standardOutput, child.standardError)
    }
}
