import Foundation
import Glibc
import HTTP
import Reactor

/// A real transmission-daemon for tests, always started with the locked-down throwaway
/// settings.json of Tests/Fixtures (bound to 127.0.0.1 and ::1; DHT, PEX, LPD, port forwarding,
/// µTP and blocklist updates off; RPC on a free loopback port with a username and password,
/// whitelisted for 127.0.0.1 only), written before its first start; see docs/test-daemons.md.
/// After each start `ss` must show it holding nothing outside loopback. Stopped by its PID.
public final class TransmissionInstance {
    public static let username = "portsync"
    public static let password = "portsync-test-password"

    public static var executable: String? {
        ["/usr/bin/transmission-daemon", "/usr/local/bin/transmission-daemon"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// transmission-daemon and ss installed.
    public static var available: Bool { executable != nil && SocketTable.ssCommand != nil }

    public static let settingsTemplate = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/transmission-settings.json").standardized.path

    public let directory: String
    public let rpcPort: UInt16
    public let peerPort: UInt16
    public let peerAddress: String
    private var process: ChildProcess?
    private var sessionID = ""

    public var url: HTTPURL { try! HTTPURL(parsing: "http://127.0.0.1:\(rpcPort)") }
    public var pid: pid_t? { process?.pid }

    /// `peerAddress`: the loopback address of the peer listener (several clients on one port
    /// need one address each).
    public init(peerAddress: String = "127.0.0.1") throws {
        precondition(peerAddress.hasPrefix("127."), "loopback only")
        self.peerAddress = peerAddress
        directory = makeTemporaryDirectory("transmission")
        rpcPort = freePort()
        peerPort = freePort()
        do {
            try writeSettings()
            try start()
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The locked-down settings.json, from the template; refused if it is not the locked-down one.
    private func writeSettings() throws {
        let text = try String(contentsOfFile: Self.settingsTemplate, encoding: .utf8)
            .replacingOccurrences(of: "{DIRECTORY}", with: directory)
            .replacingOccurrences(of: "{PEER_PORT}", with: "\(peerPort)")
            .replacingOccurrences(of: "{RPC_PORT}", with: "\(rpcPort)")
            .replacingOccurrences(of: "{USERNAME}", with: Self.username)
            .replacingOccurrences(of: "{PASSWORD}", with: Self.password)
            .replacingOccurrences(of: #""bind-address-ipv4": "127.0.0.1""#, with: #""bind-address-ipv4": "\#(peerAddress)""#)
        guard text.range(of: "\\{[A-Z_]+\\}", options: .regularExpression) == nil, Self.isLockedDown(text) else {
            throw InstanceError(message: "\(Self.settingsTemplate) is not the locked-down settings")
        }
        try text.write(toFile: "\(directory)/settings.json", atomically: true, encoding: .utf8)
    }

    /// DHT, PEX, LPD, µTP and port forwarding off; peers and RPC bound to loopback.
    static func isLockedDown(_ text: String) -> Bool {
        guard let settings = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return false }
        let off = ["dht-enabled", "pex-enabled", "lpd-enabled", "utp-enabled", "port-forwarding-enabled"]
        return off.allSatisfy { settings[$0] as? Bool == false } && (settings["bind-address-ipv4"] as? String)?.hasPrefix("127.") == true
            && settings["rpc-bind-address"] as? String == "127.0.0.1"
    }

    /// Starts transmission-daemon in the foreground on the settings written before, waits for
    /// its RPC, then checks its sockets with `ss`. transmission-daemon saves its settings.json on
    /// exit (the peer port it had, kept across a restart), so each start reads the file again and
    /// refuses one that is no longer locked down.
    public func start() throws {
        precondition(process == nil, "already running")
        guard let saved = try? String(contentsOfFile: "\(directory)/settings.json", encoding: .utf8), Self.isLockedDown(saved) else {
            throw InstanceError(message: "no locked-down settings.json: transmission-daemon is not started without one")
        }
        let child = try ChildProcess(executable: Self.executable!,
                                     arguments: ["--foreground", "--config-dir", directory, "--logfile", "\(directory)/transmission.log"],
                                     environment: ["HOME": directory, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"],
                                     outputPath: "\(directory)/output.log")
        process = child
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            // With the right credentials (a wrong one counts toward Transmission's lock-out after
            // 100 failed logins): the 409 of the CSRF handshake says the RPC is up.
            if let response = try? RawHTTP.request(port: rpcPort, "POST", "/transmission/rpc", headers: [("Authorization", authorization)]),
               response.status == 409 {
                let lines = try SocketTable.sockets(of: [child.pid])
                // The RPC listener and the peer listener, IPv4 and IPv6, are all up.
                if lines.count >= 3 {
                    do {
                        try SocketTable.requireLoopbackOnly([child.pid], what: "transmission-daemon")
                    } catch {
                        stop()
                        throw error
                    }
                    return
                }
            }
            guard child.isRunning else { break }
            usleep(50_000)
        }
        stop()
        throw InstanceError(message: "transmission-daemon did not start; its output: \(child.output) \(log)")
    }

    /// SIGTERM by PID, then SIGKILL if it has not exited within 10 s.
    public func stop() {
        process?.stop()
        process = nil
    }

    private var authorization: String { "Basic " + Base64.encode(Array("\(Self.username):\(Self.password)".utf8)) }

    public var log: String { (try? String(contentsOfFile: "\(directory)/transmission.log", encoding: .utf8)) ?? "" }

    // MARK: Looking from outside, with a separate client

    /// One RPC call with the right credentials, through the 409 handshake.
    public func call(_ method: String, _ arguments: String = "{}") throws -> JSONValue {
        let body = #"{"method":"\#(method)","arguments":\#(arguments)}"#
        for _ in 0..<2 {
            let response = try RawHTTP.request(port: rpcPort, "POST", "/transmission/rpc",
                                               headers: [("Authorization", authorization), ("X-Transmission-Session-Id", sessionID)], body: body)
            if response.status == 409 {
                sessionID = response.headers["X-Transmission-Session-Id"] ?? ""
                continue
            }
            let answer = try JSONValue.parse(response.body)
            guard answer["result"]?.string == "success" else { throw InstanceError(message: "\(method): \(response.status) \(response.bodyExcerpt)") }
            return answer["arguments"] ?? .null
        }
        throw InstanceError(message: "\(method): 409 twice")
    }

    public func currentPeerPort() throws -> Int? {
        try call("session-get", #"{"fields":["peer-port"]}"#)["peer-port"]?.integer
    }

    public func setPeerPort(_ port: Int) throws {
        _ = try call("session-set", #"{"peer-port":\#(port)}"#)
    }

    /// Adds a torrent, started.
    public func addTorrent(_ torrent: [UInt8]) throws {
        _ = try call("torrent-add", #"{"metainfo":"\#(Base64.encode(torrent))","paused":false}"#)
    }
}
