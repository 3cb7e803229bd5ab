import Domain
import HTTP
import Reactor
@testable import Sinks
import TestSupport
import Testing

/// The two dialects of Transmission's RPC with plain values: the legacy one answered with what
/// transmission-daemon 3.00 really sent (`Recorded`), JSON-RPC 2.0 answered by
/// `Transmission41RPC`, which answers as Transmission 4.1.3's sources do.
@Suite struct TransmissionDialectTests {
    static let settings = ClientSettings(url: try! HTTPURL(parsing: "http://127.0.0.1:9091"), username: "portsync",
                                         password: Secret(value: "pa:ss&w=rd", origin: "test"))
    typealias Driver = ClientSessionDriver<TransmissionSession>

    /// Answers every request the session sends with `rpc` until it sends none.
    func converse(_ driver: inout Driver, _ rpc: inout Transmission41RPC) {
        var answered = 0
        while driver.sent.count > answered, answered < 20 {
            answered = driver.sent.count
            driver.answer(rpc.answer(driver.sent[answered - 1]))
        }
    }

    func transmission41() -> Transmission41RPC { Transmission41RPC(username: "portsync", password: "pa:ss&w=rd") }

    @Test func the409sRpcVersionHeaderTurnsTheSessionToJSONRPC() {
        var rpc = transmission41()
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(52001)!))
        converse(&driver, &rpc)
        #expect(driver.bodies == [
            #"{"arguments":{"fields":["rpc-version","version","peer-port","peer-port-random-on-start","port-forwarding-enabled"]},"method":"session-get","tag":1}"#,
            #"{"id":2,"jsonrpc":"2.0","method":"session_get","params":{"fields":["rpc_version_semver","version","peer_port","peer_port_random_on_start","port_forwarding_enabled"]}}"#,
            #"{"id":3,"jsonrpc":"2.0","method":"session_set","params":{"peer_port":52001,"peer_port_random_on_start":false,"port_forwarding_enabled":false}}"#,
            #"{"id":4,"jsonrpc":"2.0","method":"session_get","params":{"fields":["peer_port"]}}"#,
        ])
        #expect(rpc.conflicts == 1 && rpc.legacyCalls == 0 && rpc.jsonRPCCalls == 3)
        #expect(rpc.peerPort == 52001 && rpc.fields["port_forwarding_enabled"] == .bool(false))
        #expect(driver.session.status.health == .verified && driver.session.status.verifiedPort == Port(52001))
        #expect(driver.session.status.version == "4.1.3 (838877323f)")
        #expect(driver.logged("connected to Transmission 4.1.3 (838877323f) (rpc_version_semver 6.0.1, JSON-RPC 2.0) at http://127.0.0.1:9091"))
        #expect(driver.logged("Transmission has peer_port 51413, port_forwarding_enabled true; setting peer_port 52001"))

        // The dialect is kept: the drift check reads in JSON-RPC at once, with no new 409.
        driver.reachDeadline()
        converse(&driver, &rpc)
        #expect(driver.sent.count == 5 && rpc.conflicts == 1 && rpc.jsonRPCCalls == 4)
        #expect(driver.lastBody == #"{"id":5,"jsonrpc":"2.0","method":"session_get","params":{"fields":["peer_port","peer_port_random_on_start","port_forwarding_enabled"]}}"#)
        #expect(driver.session.status.health == .verified)
    }

    /// 3.00 verified, then the daemon behind the URL is 4.1 (an upgrade): its 409 turns the
    /// session to JSON-RPC and the version is read again; then 3.00 again, and back to legacy.
    @Test func aNew409DecidesTheDialectAgain() {
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(51413)!))
        driver.answer(Recorded.transmissionConflict)
        driver.answer(Recorded.transmissionProbe(port: 51413, tag: driver.tag))
        #expect(driver.session.status.version == "3.00 (bb6b5a062e)")

        var rpc = transmission41()
        rpc.fields["port_forwarding_enabled"] = .bool(false)
        driver.reachDeadline()
        converse(&driver, &rpc)
        #expect(driver.logged(#"Transmission now speaks JSON-RPC 2.0 (X-Transmission-Rpc-Version "6.0.1"): reading its version again"#))
        #expect(driver.bodies[3].hasPrefix(#"{"id":4,"jsonrpc":"2.0","method":"session_get","params":{"fields":["rpc_version_semver","#))
        #expect(driver.session.status.version == "4.1.3 (838877323f)" && driver.session.status.health == .verified)
        #expect(driver.sent.count == 4 && rpc.legacyCalls == 0)

        driver.reachDeadline()
        driver.answer(Recorded.transmissionConflict)
        #expect(driver.logged("Transmission now speaks the legacy RPC (X-Transmission-Rpc-Version absent): reading its version again"))
        #expect(driver.lastBody == #"{"arguments":{"fields":["rpc-version","version","peer-port","peer-port-random-on-start","port-forwarding-enabled"]},"method":"session-get","tag":6}"#)
        driver.answer(Recorded.transmissionProbe(port: 51413, tag: driver.tag))
        #expect(driver.session.status.version == "3.00 (bb6b5a062e)" && driver.session.status.health == .verified)
    }

    /// After the 4.1 handshake, answers 4.1 would not give: each a failure that names what is
    /// wrong, retried after the back-off, never taken for a verified port.
    @Test(arguments: [
        (#"{"id":3,"jsonrpc":"2.0","result":{"peer_port":52001}}"#, "answer to session_get has id 3, not 2"),
        (#"{"jsonrpc":"2.0","result":{"peer_port":52001}}"#, "answer to session_get has id (none), not 2"),
        (#"{"id":2,"jsonrpc":"2.0","result":[52001]}"#, "answer to session_get has a \"result\" that is not an object: [52001]"),
        (#"{"id":2,"jsonrpc":"2.0","result":"success"}"#, "answer to session_get has a \"result\" that is not an object: \"success\""),
        (#"{"id":2,"jsonrpc":"2.0"}"#, "answer to session_get has neither \"result\" nor \"error\""),
        (#"{"arguments":{"peer-port":52001},"result":"success","tag":2}"#, "answer to session_get is a legacy answer, not JSON-RPC 2.0"),
        (#"{"id":2,"jsonrpc":"1.0","result":{}}"#, "answer to session_get has jsonrpc \"1.0\", not \"2.0\""),
        (#"{"error":{"code":-32601,"message":"Method not found"},"id":2,"jsonrpc":"2.0","result":{}}"#, "answer to session_get has both \"result\" and \"error\""),
        (#"{"error":"nope","id":2,"jsonrpc":"2.0"}"#, "answer to session_get has an \"error\" that is not a JSON-RPC error object: \"nope\""),
        (#"{"error":{"code":-32601,"message":"Method not found"},"id":2,"jsonrpc":"2.0"}"#, "Transmission answered session_get with error -32601 \"Method not found\""),
        (#"{"error":{"code":-32600,"data":{"error_string":"JSON-RPC version is not 2.0"},"message":"Invalid Request"},"id":null,"jsonrpc":"2.0"}"#,
         "Transmission answered session_get with error -32600 \"Invalid Request\": JSON-RPC version is not 2.0"),
        (#"{"error":{"code":7,"message":"HTTP error from backend service"},"id":9,"jsonrpc":"2.0"}"#, "answer to session_get has id 9, not 2"),
    ])
    func aJSONRPCAnswerIsReadStrictly(_ body: String, _ message: String) {
        var rpc = transmission41()
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(rpc.answer(driver.sent[0]))
        driver.answer(Transmission41RPC.json(body))
        #expect(driver.logs.last?.0 == .error && driver.logs.last?.1 == message, "\(driver.logs)")
        #expect(driver.session.status.health == .failing(message))
        #expect(driver.sent.count == 2)
        #expect(driver.session.nextDeadline == driver.now + .milliseconds(500))
    }

    @Test(arguments: [
        (#"{"arguments":{"peer-port":51999,"rpc-version":16,"version":"3.00"},"result":"success","tag":7}"#, "answer to session-get has tag 7, not 2"),
        (#"{"arguments":{"peer-port":51999,"rpc-version":16,"version":"3.00"},"result":"success"}"#, "answer to session-get has tag (none), not 2"),
        (#"{"arguments":[],"result":"success","tag":2}"#, "answer to session-get has no \"arguments\" object"),
        (#"{"result":"success","tag":2}"#, "answer to session-get has no \"arguments\" object"),
        (#"{"id":2,"jsonrpc":"2.0","result":{"peer_port":51999}}"#, #"answer to session-get is JSON-RPC ({"id":2,"jsonrpc":"2.0","result":{"peer_port":51999}}), not the legacy RPC asked for"#),
    ])
    func aLegacyAnswerIsReadStrictly(_ body: String, _ message: String) {
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(52001)!))
        driver.answer(Recorded.transmissionConflict)
        driver.answer(Recorded.transmissionJSON(body))
        #expect(driver.logs.last?.0 == .error && driver.logs.last?.1 == message, "\(driver.logs)")
        #expect(driver.session.status.health == .failing(message))
        #expect(driver.sent.count == 2)
    }

    /// rpc-spec.md §5: the header arrived with 6.0.0 (4.1.0); 4.1.1 to 4.1.3 send 6.0.1, the main
    /// branch 6.1.0.
    @Test func theRpcVersionHeaderNamesTheDialect() {
        typealias Dialect = TransmissionRPC.Dialect
        #expect(Dialect(rpcVersionHeader: nil) == .legacy)
        #expect(Dialect(rpcVersionHeader: "5.3.0") == .legacy)
        for jsonRPC in ["6.0.0", "6.0.1", " 6.1.0 ", "6.1.0-dev", "7.0.0"] { #expect(Dialect(rpcVersionHeader: jsonRPC) == .jsonRPC, "\(jsonRPC)") }
        for garbage in ["", "six", "6.0", "6..1", "6.0.1.2", "v6.0.1", "6.0.x", "9999999999.0.0"] { #expect(Dialect(rpcVersionHeader: garbage) == nil, "\(garbage)") }
    }

    @Test func a409WhoseRpcVersionIsNoVersionIsAFailure() {
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(52001)!))
        var conflict = Transmission41RPC.json("")
        conflict.status = 409
        conflict.headers.add("X-Transmission-Session-Id", "abc")
        conflict.headers.add("X-Transmission-Rpc-Version", "six")
        driver.answer(conflict)
        let message = #"Transmission answered session-get with 409 and X-Transmission-Rpc-Version "six", which is not a version"#
        #expect(driver.session.status.health == .failing(message))
        #expect(driver.sent.count == 1)
        driver.reachDeadline()
        #expect(driver.sent.count == 2 && driver.sent[1].headers["X-Transmission-Session-Id"] == nil)
    }

    /// 4.x answers its IP whitelist and its lock-out after failed logins with the same bare
    /// page (rpc-server.cc `send_simple_response(req, 403)`): the message names both.
    @Test func aBare403NamesTheWhitelistAndTheLockOut() {
        var driver = Driver(TransmissionSession(settings: Self.settings))
        driver.feed(.desiredPort(Port(52001)!))
        var forbidden = Transmission41RPC.json("<h1>403: Forbidden</h1>")
        forbidden.status = 403
        driver.answer(forbidden)
        #expect(driver.session.isLoginRefused)
        #expect(driver.logged("Transmission refused this address or locked its RPC after too many failed logins (403): add the address to rpc-whitelist, or fix the password and restart transmission-daemon"))
    }
}

/// The stand-in itself, against the bytes Transmission 4.1.3's sources produce.
@Suite struct Transmission41StandInTests {
    static let date = "Mon, 07 Dec 2026 09:30:00 GMT"
    static func transmission41() -> Transmission41RPC {
        var rpc = Transmission41RPC(username: "portsync", password: "secret")
        rpc.date = date
        return rpc
    }

    func post(_ body: String, sessionID: String? = nil, authorized: Bool = true) -> HTTPRequest {
        var headers: HTTPHeaders = ["Host": "127.0.0.1:9091", "Content-Type": "application/json"]
        if authorized { headers.addBasicAuthorization(user: "portsync", password: "secret") }
        if let sessionID { headers.add("X-Transmission-Session-Id", sessionID) }
        return HTTPRequest(method: "POST", target: "/transmission/rpc", headers: headers, body: Array(body.utf8))
    }

    func wire(_ response: HTTPResponse) -> String { String(decoding: FakeHTTPServer.serialize(response), as: UTF8.self) }

    @Test func aRequestWithoutTheSessionIDGetsThe409() {
        var rpc = Self.transmission41()
        let id = rpc.sessionID
        let html = "<h1>409: Conflict</h1><p>Your request had an invalid session_id header.</p><p>To fix this, follow these steps:<ol><li> When reading a response, get its X-Transmission-Session-Id header and remember it<li> Add the updated header to your outgoing requests<li> When you get this 409 error message, resend your request with the updated header</ol></p><p>This requirement has been added to help prevent <a href=\"https://en.wikipedia.org/wiki/Cross-site_request_forgery\">CSRF</a> attacks.</p><p><code>X-Transmission-Session-Id: \(id)</code></p>"
        #expect(wire(rpc.answer(post(#"{"id":1,"jsonrpc":"2.0","method":"session_get"}"#))) ==
            "HTTP/1.1 409 Conflict\r\nServer: Transmission\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Security-Policy: frame-ancestors 'self'\r\nX-Transmission-Session-Id: \(id)\r\nX-Transmission-Rpc-Version: 6.0.1\r\nDate: \(Self.date)\r\nContent-Length: \(html.utf8.count)\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n\(html)")
        #expect(rpc.answer(post("{}", sessionID: "stale")).status == 409)
        #expect(rpc.conflicts == 2 && rpc.jsonRPCCalls == 0)
        #expect(wire(rpc.answer(post("{}", sessionID: id, authorized: false))) ==
            "HTTP/1.1 401 Unauthorized\r\nServer: Transmission\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Security-Policy: frame-ancestors 'self'\r\nWWW-Authenticate: Basic realm=\"Transmission\"\r\nDate: \(Self.date)\r\nContent-Length: 26\r\nContent-Type: text/html; charset=ISO-8859-1\r\n\r\n<h1>401: Unauthorized</h1>")
    }

    @Test func bothDialectsAreAnsweredInTheirOwnShape() {
        var rpc = Self.transmission41()
        let id = rpc.sessionID
        #expect(wire(rpc.answer(post(#"{"id":7,"jsonrpc":"2.0","method":"session_get","params":{"fields":["peer_port","version"]}}"#, sessionID: id))) ==
            "HTTP/1.1 200 OK\r\nServer: Transmission\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Security-Policy: frame-ancestors 'self'\r\nContent-Type: application/json; charset=UTF-8\r\nDate: \(Self.date)\r\nContent-Length: 84\r\n\r\n"
            + #"{"id":7,"jsonrpc":"2.0","result":{"peer_port":51413,"version":"4.1.3 (838877323f)"}}"#)
        #expect(rpc.answer(post(#"{"arguments":{"fields":["peer-port","rpc-version"]},"method":"session-get","tag":8}"#, sessionID: id)).text ==
            #"{"arguments":{"peer-port":51413,"rpc-version":19},"result":"success","tag":8}"#)
        #expect(rpc.answer(post(#"{"arguments":{"peer-port":40000},"method":"session-set","tag":9}"#, sessionID: id)).text ==
            #"{"arguments":{},"result":"success","tag":9}"#)
        #expect(rpc.peerPort == 40000)
        #expect(rpc.answer(post(#"{"arguments":{},"method":"port-test","tag":10}"#, sessionID: id)).text ==
            #"{"arguments":{},"result":"no method name","tag":10}"#)
        #expect(rpc.legacyCalls == 3 && rpc.jsonRPCCalls == 1)
    }

    /// What 4.1 does with a call half in each dialect: kebab-case names in JSON-RPC are
    /// unknown (the method) or ignored (fields, parameters), `arguments` is not `params`, no id
    /// is a notification (204, no body), another `jsonrpc` is an invalid request.
    @Test func mixedCallsAreTreatedAs41TreatsThem() {
        var rpc = Self.transmission41()
        let id = rpc.sessionID
        #expect(rpc.answer(post(#"{"id":1,"jsonrpc":"2.0","method":"session-get","params":{}}"#, sessionID: id)).text ==
            #"{"error":{"code":-32601,"message":"Method not found"},"id":1,"jsonrpc":"2.0"}"#)
        #expect(rpc.answer(post(#"{"id":2,"jsonrpc":"2.0","method":"session_get","params":{"fields":["peer-port"]}}"#, sessionID: id)).text ==
            #"{"id":2,"jsonrpc":"2.0","result":{}}"#)
        #expect(rpc.answer(post(#"{"id":3,"jsonrpc":"2.0","method":"session_set","params":{"peer-port":40000}}"#, sessionID: id)).text ==
            #"{"id":3,"jsonrpc":"2.0","result":{}}"#)
        #expect(rpc.answer(post(#"{"arguments":{"peer_port":40001},"id":4,"jsonrpc":"2.0","method":"session_set"}"#, sessionID: id)).text ==
            #"{"id":4,"jsonrpc":"2.0","result":{}}"#)
        #expect(rpc.peerPort == 51413)
        let notification = rpc.answer(post(#"{"jsonrpc":"2.0","method":"session_set","params":{"peer_port":40002}}"#, sessionID: id))
        #expect(wire(notification) == "HTTP/1.1 204 OK\r\nServer: Transmission\r\nX-Frame-Options: SAMEORIGIN\r\nContent-Security-Policy: frame-ancestors 'self'\r\nDate: \(Self.date)\r\n\r\n")
        #expect(rpc.peerPort == 40002)
        #expect(rpc.answer(post(#"{"id":5,"jsonrpc":"1.0","method":"session_get"}"#, sessionID: id)).text ==
            #"{"error":{"code":-32600,"data":{"error_string":"JSON-RPC version is not 2.0"},"message":"Invalid Request"},"id":null,"jsonrpc":"2.0"}"#)
        #expect(rpc.answer(post(#"{"id":true,"jsonrpc":"2.0","method":"session_get"}"#, sessionID: id)).text ==
            #"{"error":{"code":-32600,"data":{"error_string":"id type must be String, Number, or Null"},"message":"Invalid Request"},"id":null,"jsonrpc":"2.0"}"#)
    }
}
