import Reactor
/// Why an HTTP exchange produced no response.
public enum HTTPClientError: Error, Equatable, Sendable, CustomStringConvertible {
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
/// allows it. An `https` URL puts a `TLSSession` between the connection and the parser. The
/// rules are `HTTPExchange`'s; this shell looks the host up, connects, runs TLS and reports.
public final class HTTPClient {
    public typealias Completion = (Result<HTTPResponse, HTTPClientError>) -> Void

    public let name: String
    /// Where to connect and whether with TLS; requests carry their own target and Host header.
    public let url: HTTPURL
    public let tls: TLSOptions
    public var sourceAddress: SocketAddress?
    /// When set, the host's name is looked up through this interface alone (a tunnel: the
    /// resolver configuration's name servers, or resolv.conf's that it can reach), never over
    /// other routes.
    public var lookupRoute: LookupRoute?
    public var connectTimeout: Duration

    private let loop: EventLoop
    private let resolver: HostResolver
    private let runner: MachineRunner<HTTPExchange>
    private var connection: ConnectionRacer?
    /// The TLS session on `connection` (https only), and the context made at the first one.
    private var tlsSession: TLSSession?
    private var tlsContext: TLSContext?
    /// The host's addresses, kept until a connection to none of them could be made.
    private var addresses: [SocketAddress] = []
    /// The completions of the requests not answered yet, by the id the exchange knows them by.
    private var completions: [Int: Completion] = [:]
    private var lastRequestID = 0

    /// Connections made (each address tried counts), TLS handshakes that resumed a session, and
    /// requests sent: the benchmarks and tests read these.
    public private(set) var connectionsOpened = 0
    public private(set) var tlsResumptions = 0
    public var requestsSent: Int { runner.machine.requestsSent }

    public init(loop: EventLoop, name: String, url: HTTPURL, tls: TLSOptions = TLSOptions(), sourceAddress: SocketAddress? = nil,
                connectTimeout: Duration = .seconds(5), responseTimeout: Duration = .seconds(10), resolver: ResolverConfiguration = .system) {
        self.loop = loop
        self.resolver = HostResolver(loop: loop, name: "\(name).dns", configuration: resolver)
        self.name = name
        self.url = url
        self.tls = tls
        self.sourceAddress = sourceAddress
        self.connectTimeout = connectTimeout
        runner = MachineRunner(loop: loop, name: name, machine: HTTPExchange(usesTLS: url.scheme == .https, responseTimeout: responseTimeout),
                               deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
    }

    /// Stops the lookup and the connection itself, not through the exchange, whose effects would
    /// call back into a client already going away.
    deinit {
        runner.stop()
        closeConnection()
    }

    public var responseTimeout: Duration { runner.machine.responseTimeout }

    /// A request's completion has yet to run (also while the exchange has yet to hear of a
    /// request sent from a completion).
    public var isBusy: Bool { !completions.isEmpty }

    /// The address the connection in use went to.
    public var peer: SocketAddress? { connection?.peer }

    /// Sends `request`; `completion` runs once, from the loop, with the response or the reason
    /// there is none.
    public func send(_ request: HTTPRequest, retryIfStale: Bool = true, completion: @escaping Completion) {
        lastRequestID += 1
        completions[lastRequestID] = completion
        runner.send(.requested(id: lastRequestID, request, retryIfStale: retryIfStale))
    }

    /// Closes the kept-alive connection if nothing is in flight or waiting: an owner that is done
    /// for a while closes it itself rather than be woken when the server closes it.
    public func closeIdleConnection() {
        runner.send(.idleCloseRequested)
    }

    /// Drops the connection and forgets every request: their completions never run, so an
    /// owner can call this from its deinit.
    public func close() {
        completions = [:]
        runner.send(.closeRequested)
    }

    /// Looks the host name up again before the next connection (the configuration was reloaded).
    public func forgetAddresses() {
        addresses = []
    }

    private func perform(_ effect: HTTPExchange.Effect) {
        switch effect {
        case .openConnection:
            openConnection()
        case .startTLS:
            startTLS()
        case .send(let bytes):
            transmit(bytes)
        case .closeConnection:
            closeConnection()
        case .forgetAddresses:
            forgetAddresses()
        case .completed(let id, let result):
            completions.removeValue(forKey: id)?(result)
            runner.send(.answerTaken)
        }
    }

    /// Connects to the host: its IP literal, or the addresses a lookup found (kept until no
    /// connection to any of them could be made, then looked up again).
    private func openConnection() {
        dropConnection()
        if let numeric = SocketAddress(numericHost: url.bareHost, port: url.port) { addresses = [numeric] }
        guard addresses.isEmpty else { return connect(to: addresses) }
        resolver.resolve(url.bareHost, port: url.port, through: lookupRoute) { [unowned self] result in
            switch result {
            case .success(let found):
                addresses = found
                connect(to: found)
            case .failure(let failure):
                runner.send(.lookupFailed("cannot resolve \"\(url.bareHost)\": \(failure)"))
            }
        }
    }

    private func connect(to addresses: [SocketAddress]) {
        let fresh = ConnectionRacer(loop: loop, name: name) { [unowned self] event in self.handle(event) }
        fresh.attemptStarted = { [unowned self] in connectionsOpened += 1 }
        connection = fresh
        fresh.connect(to: addresses, from: sourceAddress, timeout: connectTimeout)
    }

    private func transmit(_ bytes: [UInt8]) {
        guard let tlsSession else {
            connection?.send(bytes)
            return
        }
        do {
            try tlsSession.send(bytes)
        } catch {
            return runner.send(.tlsFailed(error))
        }
        connection?.send(tlsSession.takeOutput())
    }

    /// Starts the TLS handshake on a fresh connection; the request follows once it is done.
    private func startTLS() {
        do throws(TLSError) {
            let context: TLSContext
            if let tlsContext {
                context = tlsContext
            } else {
                context = try TLSContext(options: tls)
                tlsContext = context
            }
            let session = try TLSSession(context: context, host: tls.serverName ?? url.bareHost)
            tlsSession = session
            try session.start()
            connection?.send(session.takeOutput())
        } catch {
            runner.send(.tlsFailed(error))
        }
    }

    private func handle(_ event: TCPConnection.Event) {
        switch event {
        case .connected:
            runner.send(.connected)
        case .received(let bytes):
            // Only what a request waits for is decrypted: bytes nobody asked for go as they
            // came, and the exchange closes the connection.
            guard let tlsSession, isBusy else { return runner.send(.received(bytes)) }
            receiveTLS(bytes, session: tlsSession)
        case .closed(let error):
            connection = nil
            tlsSession = nil
            runner.send(.closed(error))
        }
    }

    /// Bytes from the network through TLS: plaintext for the exchange, the handshake's answers
    /// back to the server. Each step may end the connection (a write that failed, an answer
    /// that closes it): what comes after is then not the exchange's.
    private func receiveTLS(_ bytes: [UInt8], session: TLSSession) {
        let wasEstablished = session.isEstablished
        let plaintext: [UInt8]
        do {
            plaintext = try session.receive(bytes)
        } catch {
            return runner.send(.tlsFailed(error))
        }
        let output = session.takeOutput()
        if !output.isEmpty { connection?.send(output) }
        guard session === tlsSession else { return }
        if !wasEstablished && session.isEstablished {
            if session.isResumed { tlsResumptions += 1 }
            runner.send(.tlsEstablished)
        }
        if !plaintext.isEmpty && session === tlsSession { runner.send(.received(plaintext)) }
        if session.isClosed && session === tlsSession { runner.send(.closeNotified) }
    }

    /// Closes the connection and stops the lookup that would make one.
    private func closeConnection() {
        resolver.cancel()
        dropConnection()
    }

    private func dropConnection() {
        connection?.close()
        connection = nil
        tlsSession = nil
    }
}
