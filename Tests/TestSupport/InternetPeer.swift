import Foundation
import HTTP

/// A peer in a lab's "internet" namespace (Tests/Fixtures/peer.py) that dials an address there,
/// by default the gateway's public one, a new attempt every 5 ms until one completes its TCP
/// handshake (at most `within` seconds), then keeps that connection open for `hold` seconds.
/// Stopped with the lab, or by `stop()`, by its PID.
public final class InternetPeer {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/peer.py").standardized.path

    /// What the peer reported once it stopped trying.
    public struct Outcome: Sendable {
        /// When the handshake completed (Unix seconds), nil if none did.
        public let connected: Double?
        public let attempts: Int
        /// Why attempts failed: errno names and how many ("ECONNREFUSED": 3).
        public let failures: [String: Int]
    }

    private let process: ChildProcess

    /// `source`: an address of the internet namespace to dial from (`addInternet`'s by default).
    public init(lab: NetworkLab, to address: String = NetworkLab.publicAddress, port: UInt16, source: String? = nil,
                within: Double = 10, hold: Double = 60) throws {
        guard let internet = lab.internet else { throw ChildProcessError(message: "the lab has no internet namespace (addInternet)") }
        var arguments = [Self.script, "--to", address, "--port", "\(port)", "--within", "\(within)", "--hold", "\(hold)"]
        if let source { arguments += ["--source", source] }
        process = try lab.start(in: internet, NetworkLab.python!, arguments,
                                output: "\(lab.directory)/peer-\(port)-\(UInt32.random(in: 0...UInt32.max)).out")
    }

    /// The outcome, once the peer stopped trying; nil before.
    public var outcome: Outcome? {
        guard let line = process.output.split(separator: "\n").first(where: { $0.contains("\"attempts\"") }),
              let value = try? JSONValue.parse(Array(line.utf8)), let attempts = value["attempts"]?.integer else { return nil }
        var failures: [String: Int] = [:]
        if case .object(let members)? = value["failures"] {
            for (name, count) in members { failures[name] = count.integer ?? 0 }
        }
        var connected: Double?
        if case .number(let time)? = value["connected"] { connected = time }
        return Outcome(connected: connected, attempts: attempts, failures: failures)
    }

    /// Waits up to `seconds` for the outcome.
    public func waitForOutcome(seconds: Double = 15) -> Outcome? {
        var result: Outcome?
        _ = waitFor(seconds: seconds) {
            result = self.outcome
            return result != nil
        }
        return result
    }

    /// Closes its connection (the process ends).
    public func stop() {
        process.stop(grace: 1)
    }

    public var output: String { process.output }
}
