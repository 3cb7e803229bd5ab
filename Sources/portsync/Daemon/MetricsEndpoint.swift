import Coordination
import Domain
import HTTP
import Reactor
import Sinks
import Watchers

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
            if let connectability = snapshot.connectability {
                members["connectable"] = .string(connectability.verdict)
                if let why = connectability.why { members["connectable_why"] = .string(why) }
            }
            if !snapshot.isHealthy {
                var reason = snapshot.health.isOK ? "the lease of the port in use ran out" : snapshot.health.description
                // With no port yet, what the sources say of why (a refusal, a silent gateway).
                if snapshot.health == .waitingForPort {
                    let problems = snapshot.sources.compactMap { $0.status.state.problem?.message }
                    if !problems.isEmpty { reason += ": " + problems.joined(separator: "; ") }
                }
                members["reason"] = .string(reason)
            }
            var response = HTTPResponse(status: snapshot.isHealthy ? 200 : 503, reason: snapshot.isHealthy ? "OK" : "Service Unavailable",
                                        body: Array((JSONValue.object(members).serialized + "\n").utf8))
            response.headers.add("Content-Type", "application/json")
            return response
        default:
            return HTTPResponse(status: 404, reason: "Not Found", body: Array("try /metrics or /healthz\n".utf8))
        }
    }

    /// Prometheus text exposition format 0.0.4. Client counters carry a `client` label; their
    /// names are those of the single-qBittorrent days.
    static func metrics(_ snapshot: DaemonSnapshot) -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            guard !samples.isEmpty else { return }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            lines += samples.map { "\(name)\($0.labels) \($0.value)" }
        }
        func metric(_ name: String, _ type: String, _ help: String, _ value: Int?) {
            metric(name, type, help, value.map { [("", $0)] } ?? [])
        }
        func perClient(_ name: String, _ help: String, _ value: (SinkCounters) -> Int) {
            metric(name, "counter", help, snapshot.clients.map { ("{client=\"\($0.label)\"}", value($0.counters)) })
        }
        let version = CommandLineInterface.release
        metric("portsync_build_info", "gauge", "portsync's version.", [("{version=\"\(version)\"}", 1)])
        metric("portsync_port", "gauge", "The port the clients were last verified on (0: none).", Int(snapshot.port?.value ?? 0))
        metric("portsync_healthy", "gauge", "1 when the port is applied and the lease, if any, is fresh.", snapshot.isHealthy ? 1 : 0)
        metric("portsync_port_changes_total", "counter", "Changes of the desired port.", snapshot.portChanges)
        metric("portsync_changes_total", "counter", "Changes recorded in the history since the start, by reason (a repair too).",
               ChangeReason.allCases.map { ("{reason=\"\($0.rawValue)\"}", snapshot.changesByReason[$0, default: 0]) })
        metric("portsync_last_change_timestamp_seconds", "gauge", "When the port last changed (Unix time).", snapshot.lastChange.map(Int.init))
        metric("portsync_client_healthy", "gauge", "1 when the client is verified on the desired port.",
               snapshot.clients.map { ("{client=\"\($0.label)\"}", $0.health.isOK ? 1 : 0) })
        metric("portsync_client_port", "gauge", "The port the client was last verified on (0: none).",
               snapshot.clients.map { ("{client=\"\($0.label)\"}", Int($0.status.verifiedPort?.value ?? 0)) })
        perClient("portsync_applies_total", "Writes of the listening port to a client (for the hook: its runs).", \.applies)
        perClient("portsync_apply_failures_total", "Writes that the client's read-back did not confirm (for the hook: failed runs).", \.failedApplies)
        perClient("portsync_qbittorrent_requests_total", "HTTP requests sent to a client.", \.requests)
        perClient("portsync_qbittorrent_logins_total", "Successful logins to a client.", \.logins)
        perClient("portsync_qbittorrent_login_failures_total", "Refused logins to a client.", \.failedLogins)
        perClient("portsync_drift_repairs_total", "Times the client's port was changed behind portsync's back and set back.", \.driftRepairs)
        perClient("portsync_listener_repairs_total", "Times the client's listener was dead and it was made to re-open its sockets.", \.listenerRepairs)
        func perSource(_ name: String, _ type: String, _ help: String, _ value: (SourceStatus) -> Int?) {
            metric(name, type, help, snapshot.sources.compactMap { source, status in
                value(status).map { ("{source=\"\(source.rawValue)\"}", $0) }
            })
        }
        perSource("portsync_source_forwarding", "gauge", "1 when the source names a port.") { if case .forwarding = $0.state { 1 } else { 0 } }
        perSource("portsync_source_grants_total", "counter", "Leases the source's gateway granted or renewed.", \.grants)
        perSource("portsync_source_failures_total", "counter", "Cycles of the source that failed.", \.failures)
        metric("portsync_lease_seconds_left", "gauge", "Seconds left on the lease of the port in use, when its source leases it.",
               snapshot.leaseSecondsLeft)
        metric("portsync_link_up", "gauge", "1 when the VPN interface is usable.", snapshot.linkUp.map { $0 ? 1 : 0 })
        if let connectability = snapshot.connectability {
            metric("portsync_connectable", "gauge", "1 for the connectability verdict in force (connectable, not connectable, unknown).",
                   Connectability.Verdict.Kind.allCases.map { kind in
                       ("{verdict=\"\(String(kind.rawValue.map { $0 == " " ? "_" : $0 }))\"}", connectability.kind == kind ? 1 : 0)
                   })
            metric("portsync_connectability_since_timestamp_seconds", "gauge", "When the verdict and its evidence were last reached (Unix time).",
                   Int(connectability.checked))
        }
        metric("portsync_config_reloads_total", "counter", "Reloads (SIGHUP) by result: applied, unchanged, or rejected (the previous configuration kept).",
               ReloadCounts.Result.allCases.map { ("{result=\"\($0.rawValue)\"}", snapshot.reloads.counts[$0, default: 0]) })
        metric("portsync_config_last_reload_successful", "gauge", "0 when the last reload was rejected (the previous configuration is in force), else 1.",
               snapshot.reloads.lastWasRejected ? 0 : 1)
        if let notifications = snapshot.notifications {
            func perEvent(_ counts: [NotifyEvent.Kind: Int]) -> [(labels: String, value: Int)] {
                NotifyEvent.Kind.allCases.map { ("{event=\"\($0.rawValue)\"}", counts[$0, default: 0]) }
            }
            metric("portsync_notifications_sent_total", "counter", "Notifications delivered, by event.", perEvent(notifications.sent))
            metric("portsync_notifications_failed_total", "counter", "Notifications given up (every try failed, or refused for good), by event.",
                   perEvent(notifications.failed))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
