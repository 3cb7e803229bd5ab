import Glibc
import HTTP
@testable import HTTP
import Reactor
import TestSupport
import Testing

@Suite final class HTTPClientTests {
    let loop: EventLoop
    let server: FakeHTTPServer
    var results: [Result<HTTPResponse, HTTPClientError>] = []

    init() throws {
        loop = try EventLoop(logger: LogCapture().logger)
        server = try FakeHTTPServer(loop: loop) { request in
            .answer(HTTPResponse(status: 200, headers: request.target == "/close" ? ["Connection": "close"] : [:],
                                 body: Array("answer to \(request.target)".utf8)))
        }
    }

    func client(timeout: Duration = .seconds(5), port: UInt16? = nil) -> HTTPClient {
        HTTPClient(loop: loop, name: "test.http", url: try! HTTPURL(parsing: "http://127.0.0.1:\(port ?? server.port)"),
                   connectTimeout: timeout, responseTimeout: timeout)
    }

    func get(_ client: HTTPClient, _ target: String, retryIfStale: Bool = true) throws -> Result<HTTPResponse, HTTPClientError> {
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: target, headers: ["Host": "127.0.0.1"]), retryIfStale: retryIfStale) { result = $0 }
        try runUntil(loop, seconds: 10) { result != nil }
        return try #require(result)
    }

    @Test func aRequestThatCannotBeSentFailsWithoutCrashing() throws {
        let client = client()
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/a", headers: ["Cookie": "SID=abc\r\ndef"])) { result = $0 }
        try runUntil(loop, seconds: 10) { result != nil }
        guard case .failure(.invalidRequest(let error)) = result else {
            Issue.record("expected invalidRequest, got \(String(describing: result))")
            return
        }
        #expect(error.description == "request not sent: header Cookie holds a line break or another control character")
        #expect(try get(client, "/b").map(\.text) == .success("answer to /b"), "the client goes on")
    }

    @Test func anIPv6LiteralIsConnectedToWithItsBracketsInTheHostHeader() throws {
        let listener = Listener(ipv6: true)
        defer { listener.fd.close() }
        let url = try HTTPURL(parsing: "http://[::1]:\(listener.port)/qbt/")
        let client = HTTPClient(loop: loop, name: "test.http", url: url)
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: url.target("/api/v2/app/version"), headers: ["Host": url.hostHeader])) { result = $0 }
        try runUntil(loop) { client.requestsSent == 1 }
        let server = listener.accept()
        defer { server.close() }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(server.rawValue, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[0..<max(count, 0)], as: UTF8.self).hasPrefix("GET /qbt/api/v2/app/version HTTP/1.1\r\nHost: [::1]:\(listener.port)\r\n"))
        _ = try Socket(server).send(Array("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nv4.5.2".utf8))
        try runUntil(loop, seconds: 10) { result != nil }
        #expect(try result?.get().text == "v4.5.2")
    }

    @Test func aTLSAlertWhereAStatusLineBelongsSaysToUseHTTPS() throws {
        let listener = Listener()
        defer { listener.fd.close() }
        var result: Result<HTTPResponse, HTTPClientError>?
        let client = client(port: listener.port)
        client.send(HTTPRequest(method: "GET", target: "/")) { result = $0 }
        let server = listener.accept()
        defer { server.close() }
        _ = try Socket(server).send([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])  // alert: protocol version
        try runUntil(loop, seconds: 10) { result != nil }
        guard case .failure(.tls(let error)) = result else {
            Issue.record("expected a TLS failure, got \(String(describing: result))")
            return
        }
        #expect(error.description == "the server answered with TLS: use https:// in the URL")
    }

    @Test func anEndlessBodyFailsAtTheLimitWhileItIsRead() throws {
        let listener = Listener()
        defer { listener.fd.close() }
        let client = client(port: listener.port)
        var result: Result<HTTPResponse, HTTPClientError>?
        client.send(HTTPRequest(method: "GET", target: "/endless")) { result = $0 }
        try runUntil(loop) { client.requestsSent == 1 }
        let server = listener.accept()
        defer { server.close() }
        _ = fcntl(server.rawValue, F_SETFL, O_NONBLOCK)
        _ = try Socket(server).send(Array("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".utf8))
        let flood = [UInt8](repeating: 65, count: 64 * 1024)
        var sent = 0
        while result == nil && sent < 64 << 20 {
            if case .done(let count) = try Socket(server).send(flood) { sent += count }
            try loop.runOnce(timeout: .zero)
        }
        #expect(result.map { "\($0)" }?.contains("body longer than 4194304 bytes") == true, "\(String(describing: result))")
        #expect(sent < 6 << 20, "the client stopped reading soon after the limit")
    }

    @Test func requestsShareOneKeptAliveConnection() throws {
        let client = client()
        #expect(try get(client, "/a").map(\.text) == .success("answer to /a"))
        #expect(try get(client, "/b").map(\.text) == .success("answer to /b"))
        #expect(client.connectionsOpened == 1)
        #expect(client.requestsSent == 2)
    }

    @Test func queuedRequestsAreAnsweredInOrder() throws {
        let client = client()
        var answers: [String] = []
        for target in ["/1", "/2", "/3"] {
            client.send(HTTPRequest(method: "GET", target: target)) { answers.append((try? $0.get().text) ?? "failed") }
        }
        try runUntil(loop, seconds: 10) { answers.count == 3 }
        #expect(answers == ["answer to /1", "answer to /2", "answer to /3"])
        #expect(client.connectionsOpened == 1)
    }

    /// What an owner does in its completion comes before the next request starts: a close there
    /// leaves the waiting request unsent and its completion unrun.
    @Test func aCloseFromACompletionSendsNothingMore() throws {
        let client = client()
        var answers: [String] = []
        client.send(HTTPRequest(method: "GET", target: "/1")) { result in
            answers.append((try? result.get().text) ?? "failed")
            client.close()
        }
        client.send(HTTPRequest(method: "GET", target: "/2")) { _ in answers.append("the second was answered") }
        try runUntil(loop, seconds: 10) { !answers.isEmpty }
        #expect(answers == ["answer to /1"])
        #expect(client.requestsSent == 1)
        #expect(!client.isBusy)
    }

    @Test func aConnectionTheServerClosedWhileIdleIsReplacedOnce() throws {
        let client = client()
        _ = try get(client, "/first")
        server.dropAllConnections()
        #expect(try get(client, "/again").map(\.text) == .success("answer to /again"))
        #expect(client.connectionsOpened == 2)
    }

    @Test func withoutRetryAStaleConnectionIsReportedAsClosed() throws {
        let client = client()
        _ = try get(client, "/first")
        server.dropAllConnections()
        #expect(try get(client, "/login", retryIfStale: false) == .failure(.closed))
    }

    @Test func connectionCloseIsHonoured() throws {
        let client = client()
        _ = try get(client, "/close")
        _ = try get(client, "/next")
        #expect(client.connectionsOpened == 2)
    }

    @Test func silenceTimesOut() throws {
        server.handler = { _ in .silence }
        #expect(try get(client(timeout: .milliseconds(200)), "/hang") == .failure(.timedOut))
    }

    @Test func nobodyListeningIsUnreachable() throws {
        let result = try get(client(port: freePort()), "/")
        #expect(result == .failure(.connect(.refused)))
        if case .failure(let error) = result { #expect(error.isUnreachable) }
    }

    @Test func garbageIsMalformedAndTheNextRequestWorks() throws {
        server.handler = { request in
            request.target == "/bad"
                ? .answer(HTTPResponse(status: 200, headers: ["Content-Length": "x"], body: []))
                : .answer(HTTPResponse(status: 200, body: Array("fine".utf8)))
        }
        let client = client()
        guard case .failure(.malformed) = try get(client, "/bad") else { Issue.record("not malformed"); return }
        #expect(try get(client, "/good").map(\.text) == .success("fine"))
    }
}

@Suite struct JSONValueTests {
    @Test func parsesQBittorrentPreferences() throws {
        let text = #"{"listen_port":51413,"random_port":false,"upnp":true,"current_network_interface":"wg0","max_ratio":-1,"ratio":1.5e0,"name":"a\"b\\c\u00e9\ud83d\ude00","list":[1,null,{}]}"#
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value["listen_port"]?.integer == 51413)
        #expect(value["random_port"]?.bool == false)
        #expect(value["current_network_interface"]?.string == "wg0")
        #expect(value["max_ratio"]?.integer == -1)
        #expect(value["ratio"] == .number(1.5))
        #expect(value["ratio"]?.integer == nil)
        #expect(value["name"]?.string == "a\"b\\cé😀")
        #expect(value["list"]?.array?.count == 3)
    }

    /// What an answer that should be an object is instead: the reason every client quotes.
    @Test(arguments: [
        (#"{"port":1e999}"#, "number out of range at byte 13"),
        ("[1,2]", "an array"), (#""ok""#, "a string"), ("51413", "a number"), ("true", "a boolean"), ("null", "null"),
        ("<html>", "unexpected character at byte 0"), ("", "unexpected end of input at byte 0"),
    ])
    func whatIsNotAnObjectSaysWhatItIs(text: String, reason: String) {
        #expect(JSONValue.object(Array(text.utf8)) == .failure(JSONValue.NotAnObject(reason: reason)))
    }

    @Test func serializesStablyAndRoundTrips() throws {
        let value = JSONValue.object(["listen_port": .number(51413), "random_port": .bool(false), "iface": .string("w\"g\n0")])
        #expect(value.serialized == #"{"iface":"w\"g\n0","listen_port":51413,"random_port":false}"#)
        #expect(try JSONValue.parse(Array(value.serialized.utf8)) == value)
    }

    @Test(arguments: ["", "{", "{\"a\":}", "[1,]", "{\"a\" 1}", "tru", "01", "1.", "\"\\x\"", "\"a\nb\"", "{} {}", "<html>",
                      #""\u+041""#, #""\u-041""#, #""\u 041""#, #""\u41""#, #""\u004""#])
    func rejectsInvalidJSON(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func aLoneSurrogateIsReplacedWithoutLosingTheNextCharacter() throws {
        #expect(try JSONValue.parse(Array(#""\ud800\u0041B""#.utf8)) == .string("\u{FFFD}AB"))
        #expect(try JSONValue.parse(Array(#""\ud800\ud800\udc00""#.utf8)) == .string("\u{FFFD}\u{10000}"))
        #expect(try JSONValue.parse(Array(#""\ud800x""#.utf8)) == .string("\u{FFFD}x"))
        #expect(try JSONValue.parse(Array(#""\udc00\u0041""#.utf8)) == .string("\u{FFFD}A"))
        #expect(try JSONValue.parse(Array(#""\u00E9\u00e9""#.utf8)) == .string("éé"))
    }

    /// Strings without an escape and short integers take a shortcut: it must read exactly what
    /// the general path reads.
    @Test func theShortcutsReadWhatTheGeneralPathReads() throws {
        #expect(try JSONValue.parse(Array(#"["aé😀b","a\u00e9\ud83d\ude00b"]"#.utf8)) == .array([.string("aé😀b"), .string("aé😀b")]))
        #expect(try JSONValue.parse([0x22, 0x61, 0xFF, 0x62, 0x22]) == .string("a\u{FFFD}b"), "invalid UTF-8 is repaired, as before")
        #expect(throws: JSONValue.ParseError.self, "a control character ends the shortcut and is refused") {
            try JSONValue.parse([0x22, 0x61, 0x09, 0x22])
        }
        let numbers = try JSONValue.parse(Array("[0,-0,7,-7,999999999999999,-999999999999999,1234567890123456,51413]".utf8))
        #expect(numbers == .array([0, -0.0, 7, -7, 999_999_999_999_999, -999_999_999_999_999, 1_234_567_890_123_456, 51413].map { JSONValue.number($0) }))
        #expect(numbers.array?[1].serialized == JSONValue.number(-0.0).serialized, "-0 keeps its sign")
    }

    /// Keeping a few top-level members reads them as `parse` does and checks the rest as strictly.
    @Test func keepingSomeMembersDropsTheRestButStillChecksIt() throws {
        let text = #"{"listen_port":51413,"upnp":true,"nested":{"a":[1,"x\u00e9",{"b":null}]},"name":"a\"b","list":[1,2]}"#
        let kept = try JSONValue.parse(Array(text.utf8), members: ["listen_port", "name", "missing"])
        #expect(kept == .object(["listen_port": .number(51413), "name": .string("a\"b")]))
        #expect(try JSONValue.parse(Array(text.utf8), members: nil) == JSONValue.parse(Array(text.utf8)))
        for broken in [#"{"listen_port":1,"x":{"a":tru}}"#, #"{"listen_port":1,"x":"\q"}"#, #"{"listen_port":1,"x":[1,]}"#,
                       #"{"listen_port":1,"x":1e400}"#, #"{"listen_port":1,"x":"a"#, "{\"listen_port\":1,\"x\":\"a\u{1}\"}"] {
            #expect(throws: JSONValue.ParseError.self, "\(broken)") { try JSONValue.parse(Array(broken.utf8), members: ["listen_port"]) }
        }
        #expect(try JSONValue.parse(Array("[1,2]".utf8), members: ["a"]) == .array([.number(1), .number(2)]), "not an object: read whole")
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
    }
}
