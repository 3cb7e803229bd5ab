import Foundation
import Glibc
import HTTP
import Reactor
import TestSupport
import Testing
@testable import portsync

/// The portsync binary against a real qbittorrent-nox, with the ProtonVPN file in a temporary
/// runtime directory: what a desktop user runs.
@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class DaemonTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance
    /// Where each test's daemon serves its metrics: what it did, as values.
    let probe = MetricsProbe()

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password + "\n")
    }

    var runtime: String { "\(directory.path)/run" }
    var portFile: String { "\(runtime)/Proton/VPN/forwarded_port" }
    var stateFile: String { "\(directory.path)/state/state.json" }

    func environment(password: String? = nil, _ extra: [String: String] = [:]) -> [String: String] {
        var variables = ["XDG_RUNTIME_DIR": runtime, "PORTSYNC_DAEMON_STATE_FILE": stateFile].merging(probe.environment) { $1 }
        if let password {
            directory.write("other-password", password)
            variables["PORTSYNC_QBITTORRENT_PASSWORD_FILE"] = "\(directory.path)/other-password"
        }
        variables.merge(extra) { $1 }
        return daemonEnvironment(qbittorrent, in: directory, variables)
    }

    /// Writes like the ProtonVPN app: truncate, write, close.
    func writePort(_ text: String, to path: String? = nil) {
        let target = path ?? portFile
        try? FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Polls qBittorrent (through its own API) until it listens on `port`.
    func qBittorrentReaches(_ port: UInt16, seconds: Double = 10) -> Bool {
        waitFor(seconds: seconds) { (try? qbittorrent.listenPort()) == Int(port) }
    }

    func daemon(_ extra: [String: String] = [:]) throws -> Child {
        let child = try Child(["run"], environment: environment(extra))
        #expect(probe.waitUntilServing(), "\(child.output)")
        return child
    }

    /// The reasons of the changes the history holds, oldest first.
    func reasons() -> [String] { historyReasons(environment()) }

    /// The last change the history holds.
    func lastChange() -> ListedChange? { (try? listedChanges(environment()))?.last }

    var qBittorrentApplies: Double? { probe.value(#"portsync_applies_total{client="qbittorrent"}"#) }
    var fileForwards: Double? { probe.value(#"portsync_source_forwarding{source="proton-file"}"#) }

    /// Gluetun's own "down" recipe (and some VPN apps' disconnect hooks) set qBittorrent's
    /// `listen_port` to 0 while the source has no port; when the source names the same port
    /// again, that is drift to repair at once, not at the next drift check (300 s here).
    @Test func listenPortZeroSetWhileTheSourceHadNoPortIsRepairedWhenItComesBack() throws {
        let port = freePort()
        writePort(String(port))
        let daemon = try daemon()
        #expect(qBittorrentReaches(port))
        writePort("")  // the VPN went down
        #expect(waitFor { self.reasons() == ["start", "source-emptied"] }, "\(reasons())")
        try qbittorrent.setPreferences(#"{"listen_port":0}"#)
        #expect(waitFor(seconds: 5) { (try? self.qbittorrent.listenPort()) == 0 })
        writePort(String(port))  // back up, the same port
        #expect(qBittorrentReaches(port, seconds: 5), "\(daemon.output)")
        #expect(waitFor { self.lastChange()?.clients["qbittorrent"] == "repaired" }, "\(String(describing: lastChange()))")
        #expect(lastChange()?.port == Int(port))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }

    @Test func runFollowsEveryWayTheFileIsWritten() throws {
        let ports = (0..<4).map { _ in freePort() }
        writePort(String(ports[0]))
        let daemon = try daemon()
        #expect(qBittorrentReaches(ports[0]))

        writePort(String(ports[1]))
        #expect(qBittorrentReaches(ports[1]), "truncate + write")

        writePort(String(ports[2]), to: "\(runtime)/Proton/VPN/.forwarded_port.tmp")
        rename("\(runtime)/Proton/VPN/.forwarded_port.tmp", portFile)
        #expect(qBittorrentReaches(ports[2]), "write a temporary file, rename it in")

        unlink(portFile)
        #expect(waitFor { self.reasons().last == "source-emptied" && self.fileForwards == 0 }, "\(reasons())")
        writePort(String(ports[3]))
        #expect(qBittorrentReaches(ports[3]), "deleted and recreated")
        #expect(waitFor { self.fileForwards == 1 })

        writePort("not-a-port")
        #expect(waitFor { self.fileForwards == 0 })
        // The one place a bad file is named: the daemon's message about it.
        #expect(daemon.output.contains("not a port number: \"not-a-port\"; keeping port \(ports[3])"), "\(daemon.output)")
        let emptied = reasons().filter { $0 == "source-emptied" }.count
        writePort("")
        #expect(waitFor { self.reasons().filter { $0 == "source-emptied" }.count == emptied + 1 }, "\(reasons())")
        #expect(try qbittorrent.listenPort() == Int(ports[3]), "garbage and empty never move the port")
        #expect(probe.value("portsync_port") == Double(ports[3]))

        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0, "SIGTERM: a clean exit within 1 s")
        #expect(!daemon.output.contains(QBittorrentInstance.password))
    }

    @Test func theDirectoryMayAppearAfterTheStart() throws {
        let daemon = try daemon()
        #expect(probe.health()?.status == 503 && probe.health()?.body["connectable_why"]?.string == "no-forwarded-port",
                "\(String(describing: probe.health()))")
        #expect(fileForwards == 0)
        let port = freePort()
        writePort(String(port))
        #expect(qBittorrentReaches(port))
        daemon.signal(SIGINT)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func aThousandRapidRewritesEndOnTheLastValueWithAFewApplies() throws {
        writePort(String(freePort()))
        let daemon = try daemon()
        #expect(waitFor { self.qBittorrentApplies == 1 })
        var last: UInt16 = 0
        for index in 0..<1000 {
            last = UInt16(20000 + index)
            writePort(String(last))
        }
        #expect(qBittorrentReaches(last, seconds: 15))
        #expect(waitFor { self.probe.value("portsync_port") == Double(last) && self.probe.health()?.status == 200 })
        let applies = Int(qBittorrentApplies ?? 0) - 1
        // A few: on a loaded machine the writer itself is paused now and then for longer than
        // the 25 ms burst window (bench/run, on a quiet machine, sees 2 for 10,000 rewrites; a
        // 2-core machine running other builds has shown 20). One apply per write would be 1000.
        #expect(applies >= 1 && applies <= 40, "a burst of 1000 writes took \(applies) applies")
        #expect(lastChange()?.port == Int(last), "the burst ends with one hand-off of its last value")
        #expect(try qbittorrent.listenPort() == Int(last))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func aRestartWithTheStateFileSendsNoSetPreferences() throws {
        let port = freePort()
        writePort(String(port))
        let first = try daemon()
        #expect(qBittorrentReaches(port))
        #expect(waitFor { self.qBittorrentApplies == 1 && self.probe.health()?.status == 200 })
        first.signal(SIGTERM)
        #expect(first.wait(seconds: 1) == 0)
        #expect(statusJSON(environment())["port"]?.integer == Int(port))

        let second = try daemon()
        #expect(waitFor { self.probe.health()?.status == 200 }, "\(second.output)")
        #expect(probe.value("portsync_port") == Double(port), "the port the state file kept")
        #expect(qBittorrentApplies == 0, "nothing is written to qBittorrent")
        #expect(reasons() == ["start"], "a restart on the same port is no change")
        second.signal(SIGTERM)
        #expect(second.wait(seconds: 1) == 0)
    }

    @Test func onceAnswersWithTheDocumentedExitCodes() throws {
        // No file at all: no source available here.
        var (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 3, "\(output)")
        #expect(output.contains("no source available: \(portFile) does not exist"))
        (status, _) = try Child.run(["once", "--strategy", "natpmp"], environment: environment())
        #expect(status == 3)

        writePort("")
        (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 1 && output.contains("no forwarded port right now"), "\(output)")
        writePort("garbage")
        (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 1 && output.contains("not a port number: \"garbage\""), "\(output)")

        let port = freePort()
        writePort(String(port))
        (status, output) = try Child.run(["once", "--json"], environment: environment())
        #expect(status == 0, "\(output)")
        let result = try JSONValue.parse(Array(output.utf8))
        #expect(result["port"]?.integer == Int(port))
        #expect(result["source"]?.string == "proton-file")
        #expect(result["applied"]?.bool == true && result["verified"]?.bool == true && result["changed"]?.bool == true)
        #expect(result["qbittorrent"]?.string == "v4.5.2")
        #expect(try qbittorrent.listenPort() == Int(port))

        (status, output) = try Child.run(["once"], environment: environment())
        #expect(status == 0)
        #expect(output == "qBittorrent v4.5.2 already listens on port \(port) (proton-file); nothing to change\n")

        (status, output) = try Child.run(["once"], environment: environment(password: "wrong-password"))
        #expect(status == 2, "wrong credentials are a configuration problem: \(output)")
        #expect(output.contains("rejected the username \"admin\" or its password"))
        #expect(qbittorrent.log.components(separatedBy: "WebAPI login failure").count - 1 == 1)

        (status, output) = try Child.run(["once"], environment: environment(["PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"]))
        #expect(status == 1 && output.contains("unreachable: connection refused"), "\(output)")

        (status, _) = try Child.run(["once", "--set", "natpmp.lease_seconds=0"], environment: environment())
        #expect(status == 2)
    }

    @Test func statusTellsTheStateInWordsAndJSON() throws {
        var (status, output) = try Child.run(["status"], environment: environment())
        #expect(status == 4 && output.contains("no state yet"))

        let port = freePort()
        writePort(String(port))
        #expect(try Child.run(["once"], environment: environment()).0 == 0)
        (status, output) = try Child.run(["status"], environment: environment())
        #expect(status == 3, "the state is once's: no daemon runs")
        #expect(output.contains("port \(port) from proton-file, applied "))
        #expect(output.contains("health: ok"))
        #expect(output.contains("daemon: not running"))

        let daemon = try daemon()
        var state = JSONValue.null
        #expect(waitFor(seconds: 10) {
            state = (try? JSONValue.parse(Array(Child.run(["status", "--json"], environment: environment()).1.utf8))) ?? .null
            return state["pid"]?.integer == Int(daemon.process.pid)
        })
        #expect(state["port"]?.integer == Int(port))
        #expect(state["health"]?.string == "ok")
        #expect(state["daemon_running"]?.bool == true)
        #expect(state["pid"]?.integer == Int(daemon.process.pid))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }

    @Test func metricsAndHealthAreServedByTheLoop() throws {
        let port = freePort()
        writePort(String(port))
        let metricsPort = probe.port
        let daemon = try daemon()
        #expect(qBittorrentReaches(port))
        #expect(waitFor { self.qBittorrentApplies == 1 })

        let metrics = try RawHTTP.request(port: metricsPort, "GET", "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        var values: [String: Double] = [:]
        for line in metrics.text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "one sample per line: \(line)")
            let name = parts[0].split(separator: "{").first.map(String.init) ?? ""
            #expect(name.allSatisfy { $0.isLowercase || $0 == "_" }, "\(line)")
            values[name] = Double(parts[1])
            #expect(values[name] != nil, "a number: \(line)")
        }
        #expect(metrics.text.contains("# TYPE portsync_applies_total counter"))
        #expect(values["portsync_port"] == Double(port))
        #expect(values["portsync_healthy"] == 1)
        #expect(values["portsync_applies_total"] == 1)
        #expect(values["portsync_qbittorrent_logins_total"] == 1)
        #expect(values["portsync_port_changes_total"] == 1)
        #expect(values["portsync_build_info"] == 1)

        let health = try RawHTTP.request(port: metricsPort, "GET", "/healthz")
        #expect(health.status == 200)
        let body = try JSONValue.parse(health.body)
        #expect(body["status"]?.string == "ok" && body["port"]?.integer == Int(port) && body["source"]?.string == "proton-file")
        #expect(try RawHTTP.request(port: metricsPort, "GET", "/nothing").status == 404)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)

        // qBittorrent unreachable: 503, with the reason.
        let broken = try Child(["run"], environment: environment(["PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"]))
        #expect(waitFor { self.probe.value(#"portsync_client_healthy{client="qbittorrent"}"#) == 0 && self.probe.health()?.status == 503 })
        #expect(probe.health()?.body["reason"]?.string?.contains("is unreachable: connection refused") == true)
        broken.signal(SIGTERM)
        #expect(broken.wait(seconds: 1) == 0)
    }

    @Test func doctorPassesAWorkingSetupAndSaysWhatToFixInABrokenOne() throws {
        let filePort = freePort()
        writePort(String(filePort))
        let file = ["PORTSYNC_SOURCE_STRATEGY": "file"]
        var (status, output) = try Child.run(["doctor"], environment: environment(file))
        #expect(status == 0, "\(output)")
        for check in ["✓ configuration:", "✓ port file: port \(filePort) from \(portFile)", "✓ qBittorrent: http://127.0.0.1:", "✓ login: logged in as \"admin\"",
                      "✓ version: qBittorrent v4.5.2", "✓ settings: listen_port", "all checks passed"] {
            #expect(output.contains(check), "\(check) in \(output)")
        }

        (status, output) = try Child.run(["doctor"], environment: environment(password: "wrong-password", file))
        #expect(status == 1)
        #expect(output.contains("✗ login: qBittorrent rejected \"admin\" and its password"))
        #expect(output.contains("→ fix the password"))
        #expect(qbittorrent.log.components(separatedBy: "WebAPI login failure").count - 1 == 1, "doctor tries once")

        (status, output) = try Child.run(["doctor"], environment: environment(["PORTSYNC_SOURCE_STRATEGY": "file",
                                                                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"]))
        #expect(status == 1 && output.contains("is unreachable: connection refused"), "\(output)")

        (status, output) = try Child.run(["doctor"], environment: environment(["PORTSYNC_SOURCE_STRATEGY": "file",
                                                                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(qbittorrent.torrentPort)"]))
        #expect(status == 1 && output.contains("is unreachable: port \(qbittorrent.torrentPort) is a BitTorrent port"), "\(output)")

        writePort("")
        (status, output) = try Child.run(["doctor", "--set", "qbittorrent.check_seconds=1"], environment: environment(file))
        #expect(status == 1 && output.contains("✗ configuration: --set qbittorrent.check_seconds: 1 is out of range"), "\(output)")
    }

    /// `sudo portsync doctor` checks with the secret the system unit hands the service (its
    /// `LoadCredential=`), says so, and when that file is missing says where the secret goes,
    /// never `password_file`, which the hardened service's own user cannot read.
    @Test func rootsDoctorUsesTheCredentialsTheSystemUnitHandsTheService() throws {
        guard getuid() == 0 else { return print("skipped: doctor reads the system unit only as root") }
        writePort(String(freePort()))
        let secret = "\(directory.path)/etc/qbittorrent-password"
        let shipped = try String(contentsOfFile: "\(UnitFileTests.root)/systemd/portsync-system.service", encoding: .utf8)
        #expect(shipped.contains("LoadCredential=qbittorrent-password:/etc/portsync/qbittorrent-password"))
        directory.write("units/portsync.service", shipped.replacingOccurrences(of: "/etc/portsync/qbittorrent-password", with: secret))
        let environment = ["XDG_RUNTIME_DIR": runtime, "PORTSYNC_DAEMON_STATE_FILE": stateFile, "PORTSYNC_SOURCE_STRATEGY": "file",
                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(qbittorrent.webUIPort)",
                           "SYSTEMD_UNIT_PATH": "\(directory.path)/units"]
        let unit = "\(directory.path)/units/portsync.service"

        var (status, output) = try Child.run(["doctor"], environment: environment)
        #expect(status == 1, "\(output)")
        #expect(output.contains("✗ credentials: \(unit) loads qbittorrent-password from \(secret), which does not exist"), "\(output)")
        #expect(output.contains("→ put the Web UI password in \(secret) (root's, chmod 600): \(unit) hands it to the service; leave password_file unset"), "\(output)")

        directory.write("etc/qbittorrent-password", QBittorrentInstance.password + "\n", mode: 0o600)
        (status, output) = try Child.run(["doctor"], environment: environment)
        #expect(status == 0, "\(output)")
        #expect(output.contains("✓ credentials: qbittorrent-password from \(secret), as \(unit) hands it to the service"), "\(output)")
        #expect(output.contains("✓ login: logged in as \"admin\" (password from file \(secret))"), "\(output)")
    }

    /// A service handed credentials by systemd runs as a user of its own: a password_file it
    /// cannot read says to hand the secret over with LoadCredential= instead. Run as nobody.
    @Test func anUnreadableSecretFileInAServiceSaysToUseLoadCredential() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            return print("skipped: needs root and setpriv to run portsync as another user")
        }
        let secret = directory.write("etc/secret", "hunter2\n", mode: 0o600)
        let credentials = "\(directory.path)/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        let output = "\(directory.path)/output"
        let child = try ChildProcess(executable: "/usr/bin/setpriv",
                                     arguments: ["--reuid=65534", "--regid=65534", "--clear-groups", portsyncBinary, "config"],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "CREDENTIALS_DIRECTORY": credentials,
                                                   "PORTSYNC_QBITTORRENT_PASSWORD_FILE": secret],
                                     outputPath: output)
        #expect(child.wait(seconds: 10) == 2)
        #expect(child.output.contains("cannot read secret file \(secret): open: Permission denied (errno 13); the service's own user (uid 65534) cannot read it: hand it over with LoadCredential= in the unit instead"), "\(child.output)")
        #expect(!child.output.contains("hunter2"))
    }

    /// A SIGTERM while a change is still on its way (qBittorrent does not answer) keeps the
    /// change in the history, with what the client did: it was not verified.
    @Test func aChangeNotYetVerifiedAtTheStopIsKeptInTheHistory() throws {
        let silent = try SilentListener()
        let port = freePort()
        writePort(String(port))
        let daemon = try daemon(["PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(silent.port)"])
        #expect(probe.health()?.body["reason"]?.string == Health.applying(Port(port)!).description, "\(String(describing: probe.health()))")
        #expect(reasons().isEmpty)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
        let changes = try listedChanges(environment())
        #expect(changes.map(\.description) == ["start none→\(port) [\"qbittorrent\": \"failed\"]"], "\(changes)")
        #expect(changes.first?.verifiedAfterMilliseconds == nil)
    }

    @Test func sighupSwitchesToANewSourceWithoutARestart() throws {
        let first = freePort(), second = freePort()
        writePort(String(first))
        writePort(String(second), to: "\(directory.path)/other/forwarded_port")
        let config = directory.write("config.toml", "[source]\nstrategy = \"file\"\n")
        let daemon = try Child(["run", "--config", config], environment: environment())
        #expect(qBittorrentReaches(first))
        directory.write("config.toml", "[source]\nstrategy = \"file\"\n[proton]\nport_file = \"other/forwarded_port\"\n")
        daemon.signal(SIGHUP)
        #expect(qBittorrentReaches(second), "\(daemon.output)")
        #expect(waitFor { self.reasons() == ["start", "reload"] }, "\(reasons())")
        #expect(probe.total("portsync_qbittorrent_logins_total") == 1, "the qBittorrent session was kept")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 1) == 0)
    }
}
