import Reactor
import Testing
@testable import portsync

@Suite struct DaemonStateTests {
    private func parse(_ json: String) throws -> DaemonState { try DaemonState.parse(Array(json.utf8)) }

    @Test func aGoodStateLoadsBack() throws {
        let state = DaemonState(port: Port(51413), source: "natpmp", appliedAt: 1_700_000_000, health: .ok,
                                clientVersions: ["qbittorrent": "v5.0.1"], natpmpInternalPort: 51413, pid: 4242, updatedAt: 1_700_000_001)
        #expect(try parse(state.json) == state)
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
