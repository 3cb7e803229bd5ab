import Domain
import Reactor
import Sinks
import Watchers
import Testing
@testable import portsync

@Suite struct DaemonStateTests {
    private func parse(_ json: String) throws -> DaemonState { try DaemonState.parse(Array(json.utf8)) }

    @Test func aGoodStateLoadsBack() throws {
        let state = DaemonState(port: Port(51413), source: "natpmp", appliedAt: 1_700_000_000, health: .ok,
                                clientVersions: ["qbittorrent": "v5.0.1"],
                                sources: ["natpmp": SourceRecord(title: "NAT-PMP", detail: "gateway 10.2.0.1 (the default route's gateway)",
                                                                 kept: ["internal_port": "51413"])], pid: 4242, updatedAt: 1_700_000_001)
        #expect(try parse(state.json) == state)
    }

    /// A source's state, port, problem and public address are values in the state file (and so
    /// in `status --json`), taken from what it says now; how it was reached stands.
    @Test func aSourcesStandingIsKeptAsValues() throws {
        var status = SourceStatus()
        status.state = .forwarding(Port(47000)!)
        status.detail = "gateway 10.2.0.1 (the tunnel address with its last byte 1)"
        status.publicAddress = IPv4Address(198, 51, 100, 7)
        let forwarding = SourceRecord().updated(.natpmp, status)
        #expect(forwarding.state == "forwarding" && forwarding.port == Port(47000) && forwarding.problem == nil)
        #expect(forwarding.publicAddress == "198.51.100.7")

        status = SourceStatus()
        status.state = .failing(SourceProblem("the gateway 10.2.0.1 refused: not authorized (2)", fix: "use a P2P server"))
        let failing = forwarding.updated(.natpmp, status)
        #expect(failing.state == "failing" && failing.port == nil && failing.publicAddress == nil)
        #expect(failing.problem == SourceProblem("the gateway 10.2.0.1 refused: not authorized (2)", fix: "use a P2P server"))
        #expect(failing.detail == forwarding.detail, "how it was reached stands until it says otherwise")

        let state = DaemonState(health: .waitingForPort, sources: ["natpmp": failing, "file": forwarding], pid: 1, updatedAt: 2)
        #expect(try parse(state.json) == state)
        #expect(state.json.contains(#""problem":"the gateway 10.2.0.1 refused: not authorized (2)""#))
        #expect(state.json.contains(#""port":47000"#) && state.json.contains(#""state":"failing""#))
    }

    @Test func eachClientsVersionAndHealthLoadBack() throws {
        let state = DaemonState(port: Port(51413), health: .failing("transmission: unreachable"),
                                clientVersions: ["qbittorrent": "v4.5.2", "qbittorrent.tv": "v4.6.0"],
                                clientHealth: ["qbittorrent": "ok", "qbittorrent.tv": "ok", "transmission": "unreachable"], pid: 1, updatedAt: 2)
        #expect(try parse(state.json) == state)
        #expect(state.json.contains(#""transmission":{"health":"unreachable"}"#))
    }

    /// The overall health is the worst client's: a failure outranks a client still applying,
    /// and names the client when there are several.
    @Test func theOverallHealthIsTheWorstClients() {
        func status(_ health: SinkStatus.Health, _ port: UInt16? = nil) -> SinkStatus {
            var status = SinkStatus()
            status.health = health
            status.verifiedPort = port.flatMap(Port.init)
            return status
        }
        func assess(_ clients: [(String, SinkStatus)]) -> Health {
            Health.assess(desired: Port(6881), livePort: true, link: nil, tunnelDecides: false, clients: clients.map { ($0.0, $0.1, nil) })
        }
        #expect(assess([("qbittorrent", status(.verified, 6881)), ("deluge", status(.verified, 6881))]) == .ok)
        #expect(assess([("qbittorrent", status(.applying)), ("deluge", status(.unreachable("down")))]) == .failing("deluge: down"))
        #expect(assess([("qbittorrent", status(.verified, 6881)), ("deluge", status(.verified, 7000))]) == .applying(Port(6881)!))
        #expect(assess([("qbittorrent", status(.loginRefused("refused")))]) == .failing("refused"), "one client: no label")
        // A port held back until its burst settles: the clients, still verified on the last one,
        // are not on it yet.
        #expect(Health.assess(desired: Port(6882), heldBack: true, livePort: true, link: nil, tunnelDecides: false,
                              clients: [("qbittorrent", status(.verified, 6881), Port(6881))]) == .applying(Port(6882)!))
        #expect(Health.assess(desired: Port(6882), heldBack: true, livePort: true, link: nil, tunnelDecides: false,
                              clients: [("qbittorrent", status(.failing("down")), Port(6881))]) == .failing("down"), "a failure still comes first")
    }

    @Test func aStateFromBeforeSeveralClientsStillLoads() throws {
        let state = try parse(#"{"health":"VPN down: proton0 is down","qbittorrent_version":"v4.5.2","pid":1}"#)
        #expect(state.clientVersions == ["qbittorrent": "v4.5.2"])
        #expect(state.health == .vpnDown("proton0 is down") && state.health.description == "VPN down: proton0 is down")
    }

    @Test(arguments: [
        (#"{"health":"ok","pid":4294967296}"#, #""pid" is not a whole number in range: 4294967296"#),
        (#"{"health":"ok","pid":-2147483649}"#, #""pid" is not a whole number in range: -2147483649"#),
        (#"{"health":"ok","pid":1e300}"#, #""pid" is not a whole number in range: "#),
        (#"{"health":"ok","port":4294967296}"#, #""port" is not a whole number in range: 4294967296"#),
        (#"{"health":"ok","port":0}"#, "port 0 is out of range"),
        (#"{"health":"ok","natpmp_internal_port":70000}"#, #""natpmp_internal_port" is not a whole number in range: 70000"#),
        (#"{"health":"ok","updated_at":1.5}"#, #""updated_at" is not a whole number in range: 1.5"#),
        (#"{"health":"ok","applied_at":"yesterday"}"#, #""applied_at" is not a whole number in range: "yesterday""#),
    ])
    func anOutOfRangeNumberIsAnErrorNotATrap(json: String, message: String) {
        #expect { try parse(json) } throws: { error in "\(error)".hasPrefix(message) }
    }
}
