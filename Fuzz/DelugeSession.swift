import Domain
@testable import HTTP
import Reactor
@testable import Sinks

/// DelugeSession through the client sessions' driver (`fuzzClientSession`), with answers
/// shaped like what deluge-web sends to the call in flight: a result, error 1 "Not
/// authenticated", 2 "Unknown method" or another, a status, the request echoed back; the
/// session cookie with the Path of 2.0/2.1 (`<base>json`) or 2.2 (`<base>`).
///
/// Its own properties: every request a POST of JSON to /json with its own id, the cookie never
/// on a login, a login only with a password; a write sets listen_ports to the desired port; no
/// login storm (between two inputs that are not answers, at most one login and one fresh login
/// per kind of call).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDelugeSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var lastID = 0
    var loginsThisRound = 0
    return fuzzClientSession(data, count, DelugeSession.self) { request, session, round in
        if round == 1 { loginsThisRound = 0 }
        require(request.target == session.settings.url.target(DelugeRPC.path), "target \(request.target)")
        require(request.headers["Content-Type"] == DelugeRPC.contentType, "Content-Type")
        guard let body = try? JSONValue.parse(request.body), let method = body["method"]?.string, let id = body["id"]?.integer else {
            fatalError("property violated: a body that is not a call: \(String(decoding: request.body, as: UTF8.self))")
        }
        require(id > lastID, "id \(id) after \(lastID)")
        lastID = id
        if method == "auth.login" {
            require(session.settings.password != nil, "a login without a password")
            require(!request.headers.contains("Cookie"), "a login that sends a cookie")
            loginsThisRound += 1
            require(loginsThisRound <= 1 + 9, "\(loginsThisRound) logins without a deadline: a login storm")
        }
        if let ports = DelugeSession.writtenPorts(request) {
            let desired = session.core.desired.map { Int($0.value) }
            require(desired != nil && ports == [desired, desired], "listen_ports \(ports) while \(String(describing: session.core.desired)) is desired")
        }
    }
}

extension DelugeSession: FuzzedClientSession {
    static func settings(_ byte: UInt8) -> ClientSettings {
        let url = try! HTTPURL(parsing: byte & 1 == 0 ? "http://127.0.0.1:8112" : "https://deluge.example.lan/deluge/")
        let password: Secret? = switch byte >> 1 & 3 {
        case 0: nil
        case 1: Secret(value: "p@ss w\"rd\\1%", origin: "fuzz")
        default: Secret(value: "deluge", origin: "fuzz")
        }
        return ClientSettings(url: url, password: password, reannounce: byte & 8 == 0)
    }

    func shapedAnswer(_ input: inout FuzzInput) -> [UInt8]? {
        inFlight.map { delugeAnswer(to: $0.call, id: $0.id, request: httpRequest(for: $0.call, id: $0.id), &input) }
    }

    /// A core.set_config: its listen_ports (0 where one is missing).
    static func writtenPorts(_ request: HTTPRequest) -> [Int]? {
        guard let body = try? JSONValue.parse(request.body), body["method"]?.string == "core.set_config" else { return nil }
        let ports = body["params"]?.array?.first?["listen_ports"]?.array ?? []
        return ports.isEmpty ? [0] : ports.map { $0.integer ?? 0 }
    }
}

/// What deluge-web would answer to `call`, shaped by the input.
func delugeAnswer(to call: DelugeRPC.Call, id: Int, request: HTTPRequest, _ input: inout FuzzInput) -> [UInt8] {
    let status = input.pick([200, 200, 200, 200, 200, 403, 404, 500])
    // The cookie's Path as deluge-web sets it, <base>json up to 2.1, <base> from 2.2 on, picked
    // by the value's length so that the older seeds read the input as they did.
    let paths = ["; Path=/json", "; Path=/", "; Path=/deluge/", "; Path=/deluge/json", ""]
    let cookie: [(String, String)] = input.bool() ? [input.bytes(Int(input.byte() % 20))].map { value in
        ("Set-Cookie", "_session_id=" + String(decoding: value, as: UTF8.self) + "; Expires=Mon, 07 Dec 2026 10:30:00 GMT" + paths[value.count % paths.count])
    } : []
    let echo = String(decoding: request.body, as: UTF8.self)
    let answerID = input.pick([id, id, id, id - 1])
    let error = input.pick([nil, (1, "Not authenticated"), (2, "Unknown method"), (3, "KeyError \(input.byte())"), (5, "bad request: \(echo)")])
    if let error {
        return answer(status, cookie, #"{"result": null, "error": {"code": \#(error.0), "message": \#(JSONValue.quoted(error.1))}, "id": \#(answerID)}"#)
    }
    let result: String
    switch call {
    case .login, .connected: result = input.pick(["true", "false", "null"])
    case .hosts: result = input.pick([#"[["a1b2", "127.0.0.1", 58900, "portsync"]]"#, "[]", #"[["x"]]"#])
    case .connect: result = input.pick([#"["core.get_config_value", "core.set_config"]"#, "null", "[]"])
    case .readPorts:
        let port = Int(input.uint16())
        result = #"{"listen_ports": [\#(port), \#(input.bool() ? port : port + 1)], "random_port": \#(input.bool())}"#
    case .verifyPorts:
        let port = Int(input.uint16())
        result = "[\(port), \(port)]"
    case .writePorts, .reannounce: result = "null"
    case .torrents: result = input.pick([#"["aa11", "bb22"]"#, "[]", "null"])
    }
    return answer(status, cookie, status == 200 ? #"{"result": \#(result), "error": null, "id": \#(answerID)}"# : "<pre>\(echo)</pre>")
}
