import Foundation

/// Tests/Fixtures/tls_truncating_server.py on 127.0.0.1: an HTTPS server that answers every
/// request with a body delimited by the connection's end and then closes the TCP connection
/// without TLS close_notify, as a connection cut short looks. Stopped by its PID.
public final class TruncatingTLSServer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/tls_truncating_server.py").standardized.path

    public let port: UInt16
    private let process: ChildProcess

    public init(certificate: String, key: String, body: String, directory: String) throws {
        port = freePort()
        process = try ChildProcess(executable: NetworkLab.python!,
                                   arguments: [Self.script, "--port", "\(port)", "--cert", certificate, "--key", key, "--body", body],
                                   environment: ["PATH": "/usr/bin:/bin"], outputPath: "\(directory)/truncating-\(port).log")
        try waitUntilListening(port: port, process: process)
    }

    deinit { process.stop(grace: 2) }
}
