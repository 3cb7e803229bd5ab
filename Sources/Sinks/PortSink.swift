import Domain
import Reactor

/// A client whose listening port portsync keeps equal to the desired port. The daemon holds a
/// list of them and talks to each only through this protocol, so another kind of client is a
/// folder of its own plus its settings. Implementations run in the loop and never block.
public protocol PortSink: AnyObject {
    /// The stable dotted name used in logs and traces, e.g. `qbittorrent.http`.
    var name: String { get }
    /// The client in words for STATUS= and `status`, e.g. "qBittorrent v4.5.2".
    var title: String { get }
    var status: SinkStatus { get }
    var counters: SinkCounters { get }
    /// Called after every status change, from the loop.
    var onStatusChange: ((SinkStatus) -> Void)? { get set }
    /// Checks the client at once, before there is a port: reachable, logged in, its version,
    /// its port settings (read once: `SinkStatus.inspection`); each result is logged in one
    /// line and shows in `status`. A refused login is not retried.
    func connect()
    /// The same check, changing nothing on the client (`portsync doctor`): done when the status
    /// has its `inspection`, or a health that is not pending.
    func inspect()
    /// Ask the client what it says of its own connectability (`SinkStatus.connection`), when
    /// it says anything; the answer comes as a status change.
    func observeConnection()
    /// Makes the client listen on the change's port, verifies it, and keeps it there.
    func apply(_ change: PortChange)
    /// Make the client re-open its listening sockets on the same port.
    func reassert()
    /// `reassert` really re-opens the client's listener (it moves the port away and back).
    var canReopenListener: Bool { get }
    /// The network interfaces changed (the tunnel came back or was recreated): make sure the
    /// client's listener is not left on a vanished interface, repairing it once if it is.
    func interfacesChanged()
    /// New settings from a reloaded configuration; false when they are another kind of
    /// client's (the owner then replaces this sink).
    func update(_ settings: any PortSinkSettings) -> Bool
}

/// What the configuration says about one client: enough to make its sink.
public protocol PortSinkSettings: Sendable {
    /// Names the client across reloads and in metrics labels, e.g. `qbittorrent`.
    var label: String { get }
    /// The client and where it is, for the start line: "qBittorrent at http://127.0.0.1:8080".
    var summary: String { get }
    /// Which of the source's forwarded ports this client takes (`PortChange.ports`); nil: the
    /// source's own choice (`[gluetun] port_index`).
    var portIndex: Int? { get }
    /// The client runs on this machine: its sockets show in the kernel's socket table here.
    var listenerVisible: Bool { get }
    func makeSink(loop: EventLoop) -> any PortSink
}

extension PortSinkSettings {
    public var listenerVisible: Bool { false }
}

extension PortSink {
    public var canReopenListener: Bool { false }

    public func observeConnection() {}

    /// Hands over a port with no history (`once`, tests).
    public func apply(_ port: Port) {
        apply(PortChange(port: port))
    }
}
