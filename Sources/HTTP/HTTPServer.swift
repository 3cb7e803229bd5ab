import CLinux
import Glibc
import Reactor

/// A small HTTP/1.1 server in the loop, for the metrics and health endpoint: one request per
/// connection (`Connection: close`), GET and HEAD only. Built to shrug off bad clients: at most
/// `maxConnections` at once (when full, the oldest connection still waiting for its request
/// makes room for the new one), at most `maxRequestBytes` of request (431 after that), and a
/// connection that has not sent its request within `idleTimeout` is closed. A client that sends
/// its request and half-closes is answered. When accept fails for want of descriptors, the
/// listener leaves the loop for a second instead of spinning. Memory stays bounded whatever
/// arrives, and nothing blocks the loop.
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
        /// The accepted socket, owned by its registration.
        let source: Registration
        var buffer: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        let opened: Instant
        /// Order of acceptance: the oldest has the lowest, also within one wakeup.
        let serial: Int

        init(source: Registration, opened: Instant, serial: Int) {
            self.source = source
            self.opened = opened
            self.serial = serial
        }
    }

    public let name: String
    public let address: SocketAddress
    public let limits: Limits
    private let loop: EventLoop
    private let handler: (Request) -> HTTPResponse
    /// The listening socket, owned by its registration; disabled while accepting pauses.
    private var listener: Registration!
    private var connections: [Int32: Connection] = [:]
    private var sweeper: Timer!
    private var acceptPause: Timer!
    private var acceptFailureReported = false
    private var closed = false
    private var accepted = 0
    /// Connections turned away because `maxConnections` were open, all of them answering.
    public private(set) var refused = 0
    /// Connections still waiting for their request, closed to make room for a new one.
    public private(set) var evicted = 0

    /// Listens on `address` (port 0: the kernel picks; `address` then tells which).
    public init(loop: EventLoop, name: String, address: SocketAddress, limits: Limits = Limits(),
                handler: @escaping (Request) -> HTTPResponse) throws {
        self.loop = loop
        self.name = name
        self.limits = limits
        self.handler = handler
        var bound = address
        let socket = try Socket(family: address.family, kind: .stream) { socket in
            try socket.setOption(SOL_SOCKET, SO_REUSEADDR, 1, name: "SO_REUSEADDR")
            try socket.bind(to: address, name: "bind \(address)")
            try socket.listen(backlog: 128)
            bound = try socket.localAddress() ?? address
        }
        self.address = bound
        sweeper = loop.makeTimer(name: name) { [unowned self] in self.sweep() }
        acceptPause = loop.makeTimer(name: name) { [unowned self] in self.resumeAccepting() }
        listener = try Registration(loop: loop, owning: socket.fd, interest: .readable, name: name) { [unowned self] _ in
            self.acceptAll()
        }
    }

    deinit { close() }

    public var openConnections: Int { connections.count }

    public func close() {
        guard !closed else { return }
        closed = true
        sweeper.cancel()
        acceptPause.cancel()
        for fd in Array(connections.keys) { drop(fd) }
        listener?.cancel()
    }

    /// accept failed for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending
    /// connection keeps the level-triggered listener readable, so it leaves epoll for a second
    /// rather than spin. Said once until the queue of pending connections drains again.
    private func pauseAccepting(_ error: SystemCallError) {
        if !acceptFailureReported {
            acceptFailureReported = true
            loop.logger.error(name, "\(error); not accepting connections for 1 s at a time until it works again")
        }
        listener.disable()
        acceptPause.schedule(after: .seconds(1))
    }

    private func resumeAccepting() {
        guard !closed, !listener.isEnabled else { return }
        do {
            try listener.enable()
        } catch {
            pauseAccepting(error as! SystemCallError)
        }
    }

    private func acceptAll() {
        while true {
            let incoming: Socket
            do {
                guard case .done(let socket) = try Socket(listener.fd).accept() else {
                    acceptFailureReported = false  // the queue drained: a new failure is news again
                    return
                }
                incoming = socket
            } catch {
                if error.errno == .connectionAborted { continue }
                return pauseAccepting(error)
            }
            let fd = incoming.fd.rawValue
            if connections.count >= limits.maxConnections {
                // Full: the oldest connection that has not sent its request makes room, so idle
                // clients cannot lock /healthz out; if every one is being answered, the new one is turned away.
                guard let oldest = connections.values.filter({ $0.output.isEmpty }).min(by: { $0.serial < $1.serial }) else {
                    refused += 1
                    incoming.close()
                    continue
                }
                evicted += 1
                drop(oldest.source.fd.rawValue)
            }
            accepted += 1
            let source: Registration
            do {
                source = try Registration(loop: loop, owning: incoming.fd, interest: .readable, name: name) { [unowned self] readiness in
                    self.handle(fd, readiness)
                }
            } catch {
                continue  // the registration closed the socket: the client sees the connection close
            }
            connections[fd] = Connection(source: source, opened: loop.now, serial: accepted)
            if sweeper.deadline == nil { sweeper.schedule(after: limits.idleTimeout) }
        }
    }

    private func handle(_ fd: Int32, _ readiness: Readiness) {
        guard let connection = connections[fd] else { return }
        if !connection.output.isEmpty {
            return flush(connection)
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        var peerClosed = false
        reading: while true {
            let result: IOResult<Int>
            do {
                result = try chunk.withUnsafeMutableBytes { try connection.source.fd.read(into: $0) }
            } catch {
                return drop(fd)
            }
            switch result {
            case .wouldBlock:
                break reading
            case .done(0):
                // The client half-closed: a complete request still gets its answer.
                peerClosed = true
                break reading
            case .done(let count):
                connection.buffer += chunk[0..<count]
                if connection.buffer.count > limits.maxRequestBytes {
                    return respond(connection, HTTPResponse(status: 431, reason: "Request Header Fields Too Large",
                                                            body: Array("request too large\n".utf8)), head: false)
                }
            }
        }
        switch Self.parse(connection.buffer) {
        case nil:
            if peerClosed { drop(fd) }
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

    /// The request in `buffer`, once its head is complete (nil until then). Read as bytes, line
    /// by line at CR LF: printable ASCII only (tabs too in headers), so that no control
    /// character (a bare CR or LF among them) reaches the path or a header, and no byte of
    /// another script hides a space from the split (a combining mark makes one Character of the
    /// space before it). Found by the fuzz target, as were the origin-form target ("GET ?" was
    /// served with an empty path) and the two versions (HTTP/1.10 passed for 1.1).
    public static func parse(_ buffer: [UInt8]) -> ParsedRequest? {
        guard let end = headEnd(buffer) else { return nil }
        let badRequest = ParsedRequest.refused(HTTPResponse(status: 400, reason: "Bad Request", body: Array("bad request\n".utf8)))
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < end {
            if buffer[index] == 13 && buffer[index + 1] == 10 {  // index + 1 <= end: the head ends in CR LF CR LF
                lines.append(buffer[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        lines.append(buffer[start..<end])
        let requestLine = lines[0]
        let parts = requestLine.split(separator: 0x20).map { String(decoding: $0, as: UTF8.self) }
        guard requestLine.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }), parts.count == 3, parts[1].hasPrefix("/"),
              parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0" else {
            return badRequest
        }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() where !line.isEmpty {
            // A line that is no "name: value", or holds anything but printable ASCII and tabs.
            guard line.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x09 }), let colon = line.firstIndex(of: UInt8(ascii: ":")),
                  colon != line.startIndex, line[..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                return badRequest
            }
            headers.add(String(decoding: line[..<colon], as: UTF8.self),
                        String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces)
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
        let fd = connection.source.fd.rawValue
        while connection.written < connection.output.count {
            let result = try? connection.output[connection.written...].withUnsafeBytes { try Socket(connection.source.fd).send($0) }
            switch result {
            case .done(let count)?:
                connection.written += count
            case .wouldBlock?:
                try? connection.source.setInterest(.writable)  // failing, the sweeper closes it in time
                return
            case nil:
                return drop(fd)  // the client went away: nothing left to tell it
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
        connection.source.cancel()
        if connections.isEmpty { sweeper.cancel() }  // asleep again once every client is gone
    }
}
