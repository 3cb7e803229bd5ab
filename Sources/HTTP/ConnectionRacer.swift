import Reactor

/// A TCP connection to whichever of a host's addresses connects first, attempts staggered as
/// `ConnectionRace` says, within one connect deadline. To its owner it is one connection that
/// reports as a `TCPConnection` does: `.connected` once an attempt won (the others are closed),
/// then `.received` for each buffer, then one `.closed`; `.closed(error)` without `.connected`
/// when none connected in time (the last failure, or `.timedOut`). `close()` reports nothing.
final class ConnectionRacer {
    let name: String
    private(set) var state: TCPConnection.State = .idle
    /// Runs as each attempt starts: the client counts the connections it opens.
    var attemptStarted: () -> Void = {}

    private let loop: EventLoop
    private let handler: (TCPConnection.Event) -> Void
    private var runner: MachineRunner<ConnectionRace>?
    private var addresses: [SocketAddress] = []
    private var source: SocketAddress?
    private var timeout = Duration.zero
    /// The attempts still connecting, by index, and the one that won.
    private var attempts: [Int: TCPConnection] = [:]
    private var winner: (attempt: Int, connection: TCPConnection)?

    init(loop: EventLoop, name: String, handler: @escaping (TCPConnection.Event) -> Void) {
        self.loop = loop
        self.name = name
        self.handler = handler
    }

    deinit { close() }

    /// The address of the attempt that won.
    var peer: SocketAddress? { winner?.connection.peer }

    /// Starts the race; progress and the outcome arrive as events.
    func connect(to addresses: [SocketAddress], from source: SocketAddress?, timeout: Duration) {
        precondition(state == .idle, "a racer connects once")
        self.addresses = ConnectionRace.interleaved(addresses)
        self.source = source
        self.timeout = timeout
        state = .connecting
        let runner = MachineRunner(loop: loop, name: "\(name).connect",
                                   machine: ConnectionRace(addressCount: self.addresses.count, timeout: timeout),
                                   deadlineInput: .deadlineReached)
        self.runner = runner
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.send(.start)
    }

    func send(_ bytes: [UInt8]) {
        winner?.connection.send(bytes)
    }

    func close() {
        runner?.stop()
        runner = nil
        for attempt in attempts.values { attempt.close() }
        attempts = [:]
        winner?.connection.close()
        winner = nil
        state = .closed
    }

    private func perform(_ effect: ConnectionRace.Effect) {
        switch effect {
        case .attempt(let index):
            let attempt = TCPConnection(loop: loop, name: name) { [unowned self] event in self.handle(event, attempt: index) }
            attempts[index] = attempt
            attemptStarted()
            loop.logger.trace(name, "connecting to \(addresses[index])")
            do {
                // The attempt's own timeout never comes first: it starts within the race's.
                try attempt.connect(to: addresses[index], from: source, timeout: timeout)
            } catch {
                runner?.send(.failed(attempt: index, .system(error as! SystemCallError)))
            }
        case .abandon(let index):
            attempts.removeValue(forKey: index)?.close()
        case .won(let index):
            guard let connection = attempts.removeValue(forKey: index) else { return }
            winner = (index, connection)
            state = .connected
            handler(.connected)
        case .failed(let error):
            state = .closed
            handler(.closed(error))
        }
    }

    private func handle(_ event: TCPConnection.Event, attempt index: Int) {
        if let winner, winner.attempt == index {
            if case .closed = event {
                self.winner = nil
                state = .closed
            }
            return handler(event)
        }
        switch event {
        case .connected:
            runner?.send(.connected(attempt: index))
        case .closed(let error):
            attempts[index] = nil
            loop.logger.debug(name, "\(addresses[index]): \(error?.description ?? "closed while connecting")")
            runner?.send(.failed(attempt: index, error ?? .reset))
        case .received:
            break  // only the winner reads, and only after it won
        }
    }
}
