import HTTP
import Reactor

/// The shell around a `ClientSinkSession` (`TransmissionSink`, `DelugeSink`): it owns the
/// connection and the timer, turns their events into inputs and carries out the session's
/// effects, as `QBittorrentSink` does for qBittorrent. Everything runs in the loop.
public final class ClientSink<Session: ClientSinkSession>: PortSink {
    /// `transmission.http`, `deluge.seedbox.http`: the label's.
    public let name: String
    public var onStatusChange: ((SinkStatus) -> Void)?

    private let loop: EventLoop
    private var runner: MachineRunner<Session>!
    private let connection: SinkConnection

    /// `sourceAddress`: bind the client's socket to it.
    public init(loop: EventLoop, label: String, settings: ClientSettings, sourceAddress: SocketAddress? = nil) {
        self.loop = loop
        name = "\(label).http"
        connection = SinkConnection(loop: loop, name: name, url: settings.url, tls: settings.tls, timeout: settings.requestTimeout,
                                    sourceAddress: sourceAddress)
        runner = MachineRunner(loop: loop, name: "\(label).timer", machine: Session(settings: settings), deadlineInput: .deadlineReached)
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.afterBatch = { [unowned self] in
            if !self.session.isBusy { self.connection.closeIdleConnection() }
        }
    }

    deinit {
        runner.stop()
    }

    public var session: Session { runner.machine }
    public var title: String { session.title }
    public var status: SinkStatus { session.status }
    public var counters: SinkCounters { session.counters }
    public var settings: ClientSettings { session.settings }

    public func apply(_ change: PortChange) {
        runner.send(.desiredPort(change.port))
    }

    /// Transmission and Deluge re-open their listener when their port is written with another
    /// value, never for their own (a bind that failed stays failed): a reassert moves the port
    /// one away and back.
    public var canReopenListener: Bool { true }

    public func reassert() {
        runner.send(.reassert)
    }

    public func connect() {
        runner.send(.connect)
    }

    public func inspect() {
        runner.send(.inspect)
    }

    public func interfacesChanged() {}

    public func update(_ settings: any PortSinkSettings) -> Bool {
        guard let settings = settings as? ClientSinkSettings<Session> else { return false }
        update(settings.client)
        return true
    }

    /// New settings (a reloaded configuration): a changed URL or account ends a login refusal.
    public func update(_ settings: ClientSettings) {
        if connection.update(url: settings.url, tls: settings.tls, timeout: settings.requestTimeout) { runner.send(.requestFailed(.closed)) }
        runner.send(.settingsChanged(settings))
    }

    private func perform(_ effect: ClientSessionEffect) {
        switch effect {
        case .send(let request, let retryIfStale):
            connection.send(request, retryIfStale: retryIfStale) { [unowned self] result in
                switch result {
                case .success(let response): self.runner.send(.responseReceived(response))
                case .failure(let error): self.runner.send(.requestFailed(error))
                }
            }
        case .log(let level, let message):
            loop.logger.log(level, name, message)
        case .statusChanged(let status):
            onStatusChange?(status)
        case .checkListener(let port):
            let check = ListeningSockets.check(port: port.value)
            loop.logger.trace(name, "socket table before telling the trackers, port \(port): \(check)")
            runner.send(.listenerChecked(check))
        }
    }
}

/// What the configuration says about one Transmission or Deluge: its label and its settings.
public struct ClientSinkSettings<Session: ClientSinkSession>: PortSinkSettings, Equatable {
    /// `transmission` for `[transmission]`, `transmission.NAME` for `[transmission.NAME]`.
    public var label: String
    public var client: ClientSettings
    public var portIndex: Int?

    public init(label: String, client: ClientSettings, portIndex: Int? = nil) {
        self.label = label
        self.client = client
        self.portIndex = portIndex
    }

    public var summary: String {
        "\(Session.clientName) at \(client.url)\(label == Session.clientName.lowercased() ? "" : " (\(label))")"
    }

    public var listenerVisible: Bool { client.canSeeListener }

    public func makeSink(loop: EventLoop) -> any PortSink {
        ClientSink<Session>(loop: loop, label: label, settings: client)
    }
}

public typealias TransmissionSink = ClientSink<TransmissionSession>
public typealias TransmissionSettings = ClientSinkSettings<TransmissionSession>
public typealias DelugeSink = ClientSink<DelugeSession>
public typealias DelugeSettings = ClientSinkSettings<DelugeSession>
