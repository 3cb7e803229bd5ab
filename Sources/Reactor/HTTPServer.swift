import CLinux
import Glibc

/// A small HTTP/1.1 server in the loop, for the metrics and health endpoint: one request per
/// connection (`Connection: close`), GET and HEAD only. Built to shrug off bad clients: at most
/// `maxConnections` at once (more are accepted and closed at once), at most `maxRequestBytes`
/// of request (431 after that), and a connection that has not sent its request within
/// `idleTimeout` is closed. Memory stays bounded whatever arrives, and nothing blocks the loop.
public final class HTTPServer {
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let headers: HTTPHeaders
    }

    public struct Limits: Sendable {
        public var maxConnections: Int
        public var maxRequestBytes: Int
        public var idleTimeout: Duration

        public init(maxConnections: Int = 64, maxRequestBytes: Int = 8192, idleTimeout: Duration = .seconds(5)) {
            self.maxConnections = maxConnections
            self.maxRequestBytes = maxRequestBytes
            self.idleTimeout = idleTimeout
        }
    }

    private final class Connection {
        let fd: FileDescriptor
        var registration: RegistrationID?
        var buffer: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        let opened: Instant

        init(fd: FileDescriptor, opened: Instant) {
            self.fd = fd
            self.opened = opened
        }
    }

    public let name: String
    public let address: SocketAddress
    public let limits: Limits
    private let loop: EventLoop
    private let handler: (Request) -> HTTPResponse
    private let listener: FileDescriptor
    private var listenerRegistration: RegistrationID?
    private var connections: [Int32: Connection] = [:]
    private var sweeper: Timer!
    /// Connections turned away because `maxConnections` were open.
    public private(set) var refused = 0

    /// Listens on `address` (port 0: the kernel picks; `address` then tells which).
    public init(loop: EventLoop, name: String, address: SocketAddress, limits: Limits = Limits(),
                handler: @escaping (Request) -> HTTPResponse) throws {
        self.loop = loop
        self.name = name
        self.limits = limits
        self.handler = handler
        let fd = FileDescriptor(rawValue: try systemCall("socket") {
            socket(address.family, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        })
        do {
            var one: Int32 = 1
            setsockopt(fd.rawValue, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            _ = try address.withSockAddr { pointer, length in
                try systemCall("bind \(address)") { bind(fd.rawValue, pointer, length) }
            }
            _ = try systemCall("listen") { listen(fd.rawValue, 128) }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &length) }
            }
            self.address = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress($0) }
            } ?? address
        } catch {
            fd.close()
            throw error
        }
        listener = fd
        sweeper = loop.makeTimer(name: name) { [unowned self] in self.sweep() }
        listenerRegistration = try loop.register(fd, interest: .readable, name: name) { [unowned self] _ in self.acceptAll() }
    }

    deinit { close() }

    public var openConnections: Int { connections.count }

    public func close() {
        sweeper.cancel()
        for fd in Array(connections.keys) { drop(fd) }
        if let listenerRegistration {
            loop.deregister(listenerRegistration)
            listener.close()
        }
        listenerRegistration = nil
    }

    private func acceptAll() {
        while true {
            let fd = accept(listener.rawValue, nil, nil)
            guard fd >= 0 else { return }  // EAGAIN: drained; EMFILE and friends: try at the next wakeup
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            guard connections.count < limits.maxConnections else {
                refused += 1
                Glibc.close(fd)
                continue
            }
            let connection = Connection(fd: FileDescriptor(rawValue: fd), opened: loop.now)
            do {
                connection.registration = try loop.register(connection.fd, interest: .readable, name: name) { [unowned self] readiness in
                    self.handle(fd, readiness)
                }
            } catch {
                Glibc.close(fd)
                continue
            }
            connections[fd] = connection
            if sweeper.deadline == nil { sweeper.schedule(after: limits.idleTimeout) }
        }
    }

    private func handle(_ fd: Int32, _ readiness: Readiness) {
        guard let connection = connections[fd] else { return }
        if !connection.output.isEmpty {
            return flush(connection)
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count > 0 {
                connection.buffer += chunk[0..<count]
                if connection.buffer.count > limits.maxRequestBytes {
                    return respond(connection, HTTPResponse(status: 431, reason: "Request Header Fields Too Large",
                                                            body: Array("request too large\n".utf8)), head: false)
                }
                continue
            }
            if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { return drop(fd) }
            break
        }
        switch Self.parse(connection.buffer) {
        case nil:
            return
        case .refused(let response):
            respond(connection, response, head: false)
        case .request(let request):
            respond(connection, handler(request), head: request.method == "HEAD")
        }
    }

    /// What a client's bytes ask for.
    public enum ParsedRequest {
        case request(Request)
        /// Not a request this server serves: the answer that says so.
        case refused(HTTPResponse)
    }

    /// The request in `buffer`, once its head is complete (nil until then).
    public static func parse(_ buffer: [UInt8]) -> ParsedRequest? {
        guard let end = headEnd(buffer) else { return nil }
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let requestLine = lines.first ?? ""
        let parts = requestLine.split(separator: " ")
        // A control character (a bare CR or LF among them) would end up in the path.
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."),
              !requestLine.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return .refused(HTTPResponse(status: 400, reason: "Bad Request", body: Array("bad request\n".utf8)))
        }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingSpaces)
        }
        let method = String(parts[0])
        let path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
        guard method == "GET" || method == "HEAD" else {
            var response = HTTPResponse(status: 405, reason: "Method Not Allowed", body: Array("GET only\n".utf8))
            response.headers.add("Allow", "GET, HEAD")
            return .refused(response)
        }
        return .request(Request(method: method, path: path, headers: headers))
    }

    private static func headEnd(_ buffer: [UInt8]) -> Int? {
        guard buffer.count >= 4 else { return nil }
        for index in 0...(buffer.count - 4) where buffer[index] == 13 && buffer[index + 1] == 10
            && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
            return index
        }
        return nil
    }

    private func respond(_ connection: Connection, _ response: HTTPResponse, head: Bool) {
        var text = "HTTP/1.1 \(response.status) \(response.reason)\r\n"
        for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
        text += "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
        connection.output = Array(text.utf8) + (head ? [] : response.body)
        connection.buffer = []
        flush(connection)
    }

    private func flush(_ connection: Connection) {
        let fd = connection.fd.rawValue
        while connection.written < connection.output.count {
            let count = connection.output[connection.written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                connection.written += count
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if let registration = connection.registration { try? loop.setInterest(registration, .writable) }
                return
            } else {
                return drop(fd)
            }
        }
        drop(fd)
    }

    /// Closes connections that have had their time; runs only while some are open.
    private func sweep() {
        let cutoff = loop.now - limits.idleTimeout
        for (fd, connection) in connections where connection.opened <= cutoff { drop(fd) }
        if let oldest = connections.values.map(\.opened).min() {
            sweeper.schedule(at: oldest + limits.idleTimeout)
        }
    }

    private func drop(_ fd: Int32) {
        guard let connection = connections.removeValue(forKey: fd) else { return }
        if let registration = connection.registration { loop.deregister(registration) }
        connection.fd.close()
        if connections.isEmpty { sweeper.cancel() }  // asleep again once every client is gone
    }
}
