import Foundation
import HTTP
import Reactor
import TestSupport
import Testing

/// `portsync doctor` against `FakeTransmission41` (Transmission 4.1.3 as its sources answer),
/// served by the test's loop while the child runs: the second probe is JSON-RPC, as the 409 says.
@Suite(.serialized) final class Transmission41DoctorTests {
    let directory = TemporaryDirectory()

    @Test func doctorReadsTransmission41InJSONRPC() throws {
        let loop = try EventLoop(logger: LogCapture(level: .info).logger)
        let fake = try FakeTransmission41(loop: loop, username: "portsync", password: "portsync-test-password")
        directory.write("run/forwarded_port", "52001")
        directory.write("transmission-password", "portsync-test-password\n", mode: 0o600)
        directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(directory.path)/run/forwarded_port"
            [daemon]
            state_file = "\(directory.path)/state.json"
            [transmission]
            url = "\(fake.url)"
            username = "portsync"
            password_file = "\(directory.path)/transmission-password"

            """)
        let child = try Child(["doctor"], environment: ["PORTSYNC_CONFIG": "\(directory.path)/config.toml"])
        #expect(try runUntil(loop, seconds: 20) { !child.process.isRunning })
        let output = child.output
        #expect(output.contains("✓ version: Transmission 4.1.3 (838877323f) (rpc_version_semver 6.0.1, JSON-RPC 2.0)"), "\(output)")
        #expect(output.contains("✗ settings: peer-port 51413; port forwarding (UPnP/NAT-PMP) is on"), "\(output)")
        #expect(fake.rpc.conflicts == 1 && fake.rpc.jsonRPCCalls == 1 && fake.rpc.legacyCalls == 0)
        #expect(fake.rpc.peerPort == 51413, "doctor changes nothing")
        #expect(!output.contains("portsync-test-password"))
    }
}
