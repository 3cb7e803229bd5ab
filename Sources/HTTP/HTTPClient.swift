import Reactor
/// Why an HTTP exchange produced no response.
public enum HTTPClientError: Error, Equatable, CustomStringConvertible {
    case resolve(String)
    case connect(TCPConnectionError)
    /// No complete response within the response timeout.
    case timedOut
    /// The server closed the connection before the response was complete.
    case closed
    /// The server closed a fresh plain connection without a byte: what a TLS-only port does.
    case closedUnanswered
    /// Over TLS, a body delimited by the connection's end ended with a bare TCP close, without
    /// close_notify: it may have been cut anywhere, so it is not taken.
    case truncated
    case malformed(HTTPParseError)
    /// TLS could not be set up or broke: the handshake, the certificate, OpenSSL missing.
    case tls(TLSError)
    /// The request itself could not go on the wire (a header value with a line break).
    case invalidRequest(HTTPRequestError)
    /// What answered speaks another protocol; the text says which and what to do (a caller that
    /// knows more than the connection, such as a BitTorrent port found in the socket table).
    case otherProtocol(String)

    public var description: String {
        switch self {
        case .resolve(let message): message
        case .connect(let error): error.description
        case .timedOut: "no answer in time"
        case .closed: "connection closed before the answer was complete"
        case .closedUnanswered: "the server closed the connection without answering (if it serves https, use https:// in the URL)"
        case .truncated: "the answer was cut short: the connection ended without TLS close_notify inside a body that runs until the close"
        case .malformed(let error): error.description
        case .tls(let error): error.description
        case .invalidRequest(let error): error.description
        case .otherProtocol(let why): why
        }
    }

    /// Whether the server is simply not there (down, restarting, wrong port).
    public var isUnreachable: Bool {
        switch self {
        case .resolve, .connect, .otherProtocol: true
        default: false
        }
    }
}

/// An HTTP/1.1 client for one server, in the loop: one keep-alive connection, one request in
/// flight at a time (the rest wait in order), a connect timeout (one deadline for all of a
/// name's addresses, tried as `ConnectionRacer` staggers them) and a response timeout (which
/// also bounds a TLS handshake). A request that finds its reused keep-alive connection closed by
/// the server before any answer arrived is sent once more on a fresh connection, when the caller
/// allows it. An `https` URL puts a `TLSSession` between the connection and the parser.
public final class HTTPClient {
    public typealias Completion = (Result<HTTPResponse, HTTPClientError>) -> Void

    private struct Pending {
        let request: HTTPRequest
        let retryIfStale: Bool
        let completion: Completion
    }

    public let name: String
    /// Where to connect and whether with TLS; requests carry their own target and Host header.
    public let url: HTTPURL
    public let tls: TLSOptions
    public var sourceAddress: SocketAddress?
    public var connectTimeout: Duration
    public var responseTimeout: Duration

    private let loop: EventLoop
    private var connection: ConnectionRacer?
    /// The TLS session on `connection` (https only), and the context made at the first one.
    private var tlsSession: TLSSession?
    private var tlsContext: TLSContext?
    private let resolver: HostResolver
    /// The host's addresses, kept until a connection to none of them could be made.
    private var addresses: [SocketAddress] = []
    private var parser = HTTPResponseParser()
    private var queue: [Pending] = []
    private var inFlight: Pending?
    private var connectionReused = false
    private var bytesReceived = 0
    private var responseTimer: Timer!

    /// Connections made (each address tried counts), TLS handshakes that resumed a session, and
    /// requests sent: the benchmarks and tests read these.
    public private(set) var connectionsOpened = 0
    public private(set) var tlsResumptions = 0
    public private(set) var requestsSent = 0

    public init(loop: EventLoop, name: String, url: HTTPURL, tls: TLSOptions = TLSOptions(), sourceAddress: SocketAddress? = nil,
                connectTimeout: Duration = .seconds(5), responseTimeout: Duration = .seconds(10), resolver: ResolverConfiguration = .system) {
        self.loop = loop
        self.resolver = HostResolver(loop: loop, name: "\(name).dns", configuration: resolver)
        self.name = name
        self.url = url
        self.tls = tls
        self.sourceAddress = sourceAddress
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        responseTimer = loop.makeTimer(name: name) { [unowned self] in self.finish(.failure(.timedOut)) }
    }

    deinit {
        close()
    }

    public var isBusy: Bool { inFlight != nil || !queue.isEmpty }

    /// The address the connection in use went to.
    public var peer: SocketAddress? { connection?.peer }

    /// Sends `request`; `completion` runs once, from the loop, with the response or the reason
    /// there is none.
    public func send(_ request: HTTPRequest, retryIfStale: Bool = true, completion: @escaping Completion) {
        queue.append(Pending(request: request, retryIfStale: retryIfStale, completion: completion))
        pump()
    }

    /// Closes the kept-alive connection if nothing is in flight or waiting: an owner that is done
    /// for a while closes it itself rather than be woken when the server closes it.
    public func closeIdleConnection() {
        guard inFlight == nil, queue.isEmpty else { return }
        dropConnection()
    }

    /// Drops the connection and forgets every request: their completions never run, so an
    /// owner can call this from its deinit.
    public func close() {
        resolver.cancel()
        responseTimer.cancel()
        inFlight = nil
        queue.removeAll()
        dropConnection()
    }

    private func pump() {
        guard inFlight == nil, !queue.isEmpty else { return }
        let next = queue.removeFirst()
        inFlight = next
        bytesReceived = 0
        if let connection, connection.state == .connected {
            connectionReused = true
            transmit(next.request, on: connection)
            return
        }
        connectionReused = false
        openConnection()
    }

    /// Connects to the host: its IP literal, or the addresses a lookup found (kept until no
    /// connection to any of them could be made, then looked up again).
    private func openConnection() {
        dropConnection()
        if let numeric = SocketAddress(numericHost: url.bareHost, port: url.port) { addresses = [numeric] }
        guard addresses.isEmpty else { return connect(to: addresses) }
        resolver.resolve(url.bareHost, port: url.port) { [unowned self] result in
            switch result {
            case .success(let found):
                addresses = found
                connect(to: found)
            case .failure(let failure):
                finish(.failure(.resolve("cannot resolve \"\(url.bareHost)\": \(failure)")))
            }
        }
    }

    /// Looks the host name up again before the next connection (the configuration was reloaded).
    public func forgetAddresses() {
        addresses = []
    }

    private func connect(to addresses: [SocketAddress]) {
        let fresh = ConnectionRacer(loop: loop, name: name) { [unowned self] event in self.handle(event) }
        fresh.attemptStarted = { [unowned self] in connectionsOpened += 1 }
        connection = fresh
        fresh.connect(to: addresses, from: sourceAddress, timeout: connectTimeout)
    }

    private func transmit(_ request: HTTPRequest, on connection: ConnectionRacer) {
        let bytes: [UInt8]
        do {
            bytes = try request.serialized()
        } catch {
            return finish(.failure(.invalidRequest(error)))
        }
        parser = HTTPResponseParser()
        if request.method == "HEAD" { parser.expectNoBody() }
        requestsSent += 1
        responseTimer.schedule(after: responseTimeout)
        guard let tlsSession else { return connection.send(bytes) }
        do {
            try tlsSession.send(bytes)
        } catch {
            return finish(.failure(.tls(error)))
        }
        connection.send(tlsSession.takeOutput())
    }

    /// Starts the TLS handshake on a fresh connection; the request follows once it is done.
    private func startTLS(on connection: ConnectionRacer) {
        do throws(TLSError) {
            let context: TLSContext
            if let tlsContext {
                context = tlsContext
            } else {
                context = try TLSContext(options: tls)
                tlsContext = context
            }
            let session = try TLSSession(context: context, host: url.bareHost)
            tlsSession = session
            try session.start()
            responseTimer.schedule(after: responseTimeout)
            connection.send(session.takeOutput())
        } catch {
            finish(.failure(.tls(error)))
        }
    }

    /// Bytes from the network through TLS: plaintext for the parser, the handshake's answers
    /// back to the server, the request once the handshake is done.
    private func receiveTLS(_ bytes: [UInt8], session: TLSSession, pending: Pending) {
        let wasEstablished = session.isEstablished
        let plaintext: [UInt8]
        do {
            plaintext = try session.receive(bytes)
        } catch {
            return finish(.failure(.tls(error)))
        }
        let output = session.takeOutput()
        if !output.isEmpty { connection?.send(output) }
        if !wasEstablished && session.isEstablished, let connection {
            if session.isResumed { tlsResumptions += 1 }
            transmit(pending.request, on: connection)
        }
        if !plaintext.isEmpty { parse(plaintext) }
        if session.isClosed && session === tlsSession {
            // close_notify ends the stream as a clean close would; a server may wait for ours
            // before it closes the connection.
            dropConnection()
            handle(.closed(nil))
        }
    }

    private func parse(_ bytes: [UInt8]) {
        bytesReceived += bytes.count
        do {
            if let response = try parser.consume(bytes) {
                if !response.keepAlive { dropConnection() }
                finish(.success(response))
            }
        } catch {
            dropConnection()
            finish(.failure(.malformed(error)))
        }
    }

    private func handle(_ event: TCPConnection.Event) {
        switch event {
        case .connected:
            guard let inFlight, let connection else { return }
            if url.scheme == .https { return startTLS(on: connection) }
            transmit(inFlight.request, on: connection)
        case .received(let bytes):
            guard let inFlight else {
                // Bytes nobody asked for: the stream is out of step, so it cannot be trusted.
                dropConnection()
                return
            }
            if let tlsSession { return receiveTLS(bytes, session: tlsSession, pending: inFlight) }
            if bytesReceived == 0, let first = bytes.first, (0x14...0x17).contains(first) {
                // A TLS record (an alert, a handshake) where an HTTP status line belongs.
                return finish(.failure(.tls(TLSError("the server answered with TLS: use https:// in the URL"))))
            }
            parse(bytes)
        case .closed(let error):
            connection = nil
            defer { tlsSession = nil }
            if let tlsSession, !tlsSession.isEstablished, inFlight != nil {
                return finish(.failure(.tls(TLSError("the server closed the connection during the TLS handshake: is this an https port?"))))
            }
            guard let pending = inFlight else { return }
            if let error, bytesReceived == 0, !connectionReused || !pending.retryIfStale {
                return finish(.failure(connectionReused ? .closed : .connect(error)))
            }
            do {
                if let response = try parser.finish() {
                    // A body that runs until the close is whole only when TLS said so (close_notify
                    // makes the session drop itself first, so it is gone here when it came).
                    if let tlsSession, tlsSession.isEstablished { return finish(.failure(.truncated)) }
                    return finish(.success(response))
                }
            } catch {
                return finish(.failure(.malformed(error)))
            }
            if connectionReused && bytesReceived == 0 && pending.retryIfStale {
                // The server had closed the idle keep-alive connection: one fresh try.
                responseTimer.cancel()
                connectionReused = false
                openConnection()
                return
            }
            finish(.failure(!connectionReused && bytesReceived == 0 && url.scheme == .http ? .closedUnanswered : .closed))
        }
    }

    private func dropConnection() {
        connection?.close()
        connection = nil
        tlsSession = nil
    }

    private func finish(_ result: Result<HTTPResponse, HTTPClientError>) {
        responseTimer.cancel()
        guard let pending = inFlight else { return }
        inFlight = nil
        if case .failure(let error) = result {
            dropConnection()
            if error.isUnreachable { forgetAddresses() }
        }
        pending.completion(result)
        pump()
    }
}
