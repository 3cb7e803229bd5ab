@testable import HTTP
import Reactor

/// HTTPExchange driven through any sequence of what its shell can tell it: requests (some that
/// cannot go on the wire, some HEAD, some that must not go twice), connections made, refused and
/// ended, TLS handshakes done and failed, close_notify, answers (well-formed, cut, fuzzed bytes),
/// deadlines, and an owner that sends, closes or lets the connection go from its completion.
///
/// Properties: each request is answered at most once, in the order sent, and never after the
/// owner closed; the answer is the last effect of its step; a request goes only on a connection
/// that is up (over https, after its handshake), at most twice (one retry), and the machine
/// counts each; a connection is opened only for a request; a failure leaves no connection
/// open; idle means no deadline, and a deadline is never in the past.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPExchange(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let usesTLS = input.bool()
    var exchange = HTTPExchange(usesTLS: usesTLS, responseTimeout: .seconds(10))
    var now = Instant(nanoseconds: 1_000_000_000)
    var connection = ShellConnection.none
    var lastID = 0
    /// The requests not answered or dropped, oldest first, and how often each went.
    var unanswered: [(id: Int, sends: Int)] = []
    var sends = 0
    /// What the shell says next without the input choosing: after an answer, the owner's
    /// doing in its completion, then that it ran.
    var queued: [HTTPExchange.Input] = []
    for _ in 0..<300 {
        let exchangeInput: HTTPExchange.Input
        if !queued.isEmpty {
            exchangeInput = queued.removeFirst()
        } else if input.isAtEnd {
            break
        } else if let next = nextReport(&input, &connection, &lastID, usesTLS: usesTLS, now: &now, deadline: exchange.nextDeadline) {
            exchangeInput = next
        } else {
            continue
        }
        switch exchangeInput {
        case .requested(let id, _, _): unanswered.append((id, 0))
        case .closeRequested: unanswered = []
        default: break
        }
        let wasBusy = exchange.isBusy
        let effects = exchange.handle(exchangeInput, now: now)
        if case .idleCloseRequested = exchangeInput, wasBusy { require(effects.isEmpty, "an idle close while busy did \(effects)") }
        for (index, effect) in effects.enumerated() {
            switch effect {
            case .openConnection:
                require(!unanswered.isEmpty, "a connection opened for no request")
                connection = .connecting
            case .startTLS:
                require(usesTLS && connection == .connected, "TLS started on a connection \(connection), TLS \(usesTLS)")
                connection = .handshaking
            case .send:
                require(connection == .open, "a request sent on a connection \(connection)")
                require(!unanswered.isEmpty, "a request sent for none")
                unanswered[0].sends += 1
                require(unanswered[0].sends <= 2, "request \(unanswered[0].id) sent \(unanswered[0].sends) times")
                sends += 1
            case .closeConnection:
                connection = .none
            case .forgetAddresses:
                break
            case .completed(let id, let result):
                require(index == effects.count - 1, "effects after an answer")
                require(unanswered.first?.id == id, "request \(id) answered, \(unanswered.first.map { "\($0.id)" } ?? "none") was due")
                unanswered.removeFirst()
                if case .failure = result { require(connection == .none, "a failure left the connection \(connection)") }
                switch input.byte() % 4 {
                case 0:
                    lastID += 1
                    queued.append(.requested(id: lastID, request(&input), retryIfStale: input.bool()))
                case 1: queued.append(.closeRequested)
                default: break
                }
                queued.append(.answerTaken)
            }
        }
        require(exchange.requestsSent == sends, "\(exchange.requestsSent) requests counted, \(sends) sent")
        require(exchange.isBusy == !unanswered.isEmpty, "busy \(exchange.isBusy) with \(unanswered.count) unanswered")
        if let deadline = exchange.nextDeadline {
            require(exchange.isBusy, "a deadline while idle")
            require(deadline >= now, "a deadline in the past")
        }
    }
    return 0
}

/// The connection as the shell has it: `connected` is TCP up with no TLS yet.
private enum ShellConnection { case none, connecting, connected, handshaking, open }

/// The next thing the shell reports, chosen by the input among those that can happen now; nil
/// when the choice cannot.
private func nextReport(_ input: inout FuzzInput, _ connection: inout ShellConnection, _ lastID: inout Int, usesTLS: Bool,
                        now: inout Instant, deadline: Instant?) -> HTTPExchange.Input? {
    switch input.byte() % 12 {
    case 0:
        lastID += 1
        return .requested(id: lastID, request(&input), retryIfStale: input.bool())
    case 1:
        guard connection == .connecting else { return nil }
        connection = usesTLS ? .connected : .open
        return .connected
    case 2:
        guard connection == .connecting else { return nil }
        connection = .none
        return input.bool() ? .lookupFailed("cannot resolve \"nas.test\": no such name")
            : .closed(input.pick([.refused, .timedOut, .unreachable, .reset]))
    case 3:
        guard connection == .handshaking else { return nil }
        connection = .open
        return .tlsEstablished
    case 4:
        guard usesTLS && (connection == .handshaking || connection == .open) else { return nil }
        return .tlsFailed(TLSError("TLS read failed"))
    case 5, 6:
        guard connection == .open else { return nil }
        return .received(input.bool() ? answer(&input) : input.chunk())
    case 7:
        guard connection == .open || connection == .handshaking else { return nil }
        connection = .none
        return .closed(input.pick([nil, nil, .reset]))
    case 8:
        guard usesTLS && connection == .open else { return nil }
        return .closeNotified
    case 9:
        if let deadline, deadline > now { now = deadline }
        return .deadlineReached
    case 10:
        now = now + .milliseconds(Int(input.uint16()) * 10)
        return .deadlineReached
    default:
        return input.bool() ? .idleCloseRequested : .closeRequested
    }
}

private func request(_ input: inout FuzzInput) -> HTTPRequest {
    switch input.byte() % 4 {
    case 0: HTTPRequest(method: "HEAD", target: "/api/v2/app/version")
    case 1: HTTPRequest(method: "GET", target: "/", headers: ["Cookie": "SID=a\r\nb"])
    default: HTTPRequest.form("/api/v2/app/setPreferences", fields: [("json", #"{"listen_port":51413}"#)])
    }
}

/// An answer shaped by the input: its framing (length, chunked, until the close), whether it
/// keeps the connection, and where it is cut.
private func answer(_ input: inout FuzzInput) -> [UInt8] {
    let body = String(decoding: input.bytes(Int(input.byte() % 16)), as: UTF8.self)
    let connection = input.pick(["", "Connection: close\r\n", "Connection: keep-alive\r\n"])
    let version = input.pick(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"])
    let head = "\(version) \(input.pick([100, 200, 204, 304, 403])) X\r\n\(connection)"
    let text = switch input.byte() % 3 {
    case 0: head + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
    case 1: head + "Transfer-Encoding: chunked\r\n\r\n\(String(body.utf8.count, radix: 16))\r\n\(body)\r\n0\r\n\r\n"
    default: head + "\r\n" + body
    }
    let bytes = Array(text.utf8)
    return input.bool() ? Array(bytes.prefix(Int(input.byte()) % (bytes.count + 1))) : bytes
}
