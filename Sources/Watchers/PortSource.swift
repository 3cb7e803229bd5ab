import Domain
import Reactor

/// A place the forwarded port comes from: a file, a gateway, a control server. The daemon, `once`
/// and `doctor` hold a list of them and hear from each only through this protocol, as they talk
/// to clients through `PortSink`, so another source is a folder of its own plus its settings.
/// Implementations run in the loop and never block.
public protocol PortSource: AnyObject {
    var identity: PortObservation.Source { get }
    var status: SourceStatus { get }
    /// Each port (or "no port") the source names, from the loop.
    var onObservation: ((PortObservation) -> Void)? { get set }
    /// After a change of `status` that no observation carries (the tunnel, a failed cycle).
    var onStatusChange: (() -> Void)? { get set }
    func start() throws
    /// `final`: portsync itself stops (a gateway may then be told to drop its mappings), not a
    /// reload.
    func stop(final: Bool)
    /// Every client was verified on `port`: a source that asks for a port asks for this one.
    func clientsVerified(_ port: Port)
    /// Peers cannot reach the port although everything here looks right: a source that maps
    /// it at a gateway asks for the mapping again now (the others have nothing to do).
    func remap()
}

extension PortSource {
    public func remap() {}
}

/// What the configuration says about one source: enough to make it.
public protocol PortSourceSettings: Sendable {
    var identity: PortObservation.Source { get }
    /// The source and where it is, for the start line: "NAT-PMP on wg0".
    var summary: String { get }
    /// The interface the source speaks through, when it has one of its own: a client's
    /// `bind_interface` binds to it.
    var tunnelInterface: String? { get }
    /// `memory`: what the last run (the state file) left for it.
    func makeSource(loop: EventLoop, memory: SourceMemory) -> any PortSource
    /// The same settings: a reload that keeps them keeps the source running.
    func isSame(as other: any PortSourceSettings) -> Bool
}

extension PortSourceSettings {
    public var tunnelInterface: String? { nil }
}

extension PortSourceSettings where Self: Equatable {
    public func isSame(as other: any PortSourceSettings) -> Bool { (other as? Self) == self }
}

/// What a source left for the next run, from the state file.
public struct SourceMemory: Equatable, Sendable {
    /// The port the clients were last verified on.
    public var port: Port?
    /// The source's own `SourceStatus.kept`.
    public var kept: [String: String]

    public init(port: Port? = nil, kept: [String: String] = [:]) {
        self.port = port
        self.kept = kept
    }
}

/// Something wrong with a source, and what to do about it (`doctor` and `once` say both).
public struct SourceProblem: Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public let fix: String

    public init(_ message: String, fix: String) {
        self.message = message
        self.fix = fix
    }

    public var description: String { message }
}

/// Where a source stands, for `status`, the state file, the metrics, readiness, `once` and
/// `doctor` alike.
public struct SourceStatus: Equatable, Sendable {
    public enum State: Equatable, Sendable {
        /// Not asked yet.
        case starting
        /// It names this port (the one its `port_index` picks).
        case forwarding(Port)
        /// No port yet, and waiting is what to do: the tunnel is still connecting, no answer yet.
        case waiting(SourceProblem)
        /// Not here on this machine as configured (no such file or interface): `once` says so
        /// with its own exit code, and `auto` goes on to the next source.
        case unavailable(SourceProblem)
        /// It answered, and the answer is no port, or an error.
        case failing(SourceProblem)
        /// The settings do not fit what it answered (a refused key, a `port_index` it lacks).
        case misconfigured(SourceProblem)
        /// Another source has the network, and this one asks nothing until that changes
        /// (`auto`'s router while the tunnel is there), for this reason: nothing to fix.
        case standingBy(String)

        /// Its name in the state file and `status --json`: "forwarding", "standing-by".
        public var name: String {
            switch self {
            case .starting: "starting"
            case .forwarding: "forwarding"
            case .waiting: "waiting"
            case .unavailable: "unavailable"
            case .failing: "failing"
            case .misconfigured: "misconfigured"
            case .standingBy: "standing-by"
            }
        }

        /// Its problem, nil while it forwards a port or has not been asked.
        public var problem: SourceProblem? {
            switch self {
            case .starting, .forwarding, .standingBy: nil
            case .waiting(let problem), .unavailable(let problem), .failing(let problem), .misconfigured(let problem): problem
            }
        }

        /// It has said what it has to say: a port, or why there is none that waiting would not
        /// change (`once` and `doctor` stop waiting for it then).
        public var isDecided: Bool {
            switch self {
            case .starting, .waiting: false
            case .forwarding, .unavailable, .failing, .misconfigured, .standingBy: true
            }
        }
    }

    public var state: State = .starting
    /// The tunnel the source speaks through, when it has one.
    public var link: TunnelTracker.State? = nil
    /// Whether the source has had its first try, for readiness (a tunnel that is not there at
    /// all counts as tried).
    public var settled = true
    /// Leases granted or renewed, and failed cycles; nil for a source without leases.
    public var grants: Int? = nil
    public var failures: Int? = nil
    /// Failed cycles in a row (the recovery command counts these).
    public var failureStreak = 0
    /// When a lease was last granted or renewed (Unix seconds), and when it runs out.
    public var lastGrant: Int64? = nil
    public var leaseExpiry: Instant? = nil
    /// The address peers reach the forwarded port on, when the gateway says it (NAT-PMP's
    /// opcode 0, PCP's answer).
    public var publicAddress: IPv4Address? = nil
    /// One line on how it is reached, for `status`: "gateway 10.2.0.1 (...)".
    public var detail: String? = nil
    /// What the next run should start from, kept in the state file (`SourceMemory.kept`).
    public var kept: [String: String] = [:]

    public init() {}

    /// The problem of a source with no port, nil while it forwards one or has not been asked.
    public var problem: SourceProblem? { state.problem }
}
