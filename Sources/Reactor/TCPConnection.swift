import CLinux
import Glibc

/// Why a TCP connection ended or could not be made, in words a person can act on.
public enum TCPConnectionError: Error, Equatable, Sendable, CustomStringConvertible {
    case refused
    case timedOut
    case reset
    case unreachable
    case system(SystemCallError)

    init(_ error: SystemCallError) {
        switch error.errno {
        case .connectionRefused: self = .refused
        case .timedOut: self = .timedOut
        case .connectionReset, .brokenPipe: self = .reset
        case .networkUnreachable, .hostUnreachable: self = .unreachable
        default: self = .system(error)
        }
    }

    public var description: String {
        switch self {
        case .refused: "connection refused"
        case .timedOut: "connect timed out"
        case .reset: "connection reset by peer"
        case .unreachable: "network unreachable"
        case .system(let error): error.description
        }
    }
}

/// A non-blocking TCP client connection in the loop. It reports `.connected`, then
/// `.received` for each buffer read (at most 16 KiB), then exactly one
/// `.closed` (nil when the peer closed cleanly). `close()` by the owner reports nothing.
public final class TCPConnection {
    public enum Event {
        case connected
        case received([UInt8])
        case closed(TCPConnectionError?)
    }

    public enum State: Equatable {
        case idle
        case connecting
        case connected
        case closed
    }

    public let name: String
    public private(set) var state: State = .idle
    public private(set) var peer: SocketAddress?

    private let loop: EventLoop
    private let handler: (Event) -> Void
    /// The socket, owned by its registration.
    private var socket: Registration?
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var connectTimer: Timer!

    public init(loop: EventLoop, name: String, handler: @escaping (Event) -> Void) {
        self.loop = loop
        self.name = name
        self.handler = handler
        connectTimer = loop.makeTimer(name: name) { [unowned self] in self.fail(.timedOut) }
    }

    deinit {
        close()
    }

    /// Starts connecting, from `source` when given and kept on the interface `device` when given
    /// (`SO_BINDTODEVICE`). Progress and failure arrive as events; only a failure to even create
    /// the socket throws.
    public func connect(to address: SocketAddress, from source: SocketAddress? = nil, device: String? = nil, timeout: Duration) throws {
        precondition(state == .idle || state == .closed, "connect on a connection in use")
        output.removeAll()
        outputOffset = 0
        peer = address
        let socket = try Socket(family: address.family, kind: .stream) { socket in
            try socket.setOption(Int32(IPPROTO_TCP), TCP_NODELAY, 1, name: "TCP_NODELAY")
            if let device { try socket.bind(toDevice: device) }
            if let source { try socket.bind(to: source) }
        }
        self.socket = try Registration(loop: loop, owning: socket.fd, interest: .writable, name: name) { [unowned self] readiness in
            self.handle(readiness)
        }
        state = .connecting
        do {
            try socket.connect(to: address)
            connectTimer.schedule(after: timeout)
        } catch {
            // Reported asynchronously like every other failure, so callers have one path.
            self.socket?.disable()
            connectTimer.schedule(after: .zero)
            pendingFailure = TCPConnectionError(error as! SystemCallError)
        }
    }

    private var pendingFailure: TCPConnectionError?

    /// Queues bytes; they go out as the socket takes them.
    public func send(_ bytes: [UInt8]) {
        guard state == .connecting || state == .connected else { return }
        output.append(contentsOf: bytes)
        if state == .connected { flush() }
    }

    /// Closes the socket. No event is reported for a close the owner asked for.
    public func close() {
        connectTimer.cancel()
        socket?.cancel()
        socket = nil
        state = .closed
        pendingFailure = nil
        output.removeAll()
        outputOffset = 0
    }

    private func fail(_ error: TCPConnectionError?) {
        let reported = pendingFailure ?? error
        close()
        handler(.closed(reported))
    }

    private func handle(_ readiness: Readiness) {
        guard let fd = socket?.fd else { return }
        if state == .connecting {
            do {
                if let code = try Socket(fd).pendingError() {
                    return fail(TCPConnectionError(SystemCallError(call: "connect", errno: code)))
                }
            } catch {
                return fail(TCPConnectionError(error))
            }
            guard readiness.contains(.writable) else { return }
            connectTimer.cancel()
            state = .connected
            updateInterest()
            handler(.connected)
            guard state == .connected else { return }
            flush()
            return
        }
        if readiness.contains(.readable) || readiness.contains(.hangup) || readiness.contains(.error) {
            readAvailable(fd)
            guard state == .connected else { return }
        }
        if readiness.contains(.writable) { flush() }
    }

    /// Buffers read per wakeup, at most: one fast peer cannot hold the loop; level-triggered
    /// epoll reports the rest at the next wakeup.
    static let readsPerWakeup = 16

    /// Reads one buffer at a time and hands each to the owner before reading the next, so the
    /// owner's limits (the HTTP parser's) apply while reading, never after: once the owner
    /// closes the connection, nothing more is read.
    private func readAvailable(_ fd: FileDescriptor) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<Self.readsPerWakeup {
            let result: IOResult<Int>
            do {
                result = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch {
                return fail(TCPConnectionError(error as! SystemCallError))
            }
            switch result {
            case .wouldBlock:
                return
            case .done(0):
                return fail(nil)
            case .done(let count):
                handler(.received(Array(buffer[0..<count])))
                guard state == .connected else { return }
            }
        }
    }

    private func flush() {
        guard let fd = socket?.fd else { return }
        while outputOffset < output.count {
            do {
                let result = try output.withUnsafeBytes { bytes in
                    try Socket(fd).send(UnsafeRawBufferPointer(rebasing: bytes[outputOffset...]))
                }
                guard case .done(let count) = result else { break }
                outputOffset += count
            } catch {
                return fail(TCPConnectionError(error as! SystemCallError))
            }
        }
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: true)
            outputOffset = 0
        }
        updateInterest()
    }

    private func updateInterest() {
        guard let socket else { return }
        let interest: Interest = outputOffset < output.count ? [.readable, .writable] : .readable
        do {
            try socket.setInterest(interest)
        } catch {
            fail(.system(error as! SystemCallError))
        }
    }
}
