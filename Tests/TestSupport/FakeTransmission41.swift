import Glibc
import HTTP
import Reactor

/// Transmission 4.1.3's RPC server (RPC 6.0.1) for the calls portsync makes, answering as its
/// sources do, byte for byte (transmission/transmission at tag 4.1.3):
/// - `libtransmission/rpc-server.cc` `handle_request`: `Server`, `X-Frame-Options` and
///   `Content-Security-Policy` on every answer; then Basic auth (401 with `WWW-Authenticate`),
///   a path outside `/transmission/` redirected (301), the session id checked (409 with
///   `X-Transmission-Session-Id` and `X-Transmission-Rpc-Version`, and its HTML), the RPC path
///   (POST, else 405), anything else 404; `send_simple_response`'s `<h1>CODE: Reason</h1>` bodies;
///   `handle_rpc_from_json`: 200 `application/json; charset=UTF-8`, 204 for a notification;
/// - libevent 2.1's framing after those: `Date`, `Content-Length`, the default `Content-Type`
///   `text/html; charset=ISO-8859-1`, `Connection: close` only when the request asked for it;
/// - `libtransmission/rpcimpl.cc` `tr_rpc_request_exec_impl`: `"jsonrpc": "2.0"` means JSON-RPC
///   (params must be an object, else ignored; an id that is not a string, number or null is an
///   invalid request; no id: a notification, 204), another `jsonrpc` string is an invalid
///   request, none is the legacy RPC, converted as `api-compat.cc` does (kebab-case names to
///   snake_case, `arguments` to `params`, an integer `tag` to `id`; the answer back to
///   `{"arguments":…,"result":"success"|message,"tag":N}`); an unknown method is -32601 (legacy:
///   "no method name"); `session_get` answers the `fields` it knows (all when none is a known
///   name), `session_set` sets what has a setter and ignores the rest;
/// - `libtransmission/variant-json.cc`: compact JSON, object keys sorted.
///
/// Only `session_get` and `session_set` are implemented (the calls portsync makes), over the
/// session fields below; every other method is answered as unknown, a batch (an array) as an
/// invalid request, and nothing is gzipped (portsync sends no Accept-Encoding): stricter than the
/// real one for what portsync never sends.
public struct Transmission41RPC {
    public static let version = "4.1.3 (838877323f)"
    public static let rpcVersionSemver = "6.0.1"
    public static let rpcPath = "/transmission/rpc"

    public let username: String
    public let password: String
    public var sessionID = "s4HXT9zQ0cMkVb2LrW7nYp3aJ6dEo1fUgK8tNiZxRqCwFyBh"
    /// The session's fields, snake_case, as `session_get` answers them.
    public var fields: [String: JSONValue] = [
        "peer_port": .number(51413), "peer_port_random_on_start": .bool(false), "port_forwarding_enabled": .bool(true),
        "rpc_version": .number(19), "rpc_version_minimum": .number(14), "rpc_version_semver": .string(rpcVersionSemver),
        "version": .string(version),
    ]
    public var peerPort: Int { fields["peer_port"]?.integer ?? 0 }
    /// The `Date` header libevent adds; nil: now.
    public var date: String?
    /// The RPC calls answered, by dialect.
    public private(set) var legacyCalls = 0
    public private(set) var jsonRPCCalls = 0
    /// The session ids a request carried that were not the current one (none: nil).
    public private(set) var conflicts = 0

    /// The fields `session_set` can set, and the kind of value each setter takes.
    private static func settable(_ key: String, _ value: JSONValue) -> Bool {
        switch key {
        case "peer_port": value.integer != nil
        case "peer_port_random_on_start", "port_forwarding_enabled": value.bool != nil
        default: false
        }
    }
    /// The names api-compat.cc converts (legacy → current) among those portsync uses.
    private static let legacyNames: [String: String] = [
        "session-get": "session_get", "session-set": "session_set", "peer-port": "peer_port",
        "peer-port-random-on-start": "peer_port_random_on_start", "port-forwarding-enabled": "port_forwarding_enabled",
        "rpc-version": "rpc_version", "rpc-version-minimum": "rpc_version_minimum", "rpc-version-semver": "rpc_version_semver",
    ]
    private static var currentNames: [String: String] { Dictionary(uniqueKeysWithValues: legacyNames.map { ($1, $0) }) }

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// A restarted daemon: a new session id.
    public mutating func restart() {
        sessionID = String(sessionID.reversed())
    }

    // MARK: HTTP (rpc-server.cc)

    public mutating func answer(_ request: HTTPRequest) -> HTTPResponse {
        answer(method: request.method, target: request.target, headers: request.headers, body: request.body)
    }

    public mutating func answer(method: String, target: String, headers requestHeaders: HTTPHeaders, body: [UInt8]) -> HTTPResponse {
        var headers: HTTPHeaders = ["Server": "Transmission", "X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'"]
        let close = requestHeaders["Connection"]?.lowercased().contains("close") == true
        func simple(_ code: Int, _ reason: String, _ text: String = "") -> HTTPResponse {
            Self.framed(code, reason, headers, Array("<h1>\(code): \(reason)</h1>\(text)".utf8), date: date, close: close)
        }
        let expected = "Basic " + Base64.encode(Array("\(username):\(password)".utf8))
        guard requestHeaders["Authorization"] == expected else {
            headers.add("WWW-Authenticate", #"Basic realm="Transmission""#)
            return simple(401, "Unauthorized")
        }
        let base = "/transmission/"
        let location = target.hasPrefix(base) ? String(target.dropFirst(base.count)) : ""
        if location.isEmpty || location == "web" {
            headers.add("Location", "\(base)web/")
            return simple(301, "Moved Permanently")
        }
        guard requestHeaders["X-Transmission-Session-Id"] == sessionID else {
            conflicts += 1
            headers.add("X-Transmission-Session-Id", sessionID)
            headers.add("X-Transmission-Rpc-Version", Self.rpcVersionSemver)
            return simple(409, "Conflict", Self.conflictText(sessionID))
        }
        guard location.hasPrefix("rpc") else { return simple(404, "Not Found", target) }
        guard method == "POST" else { return simple(405, "Method Not Allowed") }
        guard let answer = rpc(body) else {
            return Self.framed(204, "OK", headers, [], date: date, close: close)
        }
        headers.add("Content-Type", "application/json; charset=UTF-8")
        return Self.framed(200, "OK", headers, Array(answer.serialized.utf8), date: date, close: close)
    }

    /// A 200 with `body`, framed as 4.1.3 frames its JSON answers (for answers it would not
    /// give to portsync's calls: the session's strictness).
    public static func json(_ body: String, date: String = "Mon, 07 Dec 2026 09:30:00 GMT") -> HTTPResponse {
        let headers: HTTPHeaders = ["Server": "Transmission", "X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "frame-ancestors 'self'",
                                    "Content-Type": "application/json; charset=UTF-8"]
        return framed(200, "OK", headers, Array(body.utf8), date: date, close: false)
    }

    /// The 409's HTML after its `<h1>`.
    public static func conflictText(_ sessionID: String) -> String {
        "<p>Your request had an invalid session_id header.</p><p>To fix this, follow these steps:<ol><li> When reading a response, get its X-Transmission-Session-Id header and remember it<li> Add the updated header to your outgoing requests<li> When you get this 409 error message, resend your request with the updated header</ol></p><p>This requirement has been added to help prevent <a href=\"https://en.wikipedia.org/wiki/Cross-site_request_forgery\">CSRF</a> attacks.</p><p><code>X-Transmission-Session-Id: \(sessionID)</code></p>"
    }

    /// libevent's `evhttp_make_header_response` after Transmission's headers.
    static func framed(_ status: Int, _ reason: String, _ given: HTTPHeaders, _ body: [UInt8], date: String?, close: Bool) -> HTTPResponse {
        var headers = given
        headers.add("Date", date ?? httpDate())
        if status != 204 {
            headers.add("Content-Length", String(body.count))
            if headers["Content-Type"] == nil { headers.add("Content-Type", "text/html; charset=ISO-8859-1") }
        }
        if close { headers.add("Connection", "close") }
        return HTTPResponse(status: status, reason: reason, headers: headers, body: body)
    }

    static func httpDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: RPC (rpcimpl.cc, api-compat.cc)

    /// The answer to one RPC body; nil for a notification (HTTP 204).
    mutating func rpc(_ body: [UInt8]) -> JSONValue? {
        guard let parsed = try? JSONValue.parse(body) else {
            return Self.response(.error(-32700, "Parse error", data: ["error_string": .string("Invalid value.")]), id: .null, legacy: false)
        }
        guard case .object(var call) = parsed else {
            return Self.response(.error(-32600, "Invalid Request", data: ["error_string": .string("request must be an Array or Object")]), id: .null, legacy: false)
        }
        let legacy: Bool
        switch call["jsonrpc"] {
        case .string("2.0")?:
            legacy = false
        case .string?:
            return Self.response(.error(-32600, "Invalid Request", data: ["error_string": .string("JSON-RPC version is not 2.0")]), id: .null, legacy: false)
        default:
            legacy = true
            call = Self.converted(call)
        }
        if legacy { legacyCalls += 1 } else { jsonRPCCalls += 1 }
        let id = call["id"]
        if let id {
            switch id {
            case .string, .number, .null: break
            default: return Self.response(.error(-32600, "Invalid Request", data: ["error_string": .string("id type must be String, Number, or Null")]), id: .null, legacy: legacy)
            }
        }
        var params: [String: JSONValue] = [:]
        if case .object(let given)? = call["params"] { params = given }
        let outcome: Outcome
        switch call["method"]?.string ?? "" {
        case "session_get": outcome = .success(sessionGet(params))
        case "session_set": outcome = .success(sessionSet(params))
        default: outcome = .error(-32601, "Method not found", data: [:])
        }
        if !legacy && id == nil { return nil }
        return Self.response(outcome, id: id, legacy: legacy)
    }

    enum Outcome {
        case success([String: JSONValue])
        case error(Int, String, data: [String: JSONValue])
    }

    private func sessionGet(_ params: [String: JSONValue]) -> [String: JSONValue] {
        // get_session_fields: the names that are known strings (here: the ones in the tables);
        // none known, every field.
        let known = Set(Self.legacyNames.keys).union(Self.legacyNames.values).union(["version"])
        let asked = (params["fields"]?.array ?? []).compactMap(\.string).filter(known.contains)
        guard !asked.isEmpty else { return fields }
        return fields.filter { asked.contains($0.key) }
    }

    private mutating func sessionSet(_ params: [String: JSONValue]) -> [String: JSONValue] {
        for (key, value) in params where Self.settable(key, value) {
            fields[key] = value
        }
        return [:]
    }

    /// `convert_incoming_data`: a legacy call in the current names.
    static func converted(_ call: [String: JSONValue]) -> [String: JSONValue] {
        func current(_ name: String) -> String { legacyNames[name] ?? name }
        var result: [String: JSONValue] = [:]
        for (key, value) in call {
            switch key {
            case "method": result["method"] = value.string.map { .string(current($0)) } ?? value
            case "arguments":
                guard case .object(let arguments) = value else { result["params"] = value; continue }
                var params: [String: JSONValue] = [:]
                for (name, argument) in arguments {
                    params[current(name)] = name == "fields" ? .array((argument.array ?? []).map { $0.string.map { .string(current($0)) } ?? $0 }) : argument
                }
                result["params"] = .object(params)
            case "tag":
                if value.integer != nil { result["id"] = value }
            default: result[key] = value
            }
        }
        return result
    }

    /// `build_response`, then for a legacy call `api_compat::convert(…, Tr4)`.
    static func response(_ outcome: Outcome, id: JSONValue?, legacy: Bool) -> JSONValue {
        guard legacy else {
            var top: [String: JSONValue] = ["jsonrpc": .string("2.0"), "id": id ?? .null]
            switch outcome {
            case .success(let result): top["result"] = .object(result)
            case .error(let code, let message, let data):
                var error: [String: JSONValue] = ["code": .number(Double(code)), "message": .string(message)]
                if !data.isEmpty { error["data"] = .object(data) }
                top["error"] = .object(error)
            }
            return .object(top)
        }
        var top: [String: JSONValue] = [:]
        if let tag = id?.integer { top["tag"] = .number(Double(tag)) }
        switch outcome {
        case .success(let result):
            top["arguments"] = .object(Dictionary(uniqueKeysWithValues: result.map { (currentNames[$0.key] ?? $0.key, $0.value) }))
            top["result"] = .string("success")
        case .error(let code, let message, let data):
            top["result"] = .string(code == -32601 ? "no method name" : data["error_string"]?.string ?? message)
            top["arguments"] = .object([:])
        }
        return .object(top)
    }
}

/// `Transmission41RPC` on a loopback socket of the loop under test.
public final class FakeTransmission41 {
    public var rpc: Transmission41RPC
    public private(set) var server: FakeHTTPServer!

    public init(loop: EventLoop, username: String, password: String) throws {
        rpc = Transmission41RPC(username: username, password: password)
        server = try FakeHTTPServer(loop: loop) { [unowned self] request in
            .answer(self.rpc.answer(method: request.method, target: request.target, headers: request.headers, body: Array(request.body.utf8)))
        }
    }

    public var url: HTTPURL { server.url }
}
