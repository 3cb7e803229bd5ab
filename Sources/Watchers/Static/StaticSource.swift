import Domain
import Reactor

extension PortObservation.Source {
    /// A port someone forwards by hand or by contract (AirVPN, TorGuard, a router rule).
    public static let staticPort = PortObservation.Source("static", rank: .hint, title: "static port", spokenName: "the configured port")
}

/// `[static] port`: a port that does not move. Nothing is asked; everything after the source
/// (drift repair, the listener check, the re-announce) is the same as for any other.
public struct StaticSourceSettings: PortSourceSettings, Equatable {
    public var port: Port

    public init(port: Port) {
        self.port = port
    }

    public var identity: PortObservation.Source { .staticPort }
    public var summary: String { "the static port \(port)" }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        StaticSource(loop: loop, port: port)
    }
}

/// Names its port once, at the start.
public final class StaticSource: PortSource {
    public let identity = PortObservation.Source.staticPort
    public var onObservation: ((PortObservation) -> Void)?
    /// Never called: the status is set once, with the observation.
    public var onStatusChange: (() -> Void)?
    private let loop: EventLoop
    private let port: Port
    private var started = false

    public init(loop: EventLoop, port: Port) {
        self.loop = loop
        self.port = port
    }

    public func start() throws {
        started = true
        onObservation?(PortObservation(source: identity, port: port, time: loop.now))
    }

    public func stop(final: Bool) {
        started = false
    }

    public func clientsVerified(_ port: Port) {}

    public var status: SourceStatus {
        var status = SourceStatus()
        status.detail = "[static] port"
        if started { status.state = .forwarding(port) }
        return status
    }
}
