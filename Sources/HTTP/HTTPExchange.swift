import Reactor

/// The rules of an HTTP/1.1 client's exchanges with one server, with no I/O: `HTTPClient` is
/// its shell (the lookup, the connection, TLS) and feeds it what happened.
///
/// - One request in flight; the others wait in the order they came. The next one starts once
///   the owner has had the answer before it (`.answerTaken`), so that what the owner does in its
///   completion (close, send again) comes first.
/// - A request goes on the kept-alive connection when one is open, else on a fresh one; over
///   https a fresh one does the TLS handshake first, and the request goes once it is done. A
///   request is serialized as it goes: one that cannot be is `.invalidRequest`.
/// - Timeouts: the lookup and the connect have their own (the resolver's; the connect
///   timeout, one for all the addresses, reported as `.connect(.timedOut)`). The handshake has
///   one response timeout from its start, the answer one from the moment the request went.
/// - An answer is complete when the parser says so; the connection is kept when the answer
///   allows it (`keepAlive`). A body that runs until the close is complete at the close, over
///   TLS only with close_notify (else `.truncated`); an answer cut short is `.malformed`.
/// - A reused connection that ends before a byte of the answer came (the server had closed it
///   while it was idle) sends the request once more on a fresh connection, when the request
///   allows it. A fresh connection is never retried: its failure is the answer.
/// - A fresh plain connection the server ends without a byte is `.closedUnanswered` (what a
///   TLS-only port does); a TLS record where a status line belongs says to use https.
/// - Bytes when no answer is awaited put the stream out of step: the connection is closed.
/// - A failure closes the connection; one that says the server is not there (`isUnreachable`)
///   also forgets the host's addresses, so that the next connection looks them up again.
struct HTTPExchange: LoopStateMachine {
    enum Input {
        /// The owner sends `request`, named `id` in its `.completed`. `retryIfStale`: it may go
        /// once more on a fresh connection when the kept-alive one turns out to be dead.
        case requested(id: Int, HTTPRequest, retryIfStale: Bool)
        /// The owner has had the last answer (its completion ran): the next request may start.
        case answerTaken
        /// The owner is done for a while: the kept-alive connection goes, unless a request needs it.
        case idleCloseRequested
        /// The owner drops the connection and every request, unanswered.
        case closeRequested
        /// No address for the host, and why.
        case lookupFailed(String)
        case connected
        case tlsEstablished
        /// TLS could not be set up, or its handshake, a read or a write failed.
        case tlsFailed(TLSError)
        /// Bytes from the server: over https, the plaintext (bytes no request waits for come as
        /// they are, not decrypted).
        case received([UInt8])
        /// The connection ended (nil: cleanly), or could not be made.
        case closed(TCPConnectionError?)
        /// The server ended the TLS stream with close_notify.
        case closeNotified
        case deadlineReached
    }

    enum Effect: Equatable {
        /// Connect afresh, closing what is left of the last connection: to the IP literal, the
        /// addresses found before, or those a lookup finds.
        case openConnection
        /// Start the TLS handshake on the connection just made.
        case startTLS
        /// A request's bytes for the connection (through TLS over https).
        case send([UInt8])
        /// Close the connection, or stop making it.
        case closeConnection
        /// Look the host up again before the next connection.
        case forgetAddresses
        /// The request `id` is answered, or why not.
        case completed(id: Int, Result<HTTPResponse, HTTPClientError>)
    }

    private struct Request {
        let id: Int
        let request: HTTPRequest
        let retryIfStale: Bool
    }

    private enum Phase {
        case idle
        /// A fresh connection is being made (a lookup first, if need be).
        case connecting
        case handshaking(deadline: Instant)
        case awaitingAnswer(deadline: Instant)
    }

    let usesTLS: Bool
    let responseTimeout: Duration
    /// Requests that went on the wire (a retry counts again).
    private(set) var requestsSent = 0

    private var phase = Phase.idle
    private var current: Request?
    private var waiting: [Request] = []
    /// A connection is up (over https, with its TLS session): a request can go on it.
    private var connectionOpen = false
    /// The request in flight went on a connection an earlier one used.
    private var reused = false
    private var bytesReceived = 0
    private var parser = HTTPResponseParser()

    init(usesTLS: Bool, responseTimeout: Duration) {
        self.usesTLS = usesTLS
        self.responseTimeout = responseTimeout
    }

    var isBusy: Bool { current != nil || !waiting.isEmpty }

    var nextDeadline: Instant? {
        switch phase {
        case .handshaking(let deadline), .awaitingAnswer(let deadline): deadline
        case .idle, .connecting: nil
        }
    }

    mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        switch input {
        case .requested(let id, let request, let retryIfStale):
            waiting.append(Request(id: id, request: request, retryIfStale: retryIfStale))
            return startNext(now)
        case .answerTaken:
            return startNext(now)
        case .idleCloseRequested:
            guard !isBusy, connectionOpen else { return [] }
            connectionOpen = false
            return [.closeConnection]
        case .closeRequested:
            phase = .idle
            current = nil
            waiting = []
            connectionOpen = false
            return [.closeConnection]
        case .lookupFailed(let message):
            guard case .connecting = phase else { return [] }
            return finish(.failure(.resolve(message)))
        case .connected:
            guard case .connecting = phase else { return [] }
            connectionOpen = true
            guard usesTLS else { return transmit(now) }
            phase = .handshaking(deadline: now + responseTimeout)
            return [.startTLS]
        case .tlsEstablished:
            guard case .handshaking = phase else { return [] }
            return transmit(now)
        case .tlsFailed(let error):
            return finish(.failure(.tls(error)))
        case .received(let bytes):
            return received(bytes)
        case .closed(let error):
            connectionOpen = false
            return connectionEnded(error, closeNotified: false)
        case .closeNotified:
            // The stream ended as a clean close would; a server may wait for ours.
            connectionOpen = false
            return [.closeConnection] + connectionEnded(nil, closeNotified: true)
        case .deadlineReached:
            guard let deadline = nextDeadline, now >= deadline else { return [] }
            return finish(.failure(.timedOut))
        }
    }

    private mutating func startNext(_ now: Instant) -> [Effect] {
        guard current == nil, !waiting.isEmpty else { return [] }
        current = waiting.removeFirst()
        bytesReceived = 0
        parser = HTTPResponseParser()
        reused = connectionOpen
        guard reused else {
            phase = .connecting
            return [.openConnection]
        }
        return transmit(now)
    }

    private mutating func transmit(_ now: Instant) -> [Effect] {
        guard let request = current?.request else { return [] }
        let bytes: [UInt8]
        do {
            bytes = try request.serialized()
        } catch {
            return finish(.failure(.invalidRequest(error)))
        }
        if request.method == "HEAD" { parser.expectNoBody() }
        requestsSent += 1
        phase = .awaitingAnswer(deadline: now + responseTimeout)
        return [.send(bytes)]
    }

    private mutating func received(_ bytes: [UInt8]) -> [Effect] {
        guard case .awaitingAnswer = phase else {
            // Bytes nobody asked for: the stream is out of step, so it cannot be trusted.
            guard current == nil else { return finish(.failure(.closed)) }
            connectionOpen = false
            return [.closeConnection]
        }
        if !usesTLS, bytesReceived == 0, let first = bytes.first, (0x14...0x17).contains(first) {
            // A TLS record (an alert, a handshake) where an HTTP status line belongs.
            return finish(.failure(.tls(TLSError("the server answered with TLS: use https:// in the URL"))))
        }
        bytesReceived += bytes.count
        do {
            guard let response = try parser.consume(bytes) else { return [] }
            guard !response.keepAlive else { return finish(.success(response)) }
            connectionOpen = false
            return [.closeConnection] + finish(.success(response))
        } catch {
            return finish(.failure(.malformed(error)))
        }
    }

    /// The connection is gone (`connectionOpen` is already false).
    private mutating func connectionEnded(_ error: TCPConnectionError?, closeNotified: Bool) -> [Effect] {
        // An idle kept-alive connection the server closed: the next request connects afresh.
        guard let request = current else { return [] }
        if case .handshaking = phase {
            return finish(.failure(.tls(TLSError("the server closed the connection during the TLS handshake: is this an https port?"))))
        }
        let stale = reused && bytesReceived == 0 && request.retryIfStale
        if let error, bytesReceived == 0, !stale {
            return finish(.failure(reused ? .closed : .connect(error)))
        }
        do {
            if let response = try parser.finish() {
                // A body that runs until the close is whole over TLS only when close_notify said so.
                return finish(usesTLS && !closeNotified ? .failure(.truncated) : .success(response))
            }
        } catch {
            return finish(.failure(.malformed(error)))
        }
        if stale {
            // The server had closed the idle keep-alive connection: one fresh try.
            reused = false
            phase = .connecting
            return [.openConnection]
        }
        return finish(.failure(!reused && bytesReceived == 0 && !usesTLS ? .closedUnanswered : .closed))
    }

    private mutating func finish(_ result: Result<HTTPResponse, HTTPClientError>) -> [Effect] {
        guard let request = current else { return [] }
        current = nil
        phase = .idle
        var effects: [Effect] = []
        if case .failure(let error) = result {
            if connectionOpen { effects.append(.closeConnection) }
            connectionOpen = false
            if error.isUnreachable { effects.append(.forgetAddresses) }
        }
        return effects + [.completed(id: request.id, result)]
    }
}
