import Domain
import Foundation
import Glibc
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The daemon in the test's own loop, against a real qbittorrent-nox: what it did is counted
/// exactly, and the test waits for events, not for seconds.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class InProcessDaemonTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance
    let log = LogCapture(level: .info)

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    var portFile: String { "\(directory.path)/run/forwarded_port" }

    func writePort(_ port: UInt16) {
        let fd = open(portFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = String(port).withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    func startDaemon(on loop: EventLoop) throws -> Daemon {
        let configuration = loader(environment: daemonEnvironment(qbittorrent, in: directory, [
            "PORTSYNC_SOURCE_STRATEGY": "file", "PORTSYNC_PROTON_PORT_FILE": portFile,
        ]))
        let daemon = Daemon(loop: loop, loader: configuration, loaded: try configuration.load(), environment: [:])
        try daemon.start()
        return daemon
    }

    /// The latency path: inotify → read → compare → setPreferences → read-back, with no fsync in
    /// between. The state file is written once per change, after the read-back verified it.
    @Test func eachChangeIsWrittenToTheStateFileOnceAfterTheReadBack() throws {
        directory.write("run/forwarded_port", "")
        let ports = (0..<4).map { _ in freePort() }
        writePort(ports[0])
        let loop = try EventLoop(logger: log.logger)
        let daemon = try startDaemon(on: loop)
        defer { daemon.stop() }
        #expect(try runUntil(loop, seconds: 10) { daemon.recorder.state?.port == Port(ports[0]) }, "\(log.text)")
        for port in ports.dropFirst() {
            // Counted from the moment the daemon learns of the change (what the last change still
            // brings, qBittorrent's word on its connection, may be written before that).
            var writesAtChange: Int?
            var writesBeforeVerified: Int?
            let observed = daemon.sources.onObservation
            daemon.sources.onObservation = { [unowned daemon] observation in
                if observation.port == Port(port) && writesAtChange == nil { writesAtChange = daemon.recorder.writes }
                observed(observation)
            }
            let verified = daemon.sinks.sinks[0].sink
            verified.onStatusChange = { [unowned daemon] status in
                // The first verification (the same port is verified again when qBittorrent's word
                // on its connection comes in).
                if status.health == .verified && status.verifiedPort == Port(port) && writesBeforeVerified == nil {
                    writesBeforeVerified = daemon.recorder.writes
                }
                daemon.sinks.onStatusChange(status)
            }
            writePort(port)
            #expect(try runUntil(loop, seconds: 10) { daemon.recorder.state?.port == Port(port) }, "\(log.text)")
            #expect(writesAtChange != nil)
            #expect(writesBeforeVerified == writesAtChange, "nothing written between the change and the read-back")
            daemon.sources.onObservation = observed
            // The change's own write, with the verdict the verified port brought (what qBittorrent
            // says of its connection afterwards may be written apart, never before the read-back).
            #expect(daemon.recorder.state?.connectable?.evidence.first?.text.contains("port \(port)") == true, "\(String(describing: daemon.recorder.state?.connectable))")
        }
        #expect(log.count("applied and verified") == 4)
        #expect(try qbittorrent.listenPort() == Int(ports[3]))
    }
}
