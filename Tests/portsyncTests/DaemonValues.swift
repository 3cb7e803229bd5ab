import Foundation
import HTTP
import TestSupport

/// A running portsync's own word as values, on the loopback port it serves `/metrics` and
/// `/healthz` on: what a test asserts instead of the wording of its log.
struct MetricsProbe {
    let port: UInt16

    init(port: UInt16 = freePort()) {
        self.port = port
    }

    /// What the daemon is given to serve on this probe's port.
    var environment: [String: String] { ["PORTSYNC_DAEMON_METRICS_LISTEN": "127.0.0.1:\(port)"] }

    /// Every sample by its series as printed (`portsync_applies_total{client="qbittorrent"}`);
    /// nil while nothing serves.
    func samples() -> [String: Double]? {
        guard let response = try? RawHTTP.request(port: port, "GET", "/metrics"), response.status == 200 else { return nil }
        var samples: [String: Double] = [:]
        for line in response.text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// One series' value now (0 for a counter not yet counted is the daemon's to print).
    func value(_ series: String) -> Double? { samples()?[series] }

    /// The sum of every series of the metric `name`, whatever its labels; nil when none is printed.
    func total(_ name: String) -> Double? {
        let series = (samples() ?? [:]).filter { $0.key == name || $0.key.hasPrefix(name + "{") }
        return series.isEmpty ? nil : series.values.reduce(0, +)
    }

    /// `/healthz`: its status code and body; nil while nothing serves.
    func health() -> (status: Int, body: JSONValue)? {
        guard let response = try? RawHTTP.request(port: port, "GET", "/healthz"),
              let body = try? JSONValue.parse(response.body) else { return nil }
        return (response.status, body)
    }

    /// Waits until the daemon serves: it has read its configuration and runs its loop.
    func waitUntilServing(seconds: Double = 10) -> Bool {
        TestSupport.waitFor(seconds: seconds) { health() != nil }
    }
}

/// The reasons of the changes the history holds, oldest first (none when it cannot be read).
func historyReasons(_ environment: [String: String]) -> [String] {
    ((try? listedChanges(environment)) ?? []).map(\.reason)
}

/// `portsync status --json` run with `environment` (its state file); `.null` when it answers
/// nothing parseable.
func statusJSON(_ environment: [String: String]) -> JSONValue {
    guard let (_, output) = try? Child.run(["status", "--json"], environment: environment) else { return .null }
    return (try? JSONValue.parse(Array(output.utf8))) ?? .null
}

/// What the state file says of the source `name` (`status --json`'s `sources`: its state, port,
/// problem and fix); with `pid`, only once that daemon wrote it (a restarted daemon's file
/// holds the last run's record until its first write).
func sourceRecord(_ environment: [String: String], _ name: String, writtenBy pid: Int32? = nil) -> JSONValue? {
    let status = statusJSON(environment)
    if let pid, status["pid"]?.integer != Int(pid) { return nil }
    return status["sources"]?[name]
}
