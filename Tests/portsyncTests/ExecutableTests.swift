import Foundation
import HTTP
import Reactor
import Testing
import TestSupport
@testable import portsync

/// The real binary, as a user runs it.
@Suite struct ExecutableTests {
    @Test func badUsageAndBadValuesExitTwoWithOneLine() throws {
        for arguments in [["run", "--bogus"], ["run", "--gateway", "300.1.1.1"], ["frobnicate"], ["run", "--set", "natpmp.renew_seconds=90"],
                          ["run", "--interface", "wg0\nforged line"], ["run", "--qbittorrent-url", "http://h/\r\nX: 1"]] {
            let (status, output) = try Child.run(arguments)
            #expect(status == 2, "\(arguments)")
            #expect(output.hasPrefix("portsync: ") && output.filter { $0 == "\n" }.count == 1, "\(output)")
        }
    }

    @Test func aLineBreakInASecretVariableExitsTwoWithoutShowingIt() throws {
        for variable in ["PORTSYNC_QBITTORRENT_API_KEY", "PORTSYNC_GLUETUN_API_KEY"] {
            let (status, output) = try Child.run(["run"], environment: [variable: "hunter2\r\n\r\nX-Injected: 1"])
            #expect(status == 2)
            #expect(output == "portsync: \(variable): holds more than one line\n")
        }
    }

    @Test func aSecretVariableMadeBadBeforeSIGHUPKeepsTheOldConfiguration() throws {
        let directory = TemporaryDirectory()
        let keyFile = directory.write("key", "hunter2\n")
        let file = directory.write("config.toml", "[daemon]\nlog_level = \"info\"\n[qbittorrent]\napi_key_file = \"\(keyFile)\"\n")
        let child = try Child(["run", "--config", file])
        #expect(child.waitForOutput(containing: "running").contains("running"))
        directory.write("key", "hunter2\r\nX-Injected: 1\n")
        child.signal(SIGHUP)
        let complaint = child.waitForOutput(containing: "keeping the previous configuration")
        #expect(complaint.contains("\(file):4: secret file \(keyFile) holds more than one line; keeping the previous configuration"))
        #expect(!child.output.contains("hunter2"))
        child.signal(SIGTERM)
        #expect(child.wait(seconds: 5) == 0)
    }

    @Test func anOutOfRangePidInTheStateFileIsOneLineNotACrash() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("state.json", #"{"health":"ok","pid":4294967296,"port":51413,"updated_at":0}"#)
        let environment = ["PORTSYNC_DAEMON_STATE_FILE": file]
        let (status, output) = try Child.run(["status"], environment: environment)
        #expect(status == 4)
        #expect(output == "portsync: state file \(file): \"pid\" is not a whole number in range: 4294967296\n")

        let daemon = try Child(["run"], environment: environment)
        #expect(daemon.waitForOutput(containing: "running").contains("state file \(file): \"pid\" is not a whole number in range: 4294967296; starting without it"))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
    }

    /// `status` answers like LSB's: 0 running and healthy, 1 running and unhealthy, 3 not
    /// running (a daemon killed while its last state said ok, reaped or still a zombie), 4 no state.
    @Test func statusExitCodesSayWhetherTheDaemonRuns() throws {
        let directory = TemporaryDirectory()
        let stateFile = "\(directory.path)/state.json"
        let environment = ["PORTSYNC_DAEMON_STATE_FILE": stateFile]
        func status(_ arguments: [String] = []) throws -> (Int32?, String) { try Child.run(["status"] + arguments, environment: environment) }
        func writeState(pid: pid_t, health: String) {
            directory.write("state.json", #"{"health":"\#(health)","pid":\#(pid),"port":51413,"source":"proton-file","updated_at":0}"#)
        }

        var (code, output) = try status()
        #expect(code == 4 && output.contains("no state yet"), "\(output)")
        #expect(try status(["--json"]).0 == 4)

        // The daemon writes its own state elsewhere: this test writes the one `status` reads.
        let daemon = try Child(["run"], environment: ["PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/daemon/state.json"])
        #expect(daemon.waitForOutput(containing: "running (pid").contains("running (pid"))
        let pid = daemon.process.pid
        writeState(pid: pid, health: "ok")
        (code, output) = try status()
        #expect(code == 0, "\(output)")
        #expect(output.contains("health: ok\n") && output.contains("daemon: running (pid \(pid))"), "\(output)")
        writeState(pid: pid, health: "qBittorrent is unreachable")
        #expect(try status().0 == 1)
        #expect(try status(["--json"]).0 == 1)

        // Killed, not yet reaped: a zombie still answers kill(pid, 0).
        writeState(pid: pid, health: "ok")
        daemon.signal(SIGKILL)
        #expect(waitFor(seconds: 10) {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: ")").last?.hasPrefix(" Z") == true
        })
        (code, output) = try status()
        #expect(code == 3, "\(output)")
        #expect(output.contains("last health: ok\n") && output.contains("daemon: not running (last pid \(pid))"), "\(output)")
        #expect(daemon.wait(seconds: 5) == 128 + SIGKILL, "reaped")
        (code, output) = try status()
        #expect(code == 3 && output.contains("daemon: not running (last pid \(pid))"), "\(output)")
        (code, output) = try status(["--json"])
        #expect(code == 3)
        #expect(try JSONValue.parse(Array(output.utf8))["daemon_running"]?.bool == false)

        // A live process that is not portsync (this test) does not count.
        writeState(pid: getpid(), health: "ok")
        #expect(try status().0 == 3)

        directory.write("state.json", "{not json")
        #expect(try status().0 == 4)
        #expect(try status(["--help"]).1.contains("Exit codes: 0 running and healthy, 1 running and unhealthy, 3 not running, 4 no state"))
    }

    /// One daemon per state file: a second `run` is refused naming the first's pid, `once`
    /// beside it is refused too, and `status` still shows the daemon that runs.
    @Test func aSecondDaemonAndAOnceBesideTheDaemonAreRefusedAndStatusStaysTrue() throws {
        let directory = TemporaryDirectory()
        directory.write("run/forwarded_port", "51413")
        let environment = ["PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json", "PORTSYNC_SOURCE_STRATEGY": "file",
                           "PORTSYNC_PROTON_PORT_FILE": "\(directory.path)/run/forwarded_port",
                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"]
        let first = try Child(["run"], environment: environment)
        _ = first.waitForOutput(containing: "running (pid")
        #expect(waitFor(seconds: 10) { FileManager.default.fileExists(atPath: "\(directory.path)/state.json") })
        let pid = first.process.pid

        let second = try Child(["run"], environment: environment)
        #expect(second.wait(seconds: 10) == 2)
        #expect(second.output.contains("another portsync (pid \(pid)) already runs on the state file \(directory.path)/state.json"), "\(second.output)")

        let (onceStatus, once) = try Child.run(["once"], environment: environment)
        #expect(onceStatus == 2 && once.contains("portsync run (pid \(pid)) keeps the port for the state file \(directory.path)/state.json: once would fight it"), "\(once)")

        let (statusCode, status) = try Child.run(["status"], environment: environment)
        #expect(status.contains("daemon: running (pid \(pid))") && statusCode == 1, "running, unhealthy (no qBittorrent): \(status)")

        first.signal(SIGTERM)
        #expect(first.wait(seconds: 5) == 0)
        let third = try Child(["run"], environment: environment)
        #expect(third.waitForOutput(containing: "running (pid").contains("running (pid"), "the lock went with the first daemon")
        third.signal(SIGTERM)
        #expect(third.wait(seconds: 5) == 0)
    }

    @Test func rootsStatusFindsTheSystemServicesState() {
        let directory = TemporaryDirectory()
        let service = directory.write("var-lib-portsync/state.json", "{}")
        var configuration = Configuration.defaults(environment: ["HOME": "\(directory.path)/home"], userID: 0)
        #expect(StatusCommand.stateFile(configuration, userID: 0, systemService: service) == (path: service, isSystemService: true))
        #expect(StatusCommand.stateFile(configuration, userID: 1000, systemService: service).isSystemService == false, "a user's is its own")
        configuration.origins["daemon.state_file"] = "--state-file"
        #expect(StatusCommand.stateFile(configuration, userID: 0, systemService: service).isSystemService == false, "a state file chosen on purpose")
        configuration.origins = [:]
        configuration.daemon.stateFile = directory.write("own/state.json", "{}")
        #expect(StatusCommand.stateFile(configuration, userID: 0, systemService: service).isSystemService == false, "root's own state first")
    }

    /// A state directory others may write to (no sticky bit) is said at start; a sticky one,
    /// as /tmp is, is not: others cannot replace a file there.
    @Test func aStateDirectoryOthersCanWriteIsWarnedAbout() throws {
        let directory = TemporaryDirectory()
        for (mode, warned) in [(mode_t(0o777), true), (0o770, true), (0o1777, false), (0o700, false)] {
            let state = "\(directory.path)/state-\(String(mode, radix: 8))"
            #expect(mkdir(state, 0o700) == 0 && chmod(state, mode) == 0)
            let daemon = try Child(["run"], environment: ["PORTSYNC_DAEMON_STATE_FILE": "\(state)/state.json",
                                                          "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"])
            let output = daemon.waitForOutput(containing: "running (pid")
            let who = mode & 0o002 != 0 ? "every user" : "its group"
            #expect(output.contains("state directory \(state) can be written by \(who) (mode \(String(mode, radix: 8))): another user could replace the state file; chmod 700 it") == warned, "\(output)")
            daemon.signal(SIGTERM)
            #expect(daemon.wait(seconds: 5) == 0)
        }
    }

    @Test func aStateFileThatCannotBeReplacedIsOneLineAndTheDaemonRuns() throws {
        let directory = TemporaryDirectory()
        directory.write("state.json/inside", "")  // state.json is a directory, and not empty
        let daemon = try Child(["run"], environment: ["PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json",
                                                      "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"])
        let output = daemon.waitForOutput(containing: "cannot write the state file")
        #expect(output.contains("cannot write the state file: rename \(directory.path)/state.json.tmp."))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
        // Listed once the daemon has stopped: a later attempt (the tunnel's state, a moment
        // after) may still be between its open and its unlink while the daemon runs.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["state.json", "state.json.lock"], "no temporary file left, the lock kept")
    }

    @Test func aFIFOAsThePortFileIsRefusedWithoutBlocking() throws {
        let directory = TemporaryDirectory()
        let fifo = "\(directory.path)/forwarded_port"
        #expect(mkfifo(fifo, 0o600) == 0)
        let environment = ["PORTSYNC_PROTON_PORT_FILE": fifo, "PORTSYNC_SOURCE_STRATEGY": "file",
                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())"]
        let (status, output) = try Child.run(["once"], environment: environment)
        #expect(status == 1)
        #expect(output.hasSuffix("\nportsync: \(fifo) is a FIFO, not a regular file; point the setting at the file the VPN writes\n"), "\(output)")
        let (_, doctor) = try Child.run(["doctor"], environment: environment)
        #expect(doctor.contains("port file: \(fifo) is a FIFO, not a regular file"))

        let daemon = try Child(["run"], environment: environment)
        #expect(daemon.waitForOutput(containing: "FIFO").contains("\(fifo) is a FIFO, not a regular file; keeping port (none)"))
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0, "the loop still handles signals")
    }

    @Test func outOfDescriptorsTheMetricsServerPausesInsteadOfSpinning() throws {
        let directory = TemporaryDirectory()
        let metricsPort = freePort()
        let environment = ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home", "XDG_RUNTIME_DIR": "/run/user/1000",
                           "PORTSYNC_DAEMON_METRICS_LISTEN": "127.0.0.1:\(metricsPort)",
                           "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(freePort())",
                           "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json"].merging(testDefaults) { $1 }
        // Few descriptors (and none inherited from the test runner): the metrics server runs out
        // long before its 64 connections.
        let script = #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; ulimit -n 24 && exec "$0" run"#
        let daemon = try ChildProcess(executable: "/bin/bash", arguments: ["-c", script, portsyncBinary],
                                      environment: environment, outputPath: "\(directory.path)/output")
        defer { daemon.stop(grace: 2) }
        #expect(daemon.waitForOutput(containing: "metrics and health on").contains("/healthz"))
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for _ in 0..<40 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = SocketAddress.v4(IPv4Address(127, 0, 0, 1), port: metricsPort).withSockAddr { connect(fd, $0, $1) }
            clients.append(fd)
        }
        let complaint = daemon.waitForOutput(containing: "not accepting connections")
        func cpuTicks() -> Int {
            let stat = (try? String(contentsOfFile: "/proc/\(daemon.pid)/stat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            return fields.count > 12 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
        }
        let before = cpuTicks()
        usleep(1_000_000)
        let spent = cpuTicks() - before
        #expect(spent < 20, "\(spent) ticks of CPU in one second: the listener must not spin")
        #expect(complaint.contains("accept: Too many open files (errno 24); not accepting connections for 1 s"))
        #expect(daemon.output.components(separatedBy: "not accepting connections").count == 2, "said once")

        clients.forEach { close($0) }
        clients.removeAll()
        #expect(waitFor(seconds: 10) { (try? RawHTTP.request(port: metricsPort, "GET", "/healthz")) != nil }, "it serves again")
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 5) == 0)
    }

    @Test func aBadConfigFileExitsTwoNamingTheLine() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "[natpmp]\n\nprot = 5351\n")
        let (status, output) = try Child.run(["run", "--config", file])
        #expect(status == 2)
        #expect(output == "portsync: \(file):3: unknown key \"prot\" in [natpmp]\n")
    }

    @Test func versionHelpAndConfig() throws {
        #expect(try Child.run(["--version"]).1 == "portsync 0.1.0 (commit unknown: built without scripts/build-release)\n",
                "the test build has no commit; scripts/test-package checks the release build's")
        #expect(try Child.run(["--help"]).1.contains("Usage: portsync <command>"))
        let (status, output) = try Child.run(["config", "--interface", "wg0"],
                                                environment: ["PORTSYNC_QBITTORRENT_PASSWORD": "hunter2"])
        #expect(status == 0)
        #expect(output.contains("interface = \"wg0\""))
        #expect(output.contains("# qBittorrent password: set (PORTSYNC_QBITTORRENT_PASSWORD)"))
        #expect(!output.contains("hunter2"))
    }

    @Test func runStopsCleanlyOnSigtermAndSigint() throws {
        for signal in [SIGTERM, SIGINT] {
            let child = try Child(["run", "--log-level", "info"])
            _ = child.waitForOutput(containing: "running")
            child.signal(signal)
            #expect(child.wait(seconds: 5) == 0)
        }
    }

    /// Each reload is counted by what came of it, and a rejected one says so until the next is
    /// taken (`/metrics`: what a configuration mistake is alerted on).
    @Test func sighupReloadsAGoodConfigurationAndKeepsTheOldOneOnABadOne() throws {
        let directory = TemporaryDirectory()
        let probe = MetricsProbe()
        let file = directory.write("config.toml", "[daemon]\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:\(probe.port)\"\n")
        let child = try Child(["run", "--config", file])
        #expect(probe.waitUntilServing(), "\(child.output)")
        func reloads(_ result: String) -> Double? { probe.value("portsync_config_reloads_total{result=\"\(result)\"}") }
        #expect(reloads("applied") == 0 && reloads("rejected") == 0 && probe.value("portsync_config_last_reload_successful") == 1)

        directory.write("config.toml", "[daemon]\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:\(probe.port)\"\n[natpmp]\ninterface = \"wg7\"\n")
        child.signal(SIGHUP)
        #expect(waitFor(seconds: 5) { reloads("applied") == 1 }, "\(child.output)")

        child.signal(SIGHUP)
        #expect(waitFor(seconds: 5) { reloads("unchanged") == 1 }, "\(child.output)")

        directory.write("config.toml", "[daemon]\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:\(probe.port)\"\n[natpmp]\ninterface = wg8\n")
        child.signal(SIGHUP)
        #expect(waitFor(seconds: 5) { reloads("rejected") == 1 }, "\(child.output)")
        #expect(probe.value("portsync_config_last_reload_successful") == 0 && reloads("applied") == 1)
        #expect(child.output.contains("\(file):5: \"interface\" has an unquoted value \"wg8\"; strings need quotes; keeping the previous configuration"))

        directory.write("config.toml", "[daemon]\nlog_level = \"info\"\nmetrics_listen = \"127.0.0.1:\(probe.port)\"\n")
        child.signal(SIGHUP)
        #expect(waitFor(seconds: 5) { reloads("applied") == 2 }, "\(child.output)")
        #expect(probe.value("portsync_config_last_reload_successful") == 1, "taken again")

        child.signal(SIGTERM)
        #expect(child.wait(seconds: 5) == 0)
    }

    @Test func traceShowsDispatchedEvents() throws {
        let child = try Child(["run", "--trace"])
        _ = child.waitForOutput(containing: "running")
        child.signal(SIGHUP)
        let trace = child.waitForOutput(containing: "trace   signal: SIGHUP")
        #expect(trace.contains("trace   signal: fd="))
        child.signal(SIGTERM)
        #expect(child.wait(seconds: 5) == 0)
    }
}
