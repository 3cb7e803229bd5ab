import Domain
import Reactor
import Testing
import Watchers
@testable import portsync

/// What the sources say of themselves reaches the state file and `/metrics` with a `source`
/// label, whichever sources they are.
@Suite struct SourceMetricsTests {
    @Test func eachSourcesStateLeasesAndFailuresAreCountedByName() {
        var natpmp = SourceStatus()
        natpmp.state = .forwarding(Port(40000)!)
        natpmp.grants = 3
        natpmp.failures = 1
        var file = SourceStatus()
        file.state = .failing(SourceProblem("no forwarded port right now", fix: "connect"))
        let snapshot = DaemonSnapshot(port: Port(40000), source: "natpmp", health: .ok, clients: [], portChanges: 1, lastChange: nil,
                                      sources: [(.protonFile, file), (.natpmp, natpmp)], linkUp: true, leaseSecondsLeft: 41)
        let metrics = MetricsEndpoint.metrics(snapshot)
        for line in ["portsync_source_forwarding{source=\"proton-file\"} 0", "portsync_source_forwarding{source=\"natpmp\"} 1",
                     "portsync_source_grants_total{source=\"natpmp\"} 3", "portsync_source_failures_total{source=\"natpmp\"} 1",
                     "portsync_lease_seconds_left 41"] {
            #expect(metrics.contains("\n\(line)\n"), "\(line) in \(metrics)")
        }
        #expect(!metrics.contains("grants_total{source=\"proton-file\"}"), "a file has no leases to count")
    }

    /// A state file written before sources were alike: NAT-PMP's own keys become its record, so a
    /// restart after the upgrade keeps the mapping's internal port.
    @Test func anOldStateFilesNATPMPKeysAreTheSourcesRecord() throws {
        let state = try DaemonState.parse(Array(#"""
            {"health":"ok","port":40000,"natpmp_internal_port":51413,"natpmp_gateway":"10.2.0.1","natpmp_gateway_rule":"the tunnel address with its last byte 1","pid":1,"updated_at":2}
            """#.utf8))
        #expect(state.sources == ["natpmp": SourceRecord(title: "NAT-PMP", detail: "gateway 10.2.0.1 (the tunnel address with its last byte 1)",
                                                         kept: ["internal_port": "51413"])])
        #expect(state.memory(for: .natpmp) == SourceMemory(port: Port(40000), kept: ["internal_port": "51413"]))
        #expect(state.memory(for: .protonFile) == SourceMemory(port: Port(40000)))
    }
}
