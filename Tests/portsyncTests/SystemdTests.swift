import CLinux
import Foundation
import Glibc
import Reactor
import Testing
import TestSupport
@testable import portsync

/// A notify socket like systemd's: receives the daemon's datagrams.
final class NotifyListener {
    let fd: Int32
    let name: String
    private(set) var messages: [(time: Date, text: String)] = []

    /// `abstract`: an @name; otherwise a path in `directory`.
    init(abstract: Bool, directory: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        name = abstract ? "@portsync-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" : "\(directory)/notify"
        let address = try #require(try SystemdNotifier.Address(name))
        let result = address.bytes.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), address.length) }
        guard result == 0 else { throw ChildProcessError(message: "bind \(name): errno \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Receives until a message contains `text`, or `seconds` pass.
    @discardableResult
    func wait(for text: String, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if messages.contains(where: { $0.text.contains(text) }) { return true }
            receive()
        }
        return messages.contains { $0.text.contains(text) }
    }

    func receive() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        if count > 0 { messages.append((Date(), String(decoding: buffer[0..<count], as: UTF8.self))) }
    }

    /// Receives until `condition` holds over the messages, or `seconds` pass.
    func wait(seconds: Double = 10, until condition: ([(time: Date, text: String)]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition(messages) && Date() < deadline { receive() }
        return condition(messages)
    }

    func drain(for seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline { receive() }
    }

    func count(_ text: String) -> Int { messages.filter { $0.text.contains(text) }.count }
    func index(_ text: String) -> Int? { messages.firstIndex { $0.text.contains(text) } }
}

@Suite struct SystemdNotifierTests {
    @Test func pathAndAbstractAddressesHaveTheRightLength() throws {
        let path = try #require(try SystemdNotifier.Address("/run/user/1000/systemd/notify"))
        #expect(path.length == socklen_t(2 + 29 + 1))
        #expect(path.bytes[2] == UInt8(ascii: "/"))
        let abstract = try #require(try SystemdNotifier.Address("@/org/freedesktop/systemd1/notify"))
        #expect(abstract.length == socklen_t(2 + 33), "an abstract name is exactly its bytes: no NUL padding")
        #expect(abstract.bytes[2] == 0 && abstract.bytes[3] == UInt8(ascii: "/"))
        #expect(try SystemdNotifier.Address("") == nil)
        #expect(throws: ConfigurationError.self) { try SystemdNotifier.Address("vsock:2:1234") }
    }

    @Test func theWatchdogIsHalfTheTimeoutAndOnlyForThisProcess() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"], pid: 7) == .seconds(15))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"], pid: 7) == .seconds(15))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"], pid: 7) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "0"], pid: 7) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: [:], pid: 7) == nil)
    }

    @Test func anAbsurdWatchdogIsClampedOrIgnoredWithALine() {
        let huge = ["WATCHDOG_USEC": "9223372036854775807"]
        #expect(SystemdNotifier.watchdogInterval(environment: huge, pid: 7) == .seconds(3600))
        #expect(SystemdNotifier.watchdogProblem(environment: huge)
            == "WATCHDOG_USEC=9223372036854775807 is longer than two hours; pinging the watchdog every hour")
        let overflowing = ["WATCHDOG_USEC": "18446744073709551615"]
        #expect(SystemdNotifier.watchdogInterval(environment: overflowing, pid: 7) == nil)
        #expect(SystemdNotifier.watchdogProblem(environment: overflowing)
            == "WATCHDOG_USEC=18446744073709551615 is not a positive number of microseconds; no watchdog pings")
        #expect(SystemdNotifier.watchdogProblem(environment: ["WATCHDOG_USEC": "30000000"]) == nil)
        #expect(SystemdNotifier.watchdogProblem(environment: [:]) == nil)
    }

    @Test func aValueFromOutsideCannotAddAnAssignment() {
        #expect(SystemdNotifier.oneLine("STATUS=port 51413 on qBittorrent v9\nWATCHDOG=trigger\nX via natpmp")
            == #"STATUS=port 51413 on qBittorrent v9\nWATCHDOG=trigger\nX via natpmp"#)
        #expect(SystemdNotifier.oneLine("STATUS=" + String(repeating: "a", count: 1000)).count == "STATUS=".count + 201)
        #expect(SystemdNotifier.oneLine("READY=1") == "READY=1")
    }
}

@Suite(.serialized, .enabled(if: QBittorrentInstance.available, "qbittorrent-nox is not installed (./scripts/test installs it as root)"))
final class SystemdNotifyTests {
    let directory = TemporaryDirectory()
    let qbittorrent: QBittorrentInstance

    init() throws {
        qbittorrent = try QBittorrentInstance()
        directory.write("password", QBittorrentInstance.password)
        directory.write("run/Proton/VPN/forwarded_port", "\(freePort())")
    }

    func environment(_ listener: NotifyListener, _ extra: [String: String] = [:]) -> [String: String] {
        var variables = ["NOTIFY_SOCKET": listener.name, "XDG_RUNTIME_DIR": "\(directory.path)/run", "PORTSYNC_SOURCE_STRATEGY": "file"]
        variables.merge(extra) { $1 }
        return daemonEnvironment(qbittorrent, in: directory, variables)
    }

    @Test(arguments: [false, true])
    func readyStatusWatchdogReloadingAndStoppingInOrder(abstract: Bool) throws {
        let listener = try NotifyListener(abstract: abstract, directory: directory.path)
        let daemon = try Child(["run"], environment: environment(listener, ["WATCHDOG_USEC": "400000"]))
        #expect(listener.wait(for: "READY=1"), "\(daemon.output)")
        let ready = try #require(listener.messages.first { $0.text.contains("READY=1") })
        #expect(ready.text.contains("STATUS=port "), "READY carries the status in words: \(ready.text)")
        #expect(ready.text.contains("on qBittorrent v4.5.2 via proton-file"))

        listener.drain(for: 1)
        #expect(listener.count("WATCHDOG=1") >= 3, "a ping every 200 ms")

        daemon.signal(SIGHUP)
        #expect(listener.wait(for: "RELOADING=1"))
        let reloading = try #require(listener.index("RELOADING=1"))
        #expect(listener.messages[reloading].text.contains("MONOTONIC_USEC="))
        #expect(listener.wait { $0[(reloading + 1)...].contains { $0.text.contains("READY=1") } }, "READY=1 after RELOADING=1")

        let port = freePort()
        directory.write("run/Proton/VPN/forwarded_port", "\(port)")
        #expect(listener.wait(for: "STATUS=port \(port) on qBittorrent"))

        daemon.signal(SIGTERM)
        #expect(listener.wait(for: "STOPPING=1"))
        #expect(daemon.wait(seconds: 2) == 0)
        let stopping = try #require(listener.index("STOPPING=1"))
        #expect(stopping > reloading)
    }

    @Test func theWatchdogFallsSilentWhileTheLoopIsStuck() throws {
        let listener = try NotifyListener(abstract: false, directory: directory.path)
        let daemon = try Child(["run"], environment: environment(listener, ["WATCHDOG_USEC": "200000"]))
        #expect(listener.wait(for: "READY=1"))
        listener.drain(for: 0.5)
        daemon.signal(SIGSTOP)
        listener.drain(for: 0.1)
        let frozen = listener.count("WATCHDOG=1")
        listener.drain(for: 0.8)
        #expect(listener.count("WATCHDOG=1") == frozen, "no ping while the loop cannot run")
        daemon.signal(SIGCONT)
        listener.drain(for: 0.5)
        #expect(listener.count("WATCHDOG=1") > frozen)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }

    @Test func noPingsForAWatchdogMeantForAnotherProcess() throws {
        let listener = try NotifyListener(abstract: false, directory: directory.path)
        let daemon = try Child(["run"], environment: environment(listener, ["WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"]))
        #expect(listener.wait(for: "READY=1"))
        listener.drain(for: 0.6)
        #expect(listener.count("WATCHDOG=1") == 0)
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: 2) == 0)
    }
}
