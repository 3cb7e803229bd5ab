import HTTP
import Reactor

/// What `/metrics` and `/healthz` report, taken from the daemon when asked.
struct DaemonSnapshot {
    var port: Port?
    var source: String?
    var health: String
    var qbittorrentVersion: String?
    var portChanges: Int
    var lastChange: Int64?
    var applies: Int
    var applyFailures: Int
    var logins: Int
    var loginFailures: Int
    var qbittorrentRequests: Int
    var natpmpRenewals: Int?
    var natpmpFailures: Int?
    var linkUp: Bool?
    /// Seconds left on the NAT-PMP lease of the port in use, when it comes from NAT-PMP.
    var leaseSecondsLeft: Int?

    var isHealthy: Bool { health == "ok" && (leaseSecondsLeft.map { $0 > 0 } ?? true) }
}

/// The optional metrics and health endpoint (`daemon.metrics_listen`, loopback by default),
/// served by the daemon's own loop.
enum MetricsEndpoint {
    static func respond(to request: HTTPServer.Request, _ snapshot: DaemonSnapshot) -> HTTPResponse {
        switch request.path {
        case "/metrics":
            var response = HTTPResponse(status: 200, reason: "OK", body: Array(metrics(snapshot).utf8))
            response.headers.add("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            return response
        case "/healthz", "/health":
            var members: [String: JSONValue] = ["status": .string(snapshot.isHealthy ? "ok" : "unhealthy")]
            if let port = snapshot.port { members["port"] = .number(Double(port.value)) }
            if let source = snapshot.source { members["source"] = .string(source) }
            if let left = snapshot.leaseSecondsLeft { members["lease_seconds_left"] = .number(Double(left)) }
            if !snapshot.isHealthy {
                members["reason"] = .string(snapshot.health == "ok" ? "the NAT-PMP lease ran out" : snapshot.health)
            }
            var response = HTTPResponse(status: snapshot.isHealthy ? 200 : 503, reason: snapshot.isHealthy ? "OK" : "Service Unavailable",
                                        body: Array((JSONValue.object(members).serialized + "\n").utf8))
            response.headers.add("Content-Type", "application/json")
            return response
        default:
            return HTTPResponse(status: 404, reason: "Not Found", body: Array("try /metrics or /healthz\n".utf8))
        }
    }

    /// Prometheus text exposition format 0.0.4.
    static func metrics(_ snapshot: DaemonSnapshot) -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int?, labels: String = "") {
            guard let value else { return }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines.append("\(name)\(labels) \(value)")
        }
        let version = CommandLineInterface.version.split(separator: " ").last.map(String.init) ?? "unknown"
        metric("portsync_build_info", "gauge", "portsync's version.", 1, labels: "{version=\"\(version)\"}")
        metric("portsync_port", "gauge", "The port qBittorrent was last verified on (0: none).", Int(snapshot.port?.value ?? 0))
        metric("portsync_healthy", "gauge", "1 when the port is applied and the lease, if any, is fresh.", snapshot.isHealthy ? 1 : 0)
        metric("portsync_port_changes_total", "counter", "Changes of the desired port.", snapshot.portChanges)
        metric("portsync_last_change_timestamp_seconds", "gauge", "When the port last changed (Unix time).", snapshot.lastChange.map(Int.init))
        metric("portsync_applies_total", "counter", "Writes of listen_port to qBittorrent.", snapshot.applies)
        metric("portsync_apply_failures_total", "counter", "Writes that qBittorrent's read-back did not confirm.", snapshot.applyFailures)
        metric("portsync_qbittorrent_requests_total", "counter", "HTTP requests sent to qBittorrent.", snapshot.qbittorrentRequests)
        metric("portsync_qbittorrent_logins_total", "counter", "Successful logins to qBittorrent.", snapshot.logins)
        metric("portsync_qbittorrent_login_failures_total", "counter", "Refused logins to qBittorrent.", snapshot.loginFailures)
        metric("portsync_natpmp_renewals_total", "counter", "NAT-PMP mappings granted or renewed.", snapshot.natpmpRenewals)
        metric("portsync_natpmp_failures_total", "counter", "NAT-PMP cycles that failed.", snapshot.natpmpFailures)
        metric("portsync_natpmp_lease_seconds_left", "gauge", "Seconds left on the NAT-PMP lease.", snapshot.leaseSecondsLeft)
        metric("portsync_link_up", "gauge", "1 when the VPN interface is usable.", snapshot.linkUp.map { $0 ? 1 : 0 })
        return lines.joined(separator: "\n") + "\n"
    }
}
