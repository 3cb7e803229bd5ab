import HTTP

/// Answers recorded byte for byte from the real daemons the tests run (Debian 12's
/// transmission-daemon 3.00 and deluged + deluge-web 2.0.3, with the locked-down configurations
/// of docs/test-daemons.md), by a plain socket client. Session ids and cookies are as they came.
enum Recorded {
    static func response(_ raw: String) -> HTTPResponse {
        var parser = HTTPResponseParser()
        if let response = try! parser.consume(Array(raw.utf8)) { return response }
        return try! parser.finish()!
    }

    // MARK: transmission-daemon 3.00

    static let transmissionSessionID = "BfwY7f7awlclGMcb5rEvKI7gH3nqNREWzCWoL9i3atDp6cK0"

    /// Any request without the session id (here the first `session-get`, with the right password).
    static let transmissionConflict = response("HTTP/1.1 409 Conflict\r\nServer: Transmission\r\nX-Transmission-Session-Id: BfwY7f7awlclGMcb5rEvKI7gH3nqNREWzCWoL9i3atDp6cK0\r\nDate: Thu, 26 Nov 2026 01:05:04 GMT\r\nContent-Length: 581\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\n<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p><p>To fix this, follow these steps:<ol><li> When reading a response, get its X-Transmission-Session-Id header and remember it<li> Add the updated header to your outgoing requests<li> When you get this 409 error message, resend your request with the updated header</ol></p><p>This requirement has been added to help prevent <a href=\"https://en.wikipedia.org/wiki/Cross-site_request_forgery\">CSRF</a> attacks.</p><p><code>X-Transmission-Session-Id: BfwY7f7awlclGMcb5rEvKI7gH3nqNREWzCWoL9i3atDp6cK0</code></p>")

    /// A wrong password (or none): checked before the session id.
    static let transmissionUnauthorized = response("HTTP/1.1 401 Unauthorized\r\nServer: Transmission\r\nWWW-Authenticate: Basic realm=\"Transmission\"\r\nDate: Thu, 26 Nov 2026 01:05:05 GMT\r\nContent-Length: 82\r\nContent-Type: text/html; charset=ISO-8859-1\r\nConnection: close\r\n\r\n<h1>401: Unauthorized</h1><p>Unauthorized User. 2 unsuccessful login attempts.</p>")

    /// `session-get` of `rpc-version`, `version`, `peer-port`, `peer-port-random-on-start`, `port-forwarding-enabled`.
    static func transmissionProbe(port: Int = 51999, tag: Int) -> HTTPResponse {
        transmissionJSON(#"{"arguments":{"peer-port":\#(port),"peer-port-random-on-start":false,"port-forwarding-enabled":false,"rpc-version":16,"rpc-version-minimum":1,"version":"3.00 (bb6b5a062e)"},"result":"success","tag":\#(tag)}"#)
    }

    /// `session-set` of the three fields.
    static func transmissionSet(tag: Int) -> HTTPResponse {
        transmissionJSON(#"{"arguments":{},"result":"success","tag":\#(tag)}"#)
    }

    /// `session-get` with `fields: ["peer-port"]`.
    static func transmissionPort(_ port: Int, tag: Int) -> HTTPResponse {
        transmissionJSON(#"{"arguments":{"peer-port":\#(port)},"result":"success","tag":\#(tag)}"#)
    }

    /// A method 3.00 does not know.
    static func transmissionUnknownMethod(tag: Int) -> HTTPResponse {
        transmissionJSON(#"{"arguments":{},"result":"method name not recognized","tag":\#(tag)}"#)
    }

    static func transmissionJSON(_ body: String) -> HTTPResponse {
        response("HTTP/1.1 200 OK\r\nServer: Transmission\r\nContent-Type: application/json; charset=UTF-8\r\nDate: Thu, 26 Nov 2026 01:05:08 GMT\r\nContent-Length: \(body.utf8.count + 1)\r\nConnection: close\r\n\r\n\(body)\n")
    }

    // MARK: deluge-web 2.0.3 (deluged 2.0.3, libtorrent 2.0.8)

    static let delugeCookie = "_session_id=8b10baf524ffe228a9106b31682b81b16edf1ac9cc091e0d041f23acdc2c6ee64643"
    static let delugeHostID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

    /// Any call before `auth.login`.
    static func delugeNotAuthenticated(id: Int) -> HTTPResponse {
        deluge(#"{"result": null, "error": {"message": "Not authenticated", "code": 1}, "id": \#(id)}"#, cookie: false)
    }

    static func delugeLogin(_ accepted: Bool, id: Int) -> HTTPResponse {
        deluge(#"{"result": \#(accepted), "error": null, "id": \#(id)}"#, cookie: accepted)
    }

    /// `web.connected`.
    static func delugeConnected(_ connected: Bool, id: Int) -> HTTPResponse {
        deluge(#"{"result": \#(connected), "error": null, "id": \#(id)}"#)
    }

    /// Any `core.*` call while deluge-web is not connected to its daemon (no cookie renewal).
    static func delugeUnknownMethod(id: Int) -> HTTPResponse {
        deluge(#"{"result": null, "error": {"message": "Unknown method", "code": 2}, "id": \#(id)}"#, cookie: false)
    }

    static func delugeHosts(id: Int) -> HTTPResponse {
        deluge(#"{"result": [["a1b2c3d4e5f60718293a4b5c6d7e8f90", "127.0.0.1", 58900, "portsync"]], "error": null, "id": \#(id)}"#)
    }

    /// `web.connect` that reached deluged: its method list (shortened here to its first and
    /// last entries); `null` when deluged was not there.
    static func delugeConnect(_ reached: Bool, id: Int) -> HTTPResponse {
        deluge(reached ? #"{"result": ["core.add_torrent_file", "core.get_config_value", "core.set_config", "daemon.shutdown"], "error": null, "id": \#(id)}"#
            : #"{"result": null, "error": null, "id": \#(id)}"#)
    }

    /// `core.get_config_values [["listen_ports", "random_port"]]`.
    static func delugeConfigValues(port: Int, random: Bool = false, id: Int) -> HTTPResponse {
        deluge(#"{"result": {"listen_ports": [\#(port), \#(port)], "random_port": \#(random)}, "error": null, "id": \#(id)}"#)
    }

    /// `core.get_config_value ["listen_ports"]`.
    static func delugeListenPorts(_ port: Int, id: Int) -> HTTPResponse {
        deluge(#"{"result": [\#(port), \#(port)], "error": null, "id": \#(id)}"#)
    }

    /// `core.set_config`, `core.force_reannounce`: no result.
    static func delugeNull(id: Int) -> HTTPResponse {
        deluge(#"{"result": null, "error": null, "id": \#(id)}"#)
    }

    /// `core.get_session_state`.
    static func delugeTorrents(_ ids: [String], id: Int) -> HTTPResponse {
        deluge(#"{"result": [\#(ids.map { "\"\($0)\"" }.joined(separator: ", "))], "error": null, "id": \#(id)}"#)
    }

    /// A `Content-Type` other than exactly `application/json`.
    static let delugeBadContentType = deluge(#"{"result": null, "id": null, "error": {"code": 5, "message": "JSONException: Invalid JSON request content-type: application/json;charset=UTF-8"}}"#, cookie: false)

    /// deluge-web's framing: chunked, `Connection: close`, the cookie renewed on every
    /// authenticated answer.
    static func deluge(_ body: String, cookie: Bool = true) -> HTTPResponse {
        let setCookie = cookie ? "Set-Cookie: \(delugeCookie); Expires=Thu, 26 Nov 2026 02:05:42 GMT; Path=/json\r\n" : ""
        let size = String(body.utf8.count, radix: 16)
        return response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nServer: TwistedWeb\r\nDate: Thu, 26 Nov 2026 01:05:42 GMT\r\nContent-Type: application/json\r\n\(setCookie)\r\n\(size)\r\n\(body)\r\n0\r\n\r\n")
    }
}
