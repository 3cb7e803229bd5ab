import Foundation
import Glibc
import HTTP

/// The test tracker (Tests/Fixtures/tracker.py) on 127.0.0.1, in a `LoopbackNamespace` or in
/// the test's own, and a torrent that announces to it. Stopped by its PID.
public final class Tracker {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/tracker.py").standardized.path

    public let port: UInt16
    public let logPath: String
    private let process: ChildProcess

    public init(in namespace: LoopbackNamespace? = nil, directory: String, port: UInt16) throws {
        self.port = port
        logPath = "\(directory)/tracker.log"
        let arguments = [Self.script, "--port", "\(port)", "--log", logPath]
        let environment = ["PATH": "/usr/bin:/bin"]
        let output = "\(directory)/tracker.out"
        process = if let namespace {
            try namespace.start(NetworkLab.python!, arguments, environment: environment, output: output)
        } else {
            try ChildProcess(executable: NetworkLab.python!, arguments: arguments, environment: environment, outputPath: output)
        }
        guard waitFor(seconds: 10, { self.log.contains("\"ready\"") }) else {
            throw InstanceError(message: "the test tracker did not start: \(process.output)")
        }
    }

    deinit { process.stop(grace: 2) }

    public var announceURL: String { "http://127.0.0.1:\(port)/announce" }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The `port=` of every announce so far.
    public var announcedPorts: [Int] {
        log.split(separator: "\n").compactMap { line in (try? JSONValue.parse(Array(line.utf8)))?["port"]?.integer }
    }

    /// A single-file torrent with no data anywhere, announcing to this tracker: enough for a
    /// client to announce it.
    public func torrent(name: String) -> [UInt8] {
        let info = "d6:lengthi16384e4:name\(name.utf8.count):\(name)12:piece lengthi16384e6:pieces20:\(String(repeating: "p", count: 20))e"
        return Array("d8:announce\(announceURL.utf8.count):\(announceURL)4:info\(info)e".utf8)
    }
}
