import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The Transmission session through its production shell against `FakeTransmission41`, the
/// stand-in that answers as Transmission 4.1.3's sources do (Debian ships 3.00, which
/// TransmissionEndToEndTests runs): loopback sockets, keep-alive, the 409 handshake.
@Suite(.serialized) final class TransmissionJSONRPCTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop

    init() throws {
        loop = try EventLoop(logger: log.logger)
    }

    func shell(_ fake: FakeTransmission41, checkInterval: Duration = .seconds(300)) -> ClientSink<TransmissionSession> {
        let settings = ClientSettings(url: fake.url, username: "portsync", password: Secret(value: "portsync-test-password", origin: "test"),
                                      checkInterval: checkInterval, retryInitial: .milliseconds(100), retryMax: .milliseconds(500),
                                      requestTimeout: .seconds(5))
        return ClientSink<TransmissionSession>(loop: loop, label: "transmission", settings: settings)
    }

    @Test func setsAndVerifiesThePortOverJSONRPCAndKeepsTheDialectAcrossARestart() throws {
        let fake = try FakeTransmission41(loop: loop, username: "portsync", password: "portsync-test-password")
        let shell = shell(fake, checkInterval: .milliseconds(300))
        shell.apply(Domain.Port(52001)!)
        #expect(try runUntil(loop, seconds: 10) { shell.session.status.health == .verified && shell.session.status.verifiedPort == Domain.Port(52001) })
        #expect(fake.rpc.peerPort == 52001)
        #expect(fake.rpc.conflicts == 1 && fake.rpc.legacyCalls == 0 && fake.rpc.jsonRPCCalls == 3)
        #expect(shell.counters.requests == 4, "the legacy probe (409), once more in JSON-RPC, session_set, the read-back")
        #expect(log.count("connected to Transmission 4.1.3 (838877323f) (rpc_version_semver 6.0.1, JSON-RPC 2.0)") == 1)
        #expect(log.count("Transmission: port 52001 applied and verified") == 1)

        // A restart of the daemon: a new session id; the next drift check's 409 keeps JSON-RPC.
        fake.rpc.restart()
        fake.server.dropAllConnections()
        #expect(try runUntil(loop, seconds: 10) { fake.rpc.conflicts == 2 && fake.rpc.jsonRPCCalls >= 6 && shell.session.status.health == .verified })
        #expect(fake.rpc.legacyCalls == 0)
        #expect(log.count("now speaks") == 0)
        #expect(!log.text.contains("portsync-test-password"))
    }
}
