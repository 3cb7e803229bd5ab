import Foundation
import Glibc
import HTTP
import Reactor

/// deluge-web's JSON endpoint for the calls portsync makes, answering as deluge's sources do
/// (deluge-torrent/deluge, `deluge/ui/web/`), for what Debian's 2.0.3 cannot show: 2.2's session
/// cookie, and a web root (`base`) other than `/`.
/// - `server.py` `getChildWithDefault`: `request.base` is the `X-Deluge-Base` header, else the
///   configured `base`, made `/…/`; the top level is also served under the configured base
///   (`/json` and `/<base>/json` both reach the JSON resource);
/// - `auth.py`: `auth.login` checks the password and creates a session, `_session_id` =
///   sha256 hex + the sum of its characters; `check_request` (every call) renews a valid
///   session's cookie and refuses a method above the session's level ("Not authenticated");
///   the cookie's Path is `request.base + "json"` up to 2.1.1 (auth.py:105 and :165) and
///   `request.base` from 2.2.0 on (commit 757a78235, GHSA-w6r6-6rxf-62x9);
/// - `json_api.py`: POST only (else 405), `Content-Type` checked by its media type
///   (`email.message`'s `get_content_type` in 2.2), `{"result": …, "error": …, "id": …}` as
///   `json.dumps` writes it (", " and ": ", that key order), error 1 Not authenticated, 2 Unknown
///   method, 5 for a request that is not one;
/// - Twisted's framing: chunked, `Server: TwistedWeb` (server.py sets it), `Date`,
///   `Content-Type: application/json`, the Set-Cookie last, `Connection: close` only when asked.
///
/// The daemon behind it is connected from the start (`web.connected` true) and keeps
/// `listen_ports` and `random_port`; the calls portsync does not make are unknown methods.
public struct DelugeWebRPC {
    public enum CookiePath: Sendable {
        /// 2.0.0 – 2.1.1: `<base>json`.
        case baseJSON
        /// 2.2.0 on: `<base>`.
        case base
    }

    public let password: String
    public var cookiePath: CookiePath
    /// The configured web root (`web.conf` `base`).
    public var base: String
    public var listenPorts = [6881, 6891]
    public var randomPort = true
    /// The `Date` header and the cookie's `Expires`; nil: now and now + 3600 s.
    public var date: (now: String, expires: String)?
    public private(set) var sessions: Set<String> = []
    /// The calls answered, by method, and how many carried the session cookie.
    public private(set) var calls: [String] = []
    public private(set) var callsWithCookie = 0
    /// Every Set-Cookie sent, as sent.
    public private(set) var setCookies: [String] = []
    private var nextSession = 0

    public init(password: String, cookiePath: CookiePath = .base, base: String = "/") {
        self.password = password
        self.cookiePath = cookiePath
        self.base = base
    }

    /// `absolute_base_url`.
    static func absolute(_ base: String) -> String {
        var base = base.isEmpty ? "/" : base
        if !base.hasPrefix("/") { base = "/" + base }
        if !base.hasSuffix("/") { base += "/" }
        return base
    }

    public mutating func answer(method: String, target: String, headers: HTTPHeaders, body: [UInt8]) -> HTTPResponse {
        let close = headers["Connection"]?.lowercased() == "close"
        let requestBase = Self.absolute(headers["X-Deluge-Base"] ?? base)
        let configured = base.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        guard path == "/json" || (!configured.isEmpty && path == "/\(configured)/json") else {
            return Self.framed(404, "Not Found", contentType: "text/html", Array("<html><head><title>404 - No Such Resource</title></head><body><h1>No Such Resource</h1><p>No such child resource.</p></body></html>".utf8), cookie: nil, date: date, close: close)
        }
        guard method == "POST" else { return Self.framed(405, "Method Not Allowed", contentType: nil, [], cookie: nil, date: date, close: close) }
        var cookie: String?
        let reply = call(headers: headers, body: body, base: requestBase, cookie: &cookie)
        if let cookie { setCookies.append(cookie) }
        return Self.framed(200, "OK", contentType: "application/json", Array(reply.utf8), cookie: cookie, date: date, close: close)
    }

    /// `_on_json_request`: the JSON text of the answer; `cookie` the Set-Cookie, if any.
    private mutating func call(headers: HTTPHeaders, body: [UInt8], base: String, cookie: inout String?) -> String {
        let mediaType = (headers["Content-Type"] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard mediaType == "application/json" else { return Self.failed("JSONException: Invalid JSON request content-type: \(mediaType)") }
        guard case .object(let request)? = try? JSONValue.parse(body) else { return Self.failed("JSONException: JSON not decodable") }
        guard let method = request["method"]?.string, let params = request["params"]?.array, let id = request["id"] else {
            return Self.failed("JSONException: Invalid JSON request, missing param")
        }
        calls.append(method)
        // check_request: a valid session's cookie renewed on the request's own value.
        let sent = Self.cookie(named: "_session_id", in: headers["Cookie"])
        let session = sent.flatMap(Self.sessionID).flatMap { sessions.contains($0) ? $0 : nil }
        if let sent, session != nil {
            callsWithCookie += 1
            cookie = setCookie(sent, base: base)
        }
        func answer(_ result: String, error: String = "null") -> String { "{\"result\": \(result), \"error\": \(error), \"id\": \(id.serialized)}" }
        let notAuthenticated = answer("null", error: #"{"message": "Not authenticated", "code": 1}"#)
        switch method {
        case "auth.login":
            guard params.first?.string == password else { return answer("false") }
            nextSession += 1
            let created = Self.hex(nextSession)
            sessions.insert(created)
            cookie = setCookie(created + String(Self.checksum(created)), base: base)
            return answer("true")
        case "web.connected", "web.get_hosts", "web.connect", "core.get_config_values", "core.set_config", "core.get_config_value":
            guard session != nil else { return notAuthenticated }
        default:
            return answer("null", error: #"{"message": "Unknown method", "code": 2}"#)
        }
        switch method {
        case "web.connected":
            return answer("true")
        case "web.get_hosts":
            return answer(#"[["a1b2c3d4e5f60718293a4b5c6d7e8f90", "127.0.0.1", 58846, "localclient"]]"#)
        case "web.connect":
            return answer(#"["core.get_config_value", "core.get_config_values", "core.set_config"]"#)
        case "core.get_config_values":
            return answer("{\"listen_ports\": [\(listenPorts[0]), \(listenPorts[1])], \"random_port\": \(randomPort)}")
        case "core.get_config_value":
            return answer("[\(listenPorts[0]), \(listenPorts[1])]")
        default:
            if case .object(let config)? = params.first {
                if let ports = config["listen_ports"]?.array?.compactMap(\.integer), ports.count == 2 { listenPorts = ports }
                if let random = config["random_port"]?.bool { randomPort = random }
            }
            return answer("null")
        }
    }

    /// Twisted's `addCookie('_session_id', value, path=…, expires=…)`.
    private func setCookie(_ value: String, base: String) -> String {
        let path = cookiePath == .base ? base : base + "json"
        return "_session_id=\(value); Expires=\(date?.expires ?? Self.httpDate(offset: 3600)); Path=\(path)"
    }

    /// Twisted's `getCookie`: the value of `name` in a Cookie header.
    static func cookie(named name: String, in header: String?) -> String? {
        for pair in (header ?? "").split(separator: ";") {
            let parts = pair.drop { $0 == " " }.split(separator: "=", maxSplits: 1)
            if parts.count == 2 && parts[0] == name { return String(parts[1]) }
        }
        return nil
    }

    /// `get_session_id`: the id, when its last four characters are its checksum.
    static func sessionID(_ value: String) -> String? {
        guard value.count > 4, let checksum = Int(value.suffix(4)) else { return nil }
        let id = String(value.dropLast(4))
        return checksum == Self.checksum(id) ? id : nil
    }

    static func checksum(_ id: String) -> Int { id.unicodeScalars.reduce(0) { $0 + Int($1.value) } }

    /// 64 hex characters, as a sha256 hexdigest is, different for each session.
    static func hex(_ seed: Int) -> String {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15
        return (0..<4).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let text = String(state, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }

    static func failed(_ message: String) -> String {
        "{\"result\": null, \"id\": null, \"error\": {\"code\": 5, \"message\": \(JSONValue.quoted(message))}}"
    }

    static func framed(_ status: Int, _ reason: String, contentType: String?, _ body: [UInt8], cookie: String?, date: (now: String, expires: String)?,
                       close: Bool) -> HTTPResponse {
        var headers: HTTPHeaders = ["Transfer-Encoding": "chunked"]
        if close { headers.add("Connection", "close") }
        headers.add("Server", "TwistedWeb")
        headers.add("Date", date?.now ?? httpDate(offset: 0))
        if let contentType { headers.add("Content-Type", contentType) }
        if let cookie { headers.add("Set-Cookie", cookie) }
        let size = String(body.count, radix: 16)
        let chunked = body.isEmpty ? Array("0\r\n\r\n".utf8) : Array("\(size)\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
        return HTTPResponse(status: status, reason: reason, headers: headers, body: chunked)
    }

    static func httpDate(offset: Int) -> String {
        var when = time(nil) + offset
        var parts = tm()
        gmtime_r(&when, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `DelugeWebRPC` on a loopback socket of the loop under test.
public final class FakeDelugeWeb {
    public var rpc: DelugeWebRPC
    public private(set) var server: FakeHTTPServer!

    public init(loop: EventLoop, password: String, cookiePath: DelugeWebRPC.CookiePath, base: String = "/") throws {
        rpc = DelugeWebRPC(password: password, cookiePath: cookiePath, base: base)
        server = try FakeHTTPServer(loop: loop) { [unowned self] request in
            .answer(self.rpc.answer(method: request.method, target: request.target, headers: request.headers, body: Array(request.body.utf8)))
        }
    }

    public var url: HTTPURL { server.url }
}
