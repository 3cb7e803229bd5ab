import Reactor

extension PortObservation.Source {
    /// The file the ProtonVPN app writes: a hint, repeated from its own NAT-PMP client.
    public static let protonFile = PortObservation.Source("proton-file", rank: .hint, title: "port file", spokenName: "the ProtonVPN file")
}

/// A file that holds the forwarded port, watched through its directory.
public struct PortFileSettings: PortSourceSettings, Equatable {
    public static let defaultAdvice = "connect the VPN with port forwarding on"

    /// The watcher's name in logs and traces: `proton.file`.
    public var name: String
    public var path: String
    public var identity: PortObservation.Source
    public var portIndex: Int
    /// What to do while it names no port, for `doctor` and `once`.
    public var advice: String

    public init(name: String, path: String, identity: PortObservation.Source, portIndex: Int = 0, advice: String = defaultAdvice) {
        self.name = name
        self.path = path
        self.identity = identity
        self.portIndex = portIndex
        self.advice = advice
    }

    public var summary: String { "\(identity.spokenName) \(path)" }

    public func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource {
        PortFileWatcher(loop: loop, name: name, path: path, source: identity, portIndex: portIndex, advice: advice)
    }
}
