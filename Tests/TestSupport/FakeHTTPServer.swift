import CLinux
import Glibc
import HTTP
import Reactor

/// A loopback HTTP/1.1 server inside the loop under test, for what a real qBittorrent 4.5.2
/// cannot do: another version's answers, garbage, silence. Keep-alive; requests are recorded.
public final class FakeHTTPServer {
    public struct Request {
        public let method: String
        public let target: String
        public let headers: HTTPHeaders
        public let body: String

        /// The form fields of an x-www-form-urlencoded body.
        public var form: [String: String] {
            var fields: [String: String] = [:]
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { percentDecode(String($0)) }
                fields[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            return fields
        }
    }

    public enum Reply {
        case answer(HTTPResponse)
        /// Read the request and never answer.
        case silence
    }

    private let loop: EventLoop
    private let listener: FileDescriptor
    private var connections: [Int32: (registration: RegistrationID, buffer: [UInt8])] = [:]
    public let port: UInt16
    public private(set) var requests: [Request] = []
    public var handler: (Request) -> Reply

    public init(loop: EventLoop, handler: @escaping (Request) -> Reply) throws {
        self.loop = loop
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = SocketAddress.v4(IPv4Address(127, 0, 0, 1), port: 0).withSockAddr { bind(fd, $0, $1) }
        listen(fd, 64)
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
        listener = FileDescriptor(rawValue: fd)
        try loop.register(listener, interest: .readable, name: "fake.listener") { [unowned self] _ in self.acceptAll() }
    }

    deinit {
        for (fd, connection) in connections {
            loop.deregister(connection.registration)
            close(fd)
        }
        close(listener.rawValue)
    }

    public var url: HTTPURL { try! HTTPURL(parsing: "http://127.0.0.1:\(port)") }

    private func acceptAll() {
        while true {
            let fd = accept(listener.rawValue, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            let registration = try! loop.register(FileDescriptor(rawValue: fd), interest: .readable, name: "fake.connection") { [unowned self] _ in
                self.read(fd)
            }
            connections[fd] = (registration, [])
        }
    }

    private func read(_ fd: Int32) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count > 0 {
                connections[fd]?.buffer += chunk[0..<count]
                continue
            }
            if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) {
                drop(fd)
                return
            }
            break
        }
        while let request = nextRequest(fd) {
            requests.append(request)
            switch handler(request) {
            case .silence:
                break
            case .answer(let response):
                let wire = Self.serialize(response)
                _ = wire.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    private func nextRequest(_ fd: Int32) -> Request? {
        guard let buffer = connections[fd]?.buffer,
              let end = buffer.indices.first(where: { $0 + 3 < buffer.count && buffer[$0...$0 + 3].elementsEqual([13, 10, 13, 10]) })
        else { return nil }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        var lines = head.split(separator: "\r\n").map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ")
        var headers = HTTPHeaders()
        for line in lines {
            let parts = line.split(separator: ":", maxSplits: 1)
            headers.add(String(parts[0]), parts.count > 1 ? parts[1].trimmingSpaces : "")
        }
        let length = Int(headers["Content-Length"] ?? "0") ?? 0
        guard buffer.count >= end + 4 + length else { return nil }
        let body = String(decoding: buffer[(end + 4)..<(end + 4 + length)], as: UTF8.self)
        connections[fd]?.buffer.removeFirst(end + 4 + length)
        return Request(method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, body: body)
    }

    /// Closes every accepted connection, as a server does with idle keep-alive connections.
    public func dropAllConnections() {
        for fd in Array(connections.keys) { drop(fd) }
    }

    public var openConnections: Int { connections.count }

    private func drop(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        loop.deregister(connection.registration)
        close(fd)
    }

    public static func serialize(_ response: HTTPResponse) -> [UInt8] {
        var text = "HTTP/1.1 \(response.status) \(response.reason.isEmpty ? "Reason" : response.reason)\r\n"
        for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
        // A stand-in that frames its answers itself (FakeTransmission41, FakeDelugeWeb) gives its own.
        if response.status != 204 && response.headers["Content-Length"] == nil && response.headers["Transfer-Encoding"] == nil { text += "Content-Length: \(response.body.count)\r\n" }
        return Array((text + "\r\n").utf8) + response.body
    }
}

public func percentDecode(_ text: String) -> String {
    var bytes: [UInt8] = []
    var index = text.utf8.startIndex
    let utf8 = text.utf8
    while index < utf8.endIndex {
        let byte = utf8[index]
        if byte == UInt8(ascii: "%"), let high = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex),
           let low = utf8.index(index, offsetBy: 2, limitedBy: utf8.endIndex), low < utf8.endIndex,
           let value = UInt8(String(decoding: [utf8[high], utf8[low]], as: UTF8.self), radix: 16) {
            bytes.append(value)
            index = utf8.index(index, offsetBy: 3)
        } else {
            bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = utf8.index(after: index)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// qBittorrent 5.2's WebAPI as protocols.md §5 describes it: 204 logins, 401 for bad
/// credentials, the QBT_SID_<port> cookie, API keys, 204 for calls that return no data.
public final class FakeQBittorrent52 {
    public var preferences: [String: JSONValue] = [
        "listen_port": .number(6881), "random_port": .bool(false), "upnp": .bool(true), "current_network_interface": .string(""),
    ]
    public var listenPort: Int { preferences["listen_port"]?.integer ?? 0 }
    public var password = "right-password"
    public var apiKey: String?
    public var banned = false
    /// Replaces the preferences answer (garbage tests).
    public var preferencesBody: String?
    /// Puts a bare CR inside the session cookie, as a broken proxy might.
    public var crInCookie = false
    public var silent = false
    /// `transfer/info`'s answer, as 5.1 and later give it (`last_external_address_v4`).
    public var transferInfo: [String: JSONValue] = [
        "connection_status": .string("firewalled"), "dht_nodes": .number(0), "last_external_address_v4": .string(""),
        "last_external_address_v6": .string(""),
    ]
    private var sessions: Set<String> = []
    public private(set) var server: FakeHTTPServer!

    public init(loop: EventLoop) throws {
        server = try FakeHTTPServer(loop: loop) { [unowned self] request in self.answer(request) }
    }

    public var cookieName: String { "QBT_SID_\(server.port)" }
    public var loginRequests: Int { server.requests.filter { $0.target == "/api/v2/auth/login" }.count }

    private func answer(_ request: FakeHTTPServer.Request) -> FakeHTTPServer.Reply {
        if silent { return .silence }
        func reply(_ status: Int, _ body: String = "", _ headers: HTTPHeaders = [:]) -> FakeHTTPServer.Reply {
            .answer(HTTPResponse(status: status, headers: headers, body: Array(body.utf8)))
        }
        if request.target == "/api/v2/auth/login" {
            if banned { return reply(403, "Your IP address has been banned after too many failed authentication attempts.") }
            guard request.form["password"] == password else { return reply(401, "Unauthorized") }
            let session = "s\(sessions.count + 1)"
            sessions.insert(session)
            let value = crInCookie ? "\(session)\rdef" : session
            return reply(204, "", ["Set-Cookie": "\(cookieName)=\(value); HttpOnly; SameSite=Lax; path=/; Max-Age=3600"])
        }
        let cookie = request.headers["Cookie"].flatMap { $0.hasPrefix("\(cookieName)=") ? String($0.dropFirst(cookieName.count + 1)) : nil }
        let bearer = request.headers["Authorization"]
        guard cookie.map(sessions.contains) == true || (apiKey != nil && bearer == "Bearer \(apiKey!)") else {
            return reply(403, "Forbidden")
        }
        switch request.target {
        case "/api/v2/app/version":
            return reply(200, "v5.2.3")
        case "/api/v2/app/preferences":
            return reply(200, preferencesBody ?? JSONValue.object(preferences).serialized)
        case "/api/v2/transfer/info":
            return reply(200, JSONValue.object(transferInfo).serialized)
        case "/api/v2/app/setPreferences":
            guard let json = request.form["json"], case .object(let fields)? = try? JSONValue.parse(Array(json.utf8)) else {
                return reply(400, "Bad Request")
            }
            preferences.merge(fields) { $1 }
            return reply(204)
        default:
            return reply(404, "Not Found")
        }
    }
}
