import CLinux
import Foundation
import Glibc
import HTTP
import Reactor

/// A real qbittorrent-nox for tests, always started with the locked-down throwaway profile from
/// shared/reference/qbittorrent-test-instance.md (no DHT, LSD, PeX, UPnP; bound to lo; WebUI on
/// 127.0.0.1), never with a default profile. Stopped by its PID.
public final class QBittorrentInstance {
    public static let username = "admin"
    /// The profile holds its PBKDF2-HMAC-SHA512 hash (100000 iterations, salt "portsync-salt-16").
    public static let password = "portsync-test-password"

    public static var executable: String? {
        ["/usr/bin/qbittorrent-nox", "/usr/local/bin/qbittorrent-nox"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static var available: Bool { executable != nil }

    public let profile: String
    public let webUIPort: UInt16
    public private(set) var torrentPort: UInt16
    public let localHostAuth: Bool
    /// The interface qBittorrent binds its torrent sockets to: `lo` unless a test's network
    /// namespace offers another (traffic stays inside that namespace either way).
    public let interface: String
    public let address: String
    public var pid: pid_t? { process?.pid }
    /// The WebUI's own HTTPS: PEM certificate and key paths (`WebUI\HTTPS\*` in the profile).
    public let https: (certificate: String, key: String)?
    private var process: ChildProcess?

    public var url: HTTPURL { try! HTTPURL(parsing: "\(https == nil ? "http" : "https")://127.0.0.1:\(webUIPort)") }

    /// `address`: with `lo`, the loopback address the torrent sockets bind to (several clients
    /// on one port need one address each).
    public init(localHostAuth: Bool = true, torrentPort: UInt16? = nil, interface: String = "lo", address: String = "127.0.0.1",
                https: (certificate: String, key: String)? = nil) throws {
        precondition(address.hasPrefix("127."), "loopback only")
        self.address = address
        profile = makeTemporaryDirectory("qbt")
        webUIPort = freePort()
        self.torrentPort = torrentPort ?? freePort()
        self.localHostAuth = localHostAuth
        self.interface = interface
        self.https = https
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: profile)
    }

    /// Writes the locked-down profile, then starts qBittorrent and waits for its WebUI.
    public func start(torrentPort newPort: UInt16? = nil) throws {
        precondition(process == nil, "already running")
        if let newPort { torrentPort = newPort }
        try writeProfile()
        let child = try ChildProcess(executable: Self.executable!,
                                     arguments: ["--profile=\(profile)", "--webui-port=\(webUIPort)"],
                                     environment: ["HOME": profile, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"],
                                     outputPath: "\(profile)/stdout.log")
        process = child
        if https != nil {
            // RawHTTP speaks no TLS: the WebUI's socket accepting connections is the sign.
            do {
                return try waitUntilListening(port: webUIPort, process: child)
            } catch {
                stop()
                throw InstanceError(message: "qbittorrent-nox did not start; its output: \(child.output)")
            }
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if (try? RawHTTP.request(port: webUIPort, "GET", "/api/v2/app/webapiVersion")) != nil { return }
            guard child.isRunning else { break }
            usleep(50_000)
        }
        stop()
        throw InstanceError(message: "qbittorrent-nox did not start; its output: \(child.output)")
    }

    /// SIGTERM by PID, then SIGKILL if it has not exited within 10 s.
    public func stop() {
        process?.stop()
        process = nil
    }

    /// The locked-down profile of shared/reference/qbittorrent-test-instance.md, kept once in
    /// Tests/Fixtures/qBittorrent.conf (the benchmarks use the same file).
    public static let profileTemplate = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/qBittorrent.conf").standardized.path

    private func writeProfile() throws {
        let config = "\(profile)/qBittorrent/config"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        var text = try String(contentsOfFile: Self.profileTemplate, encoding: .utf8)
            .replacingOccurrences(of: "{TORRENT_PORT}", with: "\(torrentPort)")
            .replacingOccurrences(of: "{WEBUI_PORT}", with: "\(webUIPort)")
            .replacingOccurrences(of: "{LOCALHOST_AUTH}", with: "\(localHostAuth)")
            .replacingOccurrences(of: "{INTERFACE_ADDRESS}", with: interface == "lo" ? address : "")
            .replacingOccurrences(of: "{INTERFACE}", with: interface)
        guard !text.contains("{"), text.contains("DHTEnabled=false") else {
            throw InstanceError(message: "\(Self.profileTemplate) is not the locked-down profile")
        }
        if let https {
            text = text.replacingOccurrences(of: "[Preferences]\n", with: "[Preferences]\nWebUI\\HTTPS\\Enabled=true\n"
                + "WebUI\\HTTPS\\CertificatePath=\(https.certificate)\nWebUI\\HTTPS\\KeyPath=\(https.key)\n")
        }
        try text.write(toFile: "\(config)/qBittorrent.conf", atomically: true, encoding: .utf8)
    }

    /// qBittorrent's own log (profile/qBittorrent/data/logs/qbittorrent.log).
    public var log: String {
        String(decoding: FileManager.default.contents(atPath: "\(profile)/qBittorrent/data/logs/qbittorrent.log") ?? Data(), as: UTF8.self)
    }

    // MARK: Looking from outside, with a separate client

    public func login(from source: String? = nil) throws -> String? {
        let response = try RawHTTP.request(port: webUIPort, "POST", "/api/v2/auth/login", source: source,
                                           body: "username=\(Self.username)&password=\(Self.password)",
                                           contentType: "application/x-www-form-urlencoded")
        return response.text == "Ok." ? response.cookies.first.map { "\($0.name)=\($0.value)" } : nil
    }

    public func preferences() throws -> JSONValue {
        let cookie = try login()
        let response = try RawHTTP.request(port: webUIPort, "GET", "/api/v2/app/preferences", cookie: cookie)
        return try JSONValue.parse(response.body)
    }

    public func listenPort() throws -> Int? { try preferences()["listen_port"]?.integer }

    public func setPreferences(_ json: String, cookie: String? = nil) throws {
        let session = try cookie ?? login()
        let response = try RawHTTP.request(port: webUIPort, "POST", "/api/v2/app/setPreferences", cookie: session,
                                           body: "json=" + FormEncoding.percentEncode(json),
                                           contentType: "application/x-www-form-urlencoded")
        guard response.status == 200 else { throw InstanceError(message: "setPreferences answered \(response.status)") }
    }

    /// Adds a torrent, started, saved inside the profile (multipart/form-data, as the WebUI sends it).
    public func addTorrent(_ torrent: [UInt8]) throws {
        let boundary = "portsync-test-boundary"
        func field(_ name: String, _ value: String, file: Bool = false) -> String {
            let disposition = file ? #"name="\#(name)"; filename="test.torrent"\#r\#nContent-Type: application/x-bittorrent"# : #"name="\#(name)""#
            return "--\(boundary)\r\nContent-Disposition: form-data; \(disposition)\r\n\r\n\(value)\r\n"
        }
        let body = field("torrents", String(decoding: torrent, as: UTF8.self), file: true) + field("savepath", "\(profile)/downloads")
            + field("paused", "false") + "--\(boundary)--\r\n"
        let response = try RawHTTP.request(port: webUIPort, "POST", "/api/v2/torrents/add", cookie: try login(), body: body,
                                           contentType: "multipart/form-data; boundary=\(boundary)")
        guard response.status == 200, response.text.hasPrefix("Ok") else {
            throw InstanceError(message: "torrents/add answered \(response.status) \"\(response.text)\"")
        }
    }
}

public struct InstanceError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// A port the kernel had free on 127.0.0.1 a moment ago.
public func freePort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length)
            return getsockname(fd, pointer, &length)
        }
    }
    return UInt16(bigEndian: address.sin_port)
}

/// A blocking HTTP/1.1 client with `Connection: close`, for looking at servers from outside
/// the loop under test.
public enum RawHTTP {
    public static func request(port: UInt16, _ method: String, _ path: String, source: String? = nil, cookie: String? = nil,
                        headers extra: [(String, String)] = [], body: String = "", contentType: String? = nil) throws -> HTTPResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            _ = SocketAddress.v4(IPv4Address(source)!, port: 0).withSockAddr { bind(fd, $0, $1) }
        }
        let connected = SocketAddress.v4(IPv4Address(127, 0, 0, 1), port: port).withSockAddr { connect(fd, $0, $1) }
        guard connected == 0 else { throw InstanceError(message: "connect to \(port): errno \(errno)") }
        var headers: HTTPHeaders = ["Host": "127.0.0.1:\(port)", "Connection": "close"]
        if let cookie { headers.add("Cookie", cookie) }
        if let contentType { headers.add("Content-Type", contentType) }
        for (name, value) in extra { headers.add(name, value) }
        let wire = try HTTPRequest(method: method, target: path, headers: headers, body: Array(body.utf8)).serialized()
        _ = wire.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var parser = HTTPResponseParser()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 {
                if let response = try parser.finish() { return response }
                throw InstanceError(message: "no answer from \(port)")
            }
            if let response = try parser.consume(Array(buffer[0..<count])) { return response }
        }
    }
}
