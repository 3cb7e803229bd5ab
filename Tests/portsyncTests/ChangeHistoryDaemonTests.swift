import Domain
import Foundation
import Glibc
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The change history, made by the daemon in the test's own loop against a real qbittorrent-nox
/// with the ProtonVPN file as its source, read back by `portsync history` as a user would: each
/// reason a file and a client can give, in order, across a reload and a restart.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class ChangeHistoryDaemonTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance
    let log = LogCapture(level: .info)

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    var environment: [String: String] { daemonEnvironment(qbittorrent, in: directory, [:]) }

    func writeConfiguration(portFile: String) {
        directory.write("config.toml", """
            [source]
            strategy = "file"
            [proton]
            port_file = "\(directory.path)/\(portFile)"
            """)
    }

    func write(_ text: String, to file: String = "run/forwarded_port") {
        let fd = open("\(directory.path)/\(file)", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        close(fd)
    }

    func startDaemon(on loop: EventLoop) throws -> Daemon {
        let configuration = loader(file: "\(directory.path)/config.toml", environment: environment)
        let daemon = Daemon(loop: loop, loader: configuration, loaded: try configuration.load(), environment: [:])
        try daemon.start()
        return daemon
    }

    /// The history as `portsync history --json` lists it, once it has `count` changes.
    func changes(_ loop: EventLoop, _ daemon: Daemon, count: Int) throws -> [ListedChange] {
        #expect(try runUntil(loop, seconds: 10) { daemon.history.changes == count }, "\(log.text)")
        return try listedChanges(environment)
    }

    @Test func eachReasonAFileAndAClientGiveIsListedInOrder() throws {
        writeConfiguration(portFile: "run/forwarded_port")
        directory.write("run/forwarded_port", "")
        let ports = (0..<5).map { _ in Int(freePort()) }
        write("\(ports[0])")
        let loop = try EventLoop(logger: log.logger)
        var daemon = try startDaemon(on: loop)
        var listed = try changes(loop, daemon, count: 1)
        #expect(listed.map(\.description) == ["start none→\(ports[0]) [\"qbittorrent\": \"set\"]"])

        // Three new ports within minutes: the third is a rapid rotation, whatever the file says.
        for port in ports[1...3] {
            write("\(port)")
            #expect(try runUntil(loop, seconds: 10) { daemon.sinks.verifiedPort == Port(port) }, "\(log.text)")
        }
        listed = try changes(loop, daemon, count: 4)
        #expect(listed.dropFirst().map(\.reason) == ["source-changed", "source-changed", "rapid-rotation"], "\(listed)")
        #expect(listed.dropFirst().map(\.previous) == ports[0...2].map { Optional($0) }, "\(listed)")

        write("")
        listed = try changes(loop, daemon, count: 5)
        #expect(listed.last?.description == "source-emptied \(ports[3])→none [\"qbittorrent\": \"kept\"]")
        #expect(try qbittorrent.listenPort() == ports[3], "emptied is no port: qBittorrent keeps it")

        // Someone moves qBittorrent's port; the next look (here: the tunnel is back) sets it back.
        try qbittorrent.setPreferences(#"{"listen_port":\#(ports[4])}"#)
        daemon.sinks.interfacesChanged()
        listed = try changes(loop, daemon, count: 6)
        #expect(listed.last?.description == "client-drifted \(ports[3])→\(ports[3]) [\"qbittorrent\": \"repaired\"]")
        #expect(try qbittorrent.listenPort() == ports[3])

        // A reload onto another file with another port.
        directory.write("run/other_port", "\(ports[4])")
        writeConfiguration(portFile: "run/other_port")
        daemon.reload()
        listed = try changes(loop, daemon, count: 7)
        #expect(listed.last?.description == "reload \(ports[3])→\(ports[4]) [\"qbittorrent\": \"set\"]")
        #expect(daemon.snapshot().statusLine.hasSuffix("(reload)"), "STATUS= names the last reason: \(daemon.snapshot().statusLine)")
        let metrics = MetricsEndpoint.metrics(daemon.snapshot())
        for (reason, count) in [("start", 1), ("source-changed", 2), ("rapid-rotation", 1), ("source-emptied", 1),
                                ("client-drifted", 1), ("reload", 1), ("lease-lapsed", 0)] {
            #expect(metrics.contains("portsync_changes_total{reason=\"\(reason)\"} \(count)\n"), "\(reason): \(metrics)")
        }

        // A restart on the same port is no change; the history is read back and goes on.
        daemon.stop()
        daemon = try startDaemon(on: loop)
        defer { daemon.stop() }
        #expect(try runUntil(loop, seconds: 10) { daemon.sinks.verifiedPort == Port(ports[4]) }, "\(log.text)")
        #expect(daemon.history.changes == 7 && daemon.history.last?.reason == .reload)
        let (status, text) = try Child.run(["history"], environment: environment)
        #expect(status == 0)
        let lines = text.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("20") && $0.contains(" → ") }.count == 7, "one line per change: \(text)")
        let explained = lines.compactMap { ChangeReason(rawValue: String($0.prefix { $0 != ":" })) }
        #expect(explained == [.started, .sourceChanged, .rapidRotation, .sourceEmptied, .clientDrifted, .reload], "each reason seen, once: \(text)")
        #expect(lines.contains("rapid-rotation: \(ChangeReason.rapidRotation.explanation)"), "\(text)")
    }

    @Test func withNoHistoryYetHistorySaysSoAndExitsFour() throws {
        let (status, output) = try Child.run(["history"], environment: environment)
        #expect(status == 4 && output.contains("no history yet"), "\(output)")
        directory.write("history.jsonl", "{\"time\":1,\"source\":\"natpmp\",\"reason\":\"start\",\"port\":40000}\nnot a record\n")
        let (listed, text) = try Child.run(["history"], environment: environment)
        #expect(listed == 0 && text.contains("line(s) 2 are not change records"), "a line cut short is said and left out: \(text)")
        #expect(try listedChanges(environment).map(\.description) == ["start none→40000 [:]"])
    }
}
