import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// QBittorrentSession, driven through a sequence of inputs: desired ports, reasserts, interface
/// changes, new
/// settings, deadlines, the passing of time, failed requests and answers, each answer bytes that
/// go through the HTTP parser first (raw from the input, or shaped like what qBittorrent sends
/// to the request in flight, with fuzzed status, cookie and body).
///
/// Properties: one request at a time, none while one is in flight; none while the login is
/// refused, until the settings change or the pause ends; every request is well-formed (see
/// checkRequest: no line break in a header, whatever the cookie qBittorrent sent); a login
/// only with a password; a write sets listen_port to the desired port (or its neighbour, for a
/// reassert), never 0; "verified" only on the desired port; deadlines never in the past; a
/// re-announce (`hashes=all`) only when verified on the desired port, and two that qBittorrent
/// accepted never less than the allowance's minute apart.
///
/// Input: a settings byte, then steps of an operation byte and its arguments; a listener check
/// is answered at once, as the shell does, by the next byte.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzQBittorrentSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    var session = QBittorrentSession(settings: settings(input.byte()))
    var now = Instant(nanoseconds: 1_000_000_000)
    var steps = 0
    var listenerAsked = false
    var announceListenerAsked = false
    var lastReannounce: (port: Port, at: Instant)?
    while !input.isAtEnd && steps < 200 {
        steps += 1
        let sessionInput: QBittorrentSession.Input
        // The shell answers a listener check at once, before anything else happens.
        if listenerAsked || announceListenerAsked {
            let check: ListeningSockets.Check = input.pick([.listening, .absent, .stale(ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 2)),
                                                            .stale(ListeningSockets.Listener(address: "10.2.0.2", interfaceIndex: 3)), .unknown("fuzz")])
            sessionInput = listenerAsked ? .listenerChecked(check) : .listenerCheckedBeforeAnnouncing(check)
        } else {
            switch input.byte() % 10 {
            case 9:
                sessionInput = .connect
            case 0:
                guard let port = Port(input.uint16()) else { continue }
                sessionInput = .desiredPort(port)
            case 1:
                sessionInput = .reassert
            case 8:
                sessionInput = .interfacesChanged
            case 2:
                sessionInput = .settingsChanged(settings(input.byte()))
            case 3:
                sessionInput = exchange(response(from: input.chunk()))
            case 4:
                sessionInput = .requestFailed(input.pick([.timedOut, .closed, .connect(.refused), .resolve("no such host")]))
            case 5:
                if let deadline = session.nextDeadline, deadline > now { now = deadline }
                sessionInput = .deadlineReached
            case 6:
                now = now + .milliseconds(Int(input.uint16()) * 100)
                continue
            default:
                guard let request = session.inFlight else { continue }
                sessionInput = exchange(response(from: qBittorrentAnswer(to: request, &input)))
            }
        }

        let before = (inFlight: session.inFlight, refused: session.isLoginRefused, deadline: session.nextDeadline,
                      reannounces: session.counters.reannounces)
        let effects = session.handle(sessionInput, now: now)
        let sent = effects.compactMap { effect -> HTTPRequest? in
            if case .send(let request, _) = effect { return request }
            return nil
        }
        require(sent.count <= 1, "\(sent.count) requests at once")
        listenerAsked = effects.contains { if case .checkListener = $0 { true } else { false } }
        announceListenerAsked = effects.contains { if case .checkListenerBeforeAnnouncing = $0 { true } else { false } }
        var isAnswer = false
        var isUnblocking = false
        switch sessionInput {
        case .responseReceived, .requestFailed: isAnswer = before.inFlight != nil
        case .settingsChanged, .deadlineReached: isUnblocking = true
        default: break
        }
        if !sent.isEmpty {
            require(before.inFlight == nil || isAnswer, "a request sent while \(before.inFlight!) is in flight")
            require(!before.refused || isUnblocking, "a request sent while the login is refused")
        }
        for request in sent {
            checkRequest(request, to: session.settings.url, methods: ["GET", "POST"])
            if request.target.hasSuffix("/api/v2/auth/login") {
                guard case .password = session.settings.authentication else { fatalError("property violated: a login without a password") }
                require(!request.headers.contains("Cookie"), "a login that sends a cookie")
            }
            if request.target.hasSuffix("/api/v2/app/setPreferences") { checkWrite(request, desired: session.desired) }
            if request.target.hasSuffix("/api/v2/torrents/reannounce") {
                require(String(decoding: request.body, as: UTF8.self) == "hashes=all", "re-announce body")
                require(session.status.health == .verified && session.status.verifiedPort == session.desired, "a re-announce while not verified")
            }
        }
        if session.counters.reannounces > before.reannounces, let port = session.status.verifiedPort {
            // A new port at once; the same port again at most once a minute.
            require(lastReannounce.map { $0.port != port || now >= $0.at + .seconds(60) } ?? true, "the same port re-announced twice within a minute")
            lastReannounce = (port, now)
        }
        if session.status.health == .verified {
            require(session.status.verifiedPort == session.desired, "verified on \(String(describing: session.status.verifiedPort)), desired \(String(describing: session.desired))")
        }
        if let deadline = session.nextDeadline, deadline != before.deadline {
            require(deadline >= now, "a deadline in the past")
        }
    }
    return 0
}

func exchange(_ result: Result<HTTPResponse, HTTPClientError>) -> QBittorrentSession.Input {
    switch result {
    case .success(let response): .responseReceived(response)
    case .failure(let error): .requestFailed(error)
    }
}

func settings(_ byte: UInt8) -> QBittorrentSettings {
    let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:8080" : "https://qbt.example.lan/qbittorrent/")
    let authentication: QBittorrentSettings.Authentication = switch byte >> 1 & 3 {
    case 0: .none
    case 1: .apiKey(Secret(value: "qbt_0123456789abcdef", origin: "fuzz"))
    default: .password(username: byte & 8 == 0 ? "admin" : "ad min&=", password: Secret(value: "p@ss w&rd=1%", origin: "fuzz"))
    }
    return QBittorrentSettings(url: url, authentication: authentication, disableUPnP: byte & 16 == 0,
                               interface: byte & 32 == 0 ? nil : "wg0", checkListener: byte & 64 != 0)
}

/// What qBittorrent would answer to `request`, shaped by the input: the status, the cookie's
/// bytes, the version text, the preferences' values.
func qBittorrentAnswer(to request: QBittorrentSession.Request, _ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 204, 401, 403, 404, 500])
    switch request {
    case .login:
        let cookie = input.pick(["SID", "QBT_SID_8080"]) + "=" + String(decoding: input.bytes(Int(input.byte() % 40)), as: UTF8.self)
        return answer(status, [("Set-Cookie", cookie + "; HttpOnly; SameSite=Strict; path=/")], input.pick(["Ok.", "Fails.", "", "Your IP address has been banned"]))
    case .version:
        return answer(status, [], input.pick(["v4.5.2", "v5.0.2", "", "<html>", String(decoding: input.bytes(8), as: UTF8.self)]))
    case .interfaces:
        return answer(status, [], input.pick([#"[{"name":"wg0","value":"wg0"},{"name":"lo","value":"lo"}]"#, "[]", "{}", "null"]))
    case .readPreferences:
        let port = Int(input.uint16())
        let interface = input.pick(["wg0", "", "lo"])
        return answer(status, [("Content-Type", "application/json")],
                      #"{"listen_port":\#(port),"random_port":\#(input.bool()),"upnp":\#(input.bool()),"current_network_interface":"\#(interface)","dht":false}"#)
    case .writePreferences, .reannounce:
        return answer(status)
    case .torrentSample:
        return answer(status, [], input.pick([#"[{"hash":"8c4f3e2a","name":"x"}]"#, "[]", "{}", #"[{"hash":"../x"}]"#, String(decoding: input.bytes(8), as: UTF8.self)]))
    case .trackers:
        return answer(status, [], input.pick([#"[{"msg":"","status":0,"tier":-1,"url":"** [DHT] **"},{"msg":"m","status":\#(input.byte() % 6),"tier":0,"url":"u"}]"#,
                                              "[]", "{}", #"[{"status":"x"}]"#]))
    }
}

/// A setPreferences write: `json=` and an object whose listen_port, when present, is the
/// desired port or its neighbour (the first half of a reassert), never 0.
func checkWrite(_ request: HTTPRequest, desired: Port?) {
    let body = String(decoding: request.body, as: UTF8.self)
    require(body.hasPrefix("json="), "setPreferences body \(body)")
    guard let fields = try? JSONValue.parse(Array(percentDecoded(body.dropFirst(5)).utf8)), case .object = fields else {
        fatalError("property violated: setPreferences body is not a JSON object: \(body)")
    }
    guard let value = fields["listen_port"] else { return }
    guard let port = value.integer, let desired else { fatalError("property violated: listen_port \(value.serialized) with nothing desired") }
    require((1...65535).contains(port), "listen_port \(port)")
    require(abs(port - Int(desired.value)) <= 1, "listen_port \(port) while \(desired) is desired")
}
