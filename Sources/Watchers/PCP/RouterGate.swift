import Reactor

/// When `auto` may ask the router (PCP, then NAT-PMP): only on a network with no tunnel. The
/// gate is shut while the tunnel's interface exists at all (NAT-PMP asks the tunnel's gateway
/// then), while the ProtonVPN app's port file exists (the app has connected since login: it
/// empties the file when it disconnects and does not remove it, so a VPN user who disconnected
/// gets no port opened on their home router), and for `grace` after the tunnel went away (a
/// reconnect never reaches the router). Before the shell's first look it is shut too. Pure: the
/// shell says what it saw; the deadline ends a grace.
public struct RouterGate: LoopStateMachine, Equatable, Sendable {
    public struct Settings: Equatable, Sendable {
        /// The tunnel that has the network when it exists (`[natpmp] interface`).
        public var tunnel: String
        /// The ProtonVPN app's port file; nil: none to look for.
        public var portFile: String?
        /// How long a tunnel that went away keeps the router shut.
        public var grace: Duration

        public static let defaultGrace = Duration.seconds(60)

        public init(tunnel: String, portFile: String?, grace: Duration = Self.defaultGrace) {
            self.tunnel = tunnel
            self.portFile = portFile
            self.grace = grace
        }
    }

    /// Whether the router may be asked, and why not.
    public enum Verdict: Equatable, Sendable, CustomStringConvertible {
        /// Nothing looked at yet.
        case unknown
        case open
        case tunnelPresent(String)
        case portFilePresent(String)
        /// The tunnel went away; the router stays shut until `until`, in case it comes back.
        case tunnelLeft(String, until: Instant)

        public var isOpen: Bool { self == .open }

        public var description: String {
            switch self {
            case .unknown: "not looked at yet"
            case .open: "no tunnel: the router may be asked"
            case .tunnelPresent(let tunnel): "the tunnel \(tunnel) is there: the router is asked only on a network without it"
            case .portFilePresent(let path): "the ProtonVPN app has connected since login (\(path) exists): a VPN user's router is not asked"
            case .tunnelLeft(let tunnel, _): "the tunnel \(tunnel) went away: the router is asked only if it does not come back"
            }
        }
    }

    public enum Input {
        /// What the shell saw: whether the tunnel's interface exists, whether the port file does.
        case looked(tunnelPresent: Bool, portFileExists: Bool)
        case deadlineReached
    }

    public enum Effect: Equatable, Sendable {
        case changed(Verdict)
    }

    public let settings: Settings
    public private(set) var verdict = Verdict.unknown
    public private(set) var nextDeadline: Instant?

    public init(settings: Settings) {
        self.settings = settings
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        let before = verdict
        switch input {
        case .looked(let tunnelPresent, let portFileExists):
            if tunnelPresent {
                verdict = .tunnelPresent(settings.tunnel)
            } else if portFileExists, let path = settings.portFile {
                verdict = .portFilePresent(path)
            } else if case .tunnelPresent = verdict {
                verdict = .tunnelLeft(settings.tunnel, until: now + settings.grace)
            } else if case .tunnelLeft(_, let until) = verdict, now < until {
                break  // still within the grace
            } else {
                verdict = .open
            }
        case .deadlineReached:
            if case .tunnelLeft(_, let until) = verdict, now >= until { verdict = .open }
        }
        if case .tunnelLeft(_, let until) = verdict { nextDeadline = until } else { nextDeadline = nil }
        return verdict == before ? [] : [.changed(verdict)]
    }
}
