import Reactor

/// A client whose listening port portsync keeps equal to the desired port (qBittorrent first).
/// Implementations run in the loop and never block.
public protocol PortSink: AnyObject {
    /// The stable dotted name used in logs and traces, e.g. `qbittorrent.http`.
    var name: String { get }
    /// Makes the client listen on `port`, verifies it, and keeps it there.
    func apply(_ port: Port)
    /// Make the client re-open its listening sockets on the same port.
    func reassert()
    /// The network interfaces changed (the tunnel came back or was recreated): make sure the
    /// client's listener is not left on a vanished interface, repairing it once if it is.
    func interfacesChanged()
}
