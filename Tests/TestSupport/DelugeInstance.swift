import Foundation
import Glibc
import HTTP
import Reactor

/// A real deluged and deluge-web for tests, inside a `LoopbackNamespace` (nothing but `lo`):
/// deluged 2.0.3 starts libtorrent on its defaults (DHT, LSD, UPnP, NAT-PMP, 0.0.0.0:6881) and
/// applies core.conf only afterwards, so even locked down it would send a UPnP discovery at
/// start anywhere else. Its throwaway configuration is written before the first start (core.conf
/// from Tests/Fixtures, the auth file, web.conf with the Web UI's password hash, hostlist.conf);
/// see docs/test-daemons.md. After each start `ss` in the namespace must show both holding
/// nothing outside loopback. Stopped by their PIDs.
public final class DelugeInstance {
    public static let webPassword = "portsync-web-password"
    static let daemonUser = "portsync"
    static let daemonPassword = "portsync-daemon-password"
    public static let hostID = "5e1f0c2d3b4a59687766554433221100"

    public static var available: Bool {
        LoopbackNamespace.available && ["/usr/bin/deluged", "/usr/bin/deluge-web"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static let coreTemplate = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/deluge-core.conf").standardized.path

    public let namespace: LoopbackNamespace
    public let directory: String
    public let webPort: UInt16 = 8112
    public let daemonPort: UInt16 = 58846
    public let listenPort: UInt16
    private let autoConnect: Bool
    private var daemon: ChildProcess?
    private var web: ChildProcess?

    public var url: HTTPURL { try! HTTPURL(parsing: "http://127.0.0.1:\(webPort)") }
    public var daemonPID: pid_t? { daemon?.pid }

    /// `autoConnect`: deluge-web connects to deluged at start (`default_daemon`); otherwise the
    /// client must `web.connect`.
    public init(listenPort: UInt16 = 6900, autoConnect: Bool = false) throws {
        namespace = try LoopbackNamespace()
        directory = makeTemporaryDirectory("deluge")
        self.listenPort = listenPort
        self.autoConnect = autoConnect
        do {
            try writeConfiguration()
            try startDaemon()
            try startWeb()
        } catch {
            stopWeb()
            stopDaemon()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stopWeb()
        stopDaemon()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func writeConfiguration() throws {
        let core = try String(contentsOfFile: Self.coreTemplate, encoding: .utf8)
            .replacingOccurrences(of: "{DIRECTORY}", with: directory)
            .replacingOccurrences(of: "{DAEMON_PORT}", with: "\(daemonPort)")
            .replacingOccurrences(of: "{LISTEN_PORT}", with: "\(listenPort)")
        guard core.range(of: "\\{[A-Z_]+\\}", options: .regularExpression) == nil, Self.isLockedDown(core) else {
            throw InstanceError(message: "\(Self.coreTemplate) is not the locked-down core.conf")
        }
        try FileManager.default.createDirectory(atPath: "\(directory)/downloads", withIntermediateDirectories: true)
        try core.write(toFile: "\(directory)/core.conf", atomically: true, encoding: .utf8)
        // deluged's accounts: localclient is what deluge-web would add for itself.
        let auth = "localclient:\(UUID().uuidString.lowercased()):10\n\(Self.daemonUser):\(Self.daemonPassword):10\n"
        try auth.write(toFile: "\(directory)/auth", atomically: true, encoding: .utf8)
        chmod("\(directory)/auth", 0o600)
        let hosts = #"{"file": 3, "format": 1}{"hosts": [["\#(Self.hostID)", "127.0.0.1", \#(daemonPort), "\#(Self.daemonUser)", "\#(Self.daemonPassword)"]]}"#
        try hosts.write(toFile: "\(directory)/hostlist.conf", atomically: true, encoding: .utf8)
        try writeWebConfiguration()
    }

    /// web.conf: deluge-web checks sha1(salt + password) against `pwd_sha1`; it keeps its login
    /// sessions in this file too, across restarts, so writing it anew forgets them.
    private func writeWebConfiguration() throws {
        let salt = "8a3a5d8f6b1e4c2a9d7f0e1b2c3d4e5f6a7b8c9d"
        let hash = try NetworkLab.run("/usr/bin/python3", ["-c", "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())",
                                                          salt + Self.webPassword]).trimmingCharacters(in: .whitespacesAndNewlines)
        let webConf = #"{"file": 2, "format": 1}{"pwd_salt": "\#(salt)", "pwd_sha1": "\#(hash)", "default_daemon": "\#(autoConnect ? Self.hostID : "")", "interface": "127.0.0.1", "port": \#(webPort), "https": false, "first_login": false, "enabled_plugins": [], "base": "/", "session_timeout": 3600, "sessions": {}}"#
        try webConf.write(toFile: "\(directory)/web.conf", atomically: true, encoding: .utf8)
    }

    /// DHT, UPnP, NAT-PMP, PEX and LSD off; listening on 127.0.0.1, going out through lo.
    static func isLockedDown(_ core: String) -> Bool {
        ["\"dht\": false", "\"upnp\": false", "\"natpmp\": false", "\"utpex\": false", "\"lsd\": false",
         "\"listen_interface\": \"127.0.0.1\"", "\"outgoing_interface\": \"lo\""].allSatisfy { core.contains($0) }
    }

    /// The first of core.conf's `listen_ports`: what deluged listens on once it has read the
    /// file (after a SIGTERM, the port it had; after a SIGKILL, the one saved before).
    static func savedListenPort(_ core: String) -> UInt16? {
        guard let range = core.range(of: #""listen_ports":\s*\[\s*[0-9]+"#, options: .regularExpression) else { return nil }
        return UInt16(core[range].drop { $0 != "[" }.dropFirst().trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private var environment: [String: String] { ["HOME": directory, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"] }

    /// Starts deluged in the namespace and waits for its UI port and its torrent listener.
    /// deluged saves core.conf itself (the listen port it had, kept across a restart), so each
    /// start reads the file again and refuses one that is no longer locked down.
    public func startDaemon() throws {
        precondition(daemon == nil, "already running")
        guard let core = try? String(contentsOfFile: "\(directory)/core.conf", encoding: .utf8), Self.isLockedDown(core) else {
            throw InstanceError(message: "no locked-down core.conf: deluged is not started without one")
        }
        // A deluged killed with SIGKILL leaves its pid file; a reused PID would stop the next start.
        unlink("\(directory)/deluged.pid")
        let child = try namespace.start("/usr/bin/deluged", ["--do-not-daemonize", "--config", directory, "--ui-interface", "127.0.0.1",
                                                            "--interface", "127.0.0.1", "--loglevel", "info", "--logfile", "\(directory)/deluged.log"],
                                        environment: environment, output: "\(directory)/deluged.out")
        daemon = child
        try waitForSockets(child, ["127.0.0.1:\(daemonPort) ", ":\(Self.savedListenPort(core) ?? listenPort) "], what: "deluged")
    }

    /// Starts deluge-web in the namespace and waits for its port.
    public func startWeb() throws {
        precondition(web == nil, "already running")
        let child = try namespace.start("/usr/bin/deluge-web", ["--do-not-daemonize", "--config", directory, "--interface", "127.0.0.1",
                                                               "--port", "\(webPort)", "--loglevel", "info", "--logfile", "\(directory)/web.log"],
                                        environment: environment, output: "\(directory)/web.out")
        web = child
        try waitForSockets(child, ["127.0.0.1:\(webPort) "], what: "deluge-web")
    }

    /// Waits until `child` listens on every one of `listeners`, then requires all its sockets on loopback.
    private func waitForSockets(_ child: ChildProcess, _ listeners: [String], what: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && child.isRunning {
            let lines = try SocketTable.sockets(of: [child.pid], namespace: namespace.name)
            if listeners.allSatisfy({ listener in lines.contains { $0.contains("LISTEN") && $0.contains(listener) } }) {
                // libtorrent may still hold its default sockets a moment after core.conf applies.
                usleep(300_000)
                try SocketTable.requireLoopbackOnly([child.pid], namespace: namespace.name, what: what)
                return
            }
            usleep(100_000)
        }
        throw InstanceError(message: "\(what) did not start; its output: \(child.output.suffix(2000))")
    }

    /// SIGTERM (or `signal`) by PID; SIGKILL after 10 s.
    public func stopDaemon(signal: Int32 = SIGTERM) {
        guard let daemon else { return }
        if signal == SIGTERM { daemon.stop() } else {
            daemon.signal(signal)
            daemon.wait(seconds: 10)
        }
        self.daemon = nil
    }

    public func stopWeb() {
        web?.stop()
        web = nil
    }

    /// Stops deluge-web, makes it forget its login sessions (as when they expire), starts it.
    public func restartWebForgettingSessions() throws {
        stopWeb()
        try writeWebConfiguration()
        try startWeb()
    }

    public var logs: String {
        ["deluged.log", "web.log"].map { (try? String(contentsOfFile: "\(directory)/\($0)", encoding: .utf8)) ?? "" }.joined(separator: "\n")
    }

    // MARK: Looking from outside

    /// Whether deluged listens on `port` (on loopback), by `ss` in the namespace: what the
    /// port setting really did. (Not through deluge-web: its connection to deluged is one for
    /// every session, so an observer calling `web.connect` would mend what a test breaks.)
    public func listens(on port: UInt16) throws -> Bool {
        guard let daemonPID else { return false }
        return try SocketTable.requireLoopbackOnly([daemonPID], namespace: namespace.name, what: "deluged")
            .contains { $0.contains("LISTEN") && $0.contains("127.0.0.1%lo:\(port) ") }
    }

    /// Adds a torrent, started, through a deluge-web session of its own, connecting deluge-web
    /// to deluged if it is not; the torrent's id.
    public func addTorrent(_ torrent: [UInt8], name: String) throws -> String? {
        try namespace.inside {
            var cookie: String?
            func call(_ body: String) throws -> JSONValue {
                let response = try RawHTTP.request(port: webPort, "POST", "/json", cookie: cookie, body: body, contentType: "application/json")
                if let fresh = response.cookies.first(where: { $0.name == "_session_id" }) { cookie = "\(fresh.name)=\(fresh.value)" }
                return try JSONValue.parse(response.body)
            }
            _ = try call(#"{"method":"auth.login","params":["\#(Self.webPassword)"],"id":1}"#)
            if try call(#"{"method":"web.connected","params":[],"id":2}"#)["result"]?.bool != true {
                _ = try call(#"{"method":"web.connect","params":["\#(Self.hostID)"],"id":3}"#)
            }
            let added = try call(#"{"method":"core.add_torrent_file","params":["\#(name).torrent","\#(Base64.encode(torrent))",{"add_paused":false}],"id":4}"#)
            return added["result"]?.string
        }
    }
}
