import Domain
import HTTP
import Reactor

/// Keeps qBittorrent's `listen_port` on the desired port: the shell around `QBittorrentSession`.
/// It owns the connection and the timer, turns their events into inputs and carries out the
/// session's effects. Everything runs in the loop; nothing blocks.
public final class QBittorrentSink: PortSink {
    /// `qbittorrent.http`, `qbittorrent.movies.http`: the label's.
    public let name: String
    public var onStatusChange: ((SinkStatus) -> Void)?

    private let loop: EventLoop
    private var runner: MachineRunner<QBittorrentSession>!
    private let connection: SinkConnection
    private var session: QBittorrentSession { runner.machine }

    /// `sourceAddress`: bind the client's socket to it (tests use 127.0.0.2 to keep a ban
    /// away from 127.0.0.1).
    public init(loop: EventLoop, settings: QBittorrentSettings, sourceAddress: SocketAddress? = nil) {
        self.loop = loop
        name = "\(settings.label).http"
        connection = SinkConnection(loop: loop, name: name, url: settings.url, tls: settings.tls, timeout: settings.requestTimeout,
                                    sourceAddress: sourceAddress)
        runner = MachineRunner(loop: loop, name: "\(settings.label).timer", machine: QBittorrentSession(settings: settings),
                               deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.afterBatch = { [unowned self] in
            // Done for now: close the connection before qBittorrent closes it (~8 s later) and wakes us.
            if self.session.inFlight == nil { self.connection.closeIdleConnection() }
        }
    }

    deinit {
        runner.stop()
    }

    public var title: String { "qBittorrent\(session.status.version.map { " \($0)" } ?? "")" }
    public var status: SinkStatus { session.status }
    public var counters: SinkCounters { session.counters }
    public var settings: QBittorrentSettings { session.settings }
    /// What one torrent's trackers said after the last re-announce.
    public var trackerReport: QBittorrentAPI.TrackerReport? { session.trackerReport }
    /// The last re-announce qBittorrent accepted, and what was known of its listener then.
    var announced: (port: Port, listener: ListenerGate.Listener?)? { session.announced }
    /// TCP connections the client opened: one per qBittorrent session while keep-alive holds;
    /// over HTTPS, how many of them resumed the TLS session (none with qBittorrent's own HTTPS,
    /// which issues no tickets; a proxy's usually does).
    public var connectionsOpened: Int { connection.connectionsOpened }
    public var tlsResumptions: Int { connection.tlsResumptions }

    public func apply(_ change: PortChange) {
        handle(.desiredPort(change.port))
    }

    /// qBittorrent ignores a port equal to its own (`SessionImpl::setPort`): a reassert moves
    /// it one port away and back, and libtorrent opens new sockets each time.
    public var canReopenListener: Bool { true }

    public func reassert() {
        handle(.reassert)
    }

    public func connect() {
        handle(.connect)
    }

    /// qBittorrent's connect changes nothing on it: it is the check.
    public func inspect() {
        handle(.connect)
    }

    public func interfacesChanged() {
        handle(.interfacesChanged)
    }

    public func observeConnection() {
        handle(.observeConnection)
    }

    public func update(_ settings: any PortSinkSettings) -> Bool {
        guard let settings = settings as? QBittorrentSettings else { return false }
        update(settings)
        return true
    }

    /// New settings (a reloaded configuration): a changed password or URL ends a login refusal;
    /// the host name is looked up again either way.
    public func update(_ settings: QBittorrentSettings) {
        if connection.update(url: settings.url, tls: settings.tls, timeout: settings.requestTimeout) { handle(.requestFailed(.closed)) }
        handle(.settingsChanged(settings))
    }

    /// The session cookie in use, for tests that end the session from outside.
    var sessionCookie: String? { session.cookie }

    private func handle(_ input: QBittorrentSession.Input) {
        runner.send(input)
    }

    private func perform(_ effect: QBittorrentSession.Effect) {
        let logger = loop.logger
        switch effect {
        case .send(let request, let retryIfStale):
            connection.send(request, retryIfStale: retryIfStale) { [unowned self] result in
                switch result {
                case .success(let response): self.handle(.responseReceived(response))
                case .failure(let error): self.handle(.requestFailed(error))
                }
            }
        case .checkListener(let port):
            let check = ListeningSockets.check(port: port.value)
            logger.debug(name, "socket table, port \(port): \(check)")
            runner.send(.listenerChecked(check))
        case .checkListenerBeforeAnnouncing(let port):
            let check = ListeningSockets.check(port: port.value)
            logger.trace(name, "socket table before telling the trackers, port \(port): \(check)")
            runner.send(.listenerCheckedBeforeAnnouncing(check))
        case .log(let level, let message):
            logger.log(level, name, message)
        case .statusChanged(let status):
            onStatusChange?(status)
        }
    }
}

extension QBittorrentSession: LoopStateMachine {}
