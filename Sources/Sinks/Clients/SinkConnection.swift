import HTTP
import Reactor

/// A sink's way to its client's API, shared by every sink shell: an `HTTPClient` with the
/// settings' URL, TLS options and connect and response timeout, made again when one of them
/// changes, and one trace line per request and per answer (method, target, status, size, time;
/// never a body, a header, a cookie or a password). A failure that a BitTorrent port explains
/// is reported as that (`BitTorrentPort`).
final class SinkConnection {
    /// The trace name, e.g. `qbittorrent.movies.http`.
    let name: String
    private let loop: EventLoop
    private let sourceAddress: SocketAddress?
    private var url: HTTPURL
    private var tls: TLSOptions
    private var timeout: Duration
    private var client: HTTPClient

    init(loop: EventLoop, name: String, url: HTTPURL, tls: TLSOptions, timeout: Duration, sourceAddress: SocketAddress? = nil) {
        self.loop = loop
        self.name = name
        self.url = url
        self.tls = tls
        self.timeout = timeout
        self.sourceAddress = sourceAddress
        client = Self.makeClient(loop, name, url, tls, timeout, sourceAddress)
    }

    deinit { client.close() }

    /// TCP connections opened: one per client session while keep-alive holds.
    var connectionsOpened: Int { client.connectionsOpened }
    /// Connections that resumed a TLS session.
    var tlsResumptions: Int { client.tlsResumptions }

    /// A new URL, TLS options or timeout makes a new HTTP client; the same ones look the host
    /// name up again (a reload). True when a request was in flight and is abandoned (its
    /// completion never runs: the owner says `.requestFailed(.closed)` itself).
    func update(url: HTTPURL, tls: TLSOptions, timeout: Duration) -> Bool {
        guard url != self.url || tls != self.tls || timeout != self.timeout else {
            client.forgetAddresses()
            return false
        }
        let abandoned = client.isBusy
        client.close()
        self.url = url
        self.tls = tls
        self.timeout = timeout
        client = Self.makeClient(loop, name, url, tls, timeout, sourceAddress)
        return abandoned
    }

    func send(_ request: HTTPRequest, retryIfStale: Bool, _ completion: @escaping HTTPClient.Completion) {
        let logger = loop.logger
        logger.trace(name, "→ \(request.method) \(request.target)")
        let started = loop.clock.now()
        client.send(request, retryIfStale: retryIfStale) { [unowned self] result in
            let elapsed = (self.loop.clock.now() - started).milliseconds
            switch result {
            case .success(let response):
                logger.trace(self.name, "← \(response.status) \(request.target) (\(response.body.count) bytes, \(elapsed.formatted) ms)")
            case .failure(let error):
                logger.trace(self.name, "← \(request.target) failed: \(error)")
                if let diagnosis = BitTorrentPort.diagnosis(self.url, error) { return completion(.failure(diagnosis)) }
            }
            completion(result)
        }
    }

    /// Done for now: close the connection before the client closes it (and wakes us).
    func closeIdleConnection() {
        client.closeIdleConnection()
    }

    private static func makeClient(_ loop: EventLoop, _ name: String, _ url: HTTPURL, _ tls: TLSOptions, _ timeout: Duration,
                                   _ sourceAddress: SocketAddress?) -> HTTPClient {
        HTTPClient(loop: loop, name: name, url: url, tls: tls, sourceAddress: sourceAddress,
                   connectTimeout: timeout, responseTimeout: timeout)
    }
}

extension Double {
    /// One decimal: "2.3".
    var formatted: String {
        let tenths = (self * 10).rounded()
        return "\(Int(tenths) / 10).\(abs(Int(tenths) % 10))"
    }
}
