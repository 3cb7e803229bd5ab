import Reactor

/// The command hook: a program run with the port whenever the port handed to the clients
/// changes (to open a firewall rule, tell rTorrent, send a notification).
public struct HookSettings: PortSinkSettings, Equatable {
    /// The program and its arguments, never through a shell. The first element is an absolute
    /// path or a bare name looked up on the hook's `PATH` at each run.
    public var command: [String]
    /// How long one run may take; then it is killed with its process group (SIGKILL).
    public var timeout: Duration
    /// After a failed run, how long before the one retry for the same port.
    public var retryDelay: Duration
    /// `NAME=value`: what the hook inherits (`ChildEnvironment.passedOn`); the `PORTSYNC_` variables are added
    /// at each run.
    public var environment: [String]

    public init(command: [String], timeout: Duration = .seconds(30), retryDelay: Duration = .seconds(30), environment: [String]) {
        self.command = command
        self.timeout = timeout
        self.retryDelay = retryDelay
        self.environment = environment
    }

    public var label: String { "hook" }
    /// The hook is given the source's own port.
    public var portIndex: Int? { nil }
    public var summary: String { "the command hook \(command.first ?? "")" }

    public func makeSink(loop: EventLoop) -> any PortSink {
        HookSink(loop: loop, settings: self)
    }

    /// The hook's `PATH`, where a bare program name is looked up.
    public var searchPath: String { ChildEnvironment.searchPath(of: environment) }
}
