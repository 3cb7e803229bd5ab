import HTTP
@testable import HTTP
import Reactor
import TestSupport
import Testing

@Suite struct HTTPResponseParserTests {
    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Feeds `wire` in pieces of `size` bytes and collects every response.
    private func parseAll(_ wire: [UInt8], pieceSize size: Int) throws -> [HTTPResponse] {
        var parser = HTTPResponseParser()
        var responses: [HTTPResponse] = []
        var index = 0
        while index < wire.count {
            let piece = Array(wire[index..<min(index + size, wire.count)])
            index += size
            if let response = try parser.consume(piece) {
                responses.append(response)
                while let more = try parser.next() { responses.append(more) }
            }
        }
        if let last = try parser.finish() { responses.append(last) }
        return responses
    }

    static let login42 = """
        HTTP/1.1 200 OK\r
        content-type: text/plain; charset=UTF-8\r
        set-cookie: SID=abcDEF123; HttpOnly; path=/; SameSite=Strict\r
        Content-Length: 3\r
        \r
        Ok.
        """

    @Test func contentLengthResponseWithCookie() throws {
        let responses = try parseAll(bytes(Self.login42), pieceSize: 1000)
        #expect(responses.count == 1)
        let response = responses[0]
        #expect(response.status == 200)
        #expect(response.reason == "OK")
        #expect(response.text == "Ok.")
        #expect(response.headers["Content-Type"] == "text/plain; charset=UTF-8")
        #expect(response.cookies.map(\.name) == ["SID"])
        #expect(response.cookies.first?.value == "abcDEF123")
        #expect(response.keepAlive)
    }

    @Test(arguments: [1, 2, 3, 7, 64])
    func splitReadsGiveTheSameResult(pieceSize: Int) throws {
        let wire = bytes(Self.login42 + Self.chunked + "HTTP/1.1 204 No Content\r\nSet-Cookie: QBT_SID_8080=x; Path=/\r\nSet-Cookie: other=y\r\n\r\n")
        let responses = try parseAll(wire, pieceSize: pieceSize)
        #expect(responses.map(\.status) == [200, 200, 204])
        #expect(responses[1].text == "{\"listen_port\":51413}")
        #expect(responses[2].cookies.map(\.name) == ["QBT_SID_8080", "other"])
    }

    static let chunked = """
        HTTP/1.1 200 OK\r
        Transfer-Encoding: chunked\r
        \r
        b;ext=1\r
        {"listen_po\r
        A\r
        rt":51413}\r
        0\r
        X-Trailer: yes\r
        \r

        """

    @Test func chunkedBodyWithExtensionsAndTrailers() throws {
        let responses = try parseAll(bytes(Self.chunked), pieceSize: 1000)
        #expect(responses.count == 1)
        #expect(responses[0].text == "{\"listen_port\":51413}")
    }

    @Test func bodyUntilCloseIsCompletedByFinish() throws {
        var parser = HTTPResponseParser()
        #expect(try parser.consume(bytes("HTTP/1.0 200 OK\r\n\r\nv4.5.2")) == nil)
        let response = try parser.finish()
        #expect(response?.text == "v4.5.2")
        #expect(response?.keepAlive == false)
    }

    @Test func noBodyForHeadAnd304EvenWithContentLength() throws {
        var parser = HTTPResponseParser()
        parser.expectNoBody()
        let head = try parser.consume(bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"))
        #expect(head?.body == [])
        let notModified = try parser.consume(bytes("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"))
        #expect(notModified?.status == 304)
        #expect(parser.isIdle)
    }

    @Test func interimResponsesAreSkipped() throws {
        let responses = try parseAll(bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), pieceSize: 5)
        #expect(responses.map(\.status) == [200])
    }

    @Test func connectionCloseAndHTTP10KeepAlive() throws {
        var parser = HTTPResponseParser()
        let close = try parser.consume(bytes("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
        #expect(close?.keepAlive == false)
        let keep = try parser.consume(bytes("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"))
        #expect(keep?.keepAlive == true)
    }

    @Test func aTabInAHeaderValueIsFine() throws {
        var parser = HTTPResponseParser()
        let response = try parser.consume(bytes("HTTP/1.0 200 OK\r\nX-Note: a\tb\r\nContent-Length: 0\r\n\r\n"))
        #expect(response?.headers["X-Note"] == "a\tb")
        #expect(response?.version.minor == 0)
    }

    @Test func bareLineFeedsAreAccepted() throws {
        var parser = HTTPResponseParser()
        let response = try parser.consume(bytes("HTTP/1.1 403 Forbidden\nContent-Length: 9\n\nForbidden"))
        #expect(response?.status == 403)
        #expect(response?.text == "Forbidden")
    }

    @Test(arguments: [
        ("SSH-2.0-OpenSSH_9.2\r\n\r\n", "is not HTTP"),
        ("HTTP/1.1 2000 OK\r\n\r\n", "bad status code"),
        ("HTTP/2.0 200 OK\r\n\r\n", "unsupported version"),
        ("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "without a colon"),
        ("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "bad header name"),
        ("HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n", "folded"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", "bad Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", "conflicting Content-Length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "chunk data longer"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", "over the"),
        ("HTTP/1.1 200 OK\r\nSet-Cookie: SID=abc\rdef; path=/\r\nContent-Length: 0\r\n\r\n", "header line 1 holds a bare CR"),
        ("HTTP/1.1 200 OK\r\nX: 1\r\nSet-Cookie: SID=a\u{0}b\r\n\r\n", "header line 2 holds control byte 0x0"),
        ("HTTP/1.1 200 OK\r\nX: a\u{1B}[2Kb\r\n\r\n", "header line 1 holds control byte 0x1B"),
        ("HTTP/1.1 200 O\rK\r\n\r\n", "the status line holds a bare CR"),
        ("HTTP/1.-1 200 OK\r\n\r\n", "unsupported version"),
        ("HTTP/1.+1 200 OK\r\n\r\n", "unsupported version"),
        ("HTTP/01.1 200 OK\r\n\r\n", "unsupported version"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-0\r\n\r\n", "bad chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
        ("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nabc", "bad Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3,\r\n\r\nabc", "bad Content-Length"),
    ])
    func malformedInputIsAnErrorNamingTheProblem(wire: String, expected: String) {
        var parser = HTTPResponseParser()
        #expect {
            _ = try parser.consume(bytes(wire))
        } throws: { error in
            (error as? HTTPParseError)?.message.contains(expected) == true
        }
    }

    @Test func truncatedResponsesAreReportedAtClose() throws {
        var parser = HTTPResponseParser()
        #expect(try parser.consume(bytes("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")) == nil)
        #expect(throws: HTTPParseError("connection closed before the body was complete")) { try parser.finish() }
        var headOnly = HTTPResponseParser()
        #expect(try headOnly.consume(bytes("HTTP/1.1 200 OK\r\nContent")) == nil)
        #expect(throws: HTTPParseError("connection closed inside the header section")) { try headOnly.finish() }
    }

    @Test func endlessHeadersHitTheLimit() throws {
        var parser = HTTPResponseParser(maxHeaderBytes: 1024)
        #expect(throws: HTTPParseError.self) {
            _ = try parser.consume(bytes("HTTP/1.1 200 OK\r\n"))
            for _ in 0..<100 { _ = try parser.consume(bytes("X-Padding: 0123456789\r\n")) }
        }
    }

    @Test func randomGarbageNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var parser = HTTPResponseParser(maxHeaderBytes: 2048, maxBodyBytes: 4096)
            let length = Int.random(in: 0..<400, using: &generator)
            var wire = Array("HTTP/1.1 200 OK\r\n".utf8)
            wire += (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? parser.consume(wire)
            _ = try? parser.finish()
        }
    }
}

@Suite struct HTTPRequestTests {
    @Test func formRequestIsPercentEncodedWithContentLength() throws {
        var request = HTTPRequest.form("/api/v2/auth/login", fields: [("username", "admin"), ("password", "p&ss=w+rd %é")])
        request.headers.add("Host", "127.0.0.1:8080")
        let text = String(decoding: try request.serialized(), as: UTF8.self)
        let body = "username=admin&password=p%26ss%3Dw%2Brd%20%25%C3%A9"
        #expect(text == "POST /api/v2/auth/login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nHost: 127.0.0.1:8080\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }

    @Test func getHasNoContentLength() throws {
        let request = HTTPRequest(method: "GET", target: "/api/v2/app/version", headers: ["Host": "localhost"])
        #expect(String(decoding: try request.serialized(), as: UTF8.self) == "GET /api/v2/app/version HTTP/1.1\r\nHost: localhost\r\n\r\n")
    }

    @Test func emptyPostCarriesContentLengthZero() throws {
        let request = HTTPRequest(method: "POST", target: "/api/v2/auth/logout")
        #expect(String(decoding: try request.serialized(), as: UTF8.self).hasSuffix("Content-Length: 0\r\n\r\n"))
    }

    @Test(arguments: ["SID=abc\rdef", "SID=abc\r\ndef", "k\r\n\r\n\r\n", "a\nb", "a\u{0}b", "a\u{7F}b", "\r\n"])
    func aHeaderValueThatCannotBeSentIsAnErrorNotACrash(value: String) {
        let request = HTTPRequest(method: "GET", target: "/api/v2/app/version", headers: ["Cookie": value])
        #expect(throws: HTTPRequestError("header Cookie holds a line break or another control character")) {
            try request.serialized()
        }
    }

    @Test func aTargetWithASpaceOrLineBreakIsRefused() {
        for target in ["/v1/port forward", "/v1/\r\nX-Injected: 1", "/a\rb", "v1/portforward", ""] {
            #expect(throws: HTTPRequestError.self, "\(target.oneLine())") {
                try HTTPRequest(method: "GET", target: target).serialized()
            }
        }
    }
}

@Suite struct HTTPURLTests {
    @Test func parsesHostPortAndPath() throws {
        let url = try HTTPURL(parsing: "http://127.0.0.1:8080")
        #expect(url.host == "127.0.0.1")
        #expect(url.port == 8080)
        #expect(url.hostHeader == "127.0.0.1:8080")
        #expect(url.target("/api/v2/app/version") == "/api/v2/app/version")
        let proxied = try HTTPURL(parsing: "https://example.lan/qbt/")
        #expect(proxied.port == 443)
        #expect(proxied.hostHeader == "example.lan")
        #expect(proxied.target("/api/v2/app/version") == "/qbt/api/v2/app/version")
        let v6 = try HTTPURL(parsing: "http://[::1]:9000")
        #expect(v6.bareHost == "::1")
        #expect(v6.port == 9000)
        let encoded = try HTTPURL(parsing: "HTTP://qbt.example_lan:08080/q%20b/t~x/")
        #expect(encoded.port == 8080)
        #expect(encoded.basePath == "/q%20b/t~x")
    }

    @Test(arguments: [
        ("127.0.0.1:8080", "has no scheme"),
        ("ftp://host", "scheme must be http or https"),
        ("http://host:0", "bad port"),
        ("http://host:70000", "bad port"),
        ("http://user:pw@host", "URL \"http://user:***@host\" must not carry credentials"),
        ("http://a:b@c@host/p@q", "URL \"http://a:***@host/p@q\" must not carry credentials"),
        ("http://", "has no host"),
        ("http://ho st", "holds a space"),
        ("http://host\r\nX-Injected: 1", "control character"),
        ("http://host/\rpath", "control character"),
        ("http://h:80:80", "more than one port"),
        ("http://[]:80", "bad IPv6 address"),
        ("http://[nonsense]:80", "bad IPv6 address"),
        ("http://h:", "bad port"),
        ("http://h:+80", "bad port"),
        ("http://h:080080", "bad port"),
        ("http://h:-1", "bad port"),
        ("http://300.1.1.1", "bad IPv4 address"),
        ("http://h/a?b=c", "query or fragment"),
        ("http://h?b=c", "query or fragment"),
        ("http://h/a\"b", "bad path"),
        ("http://h/a%zz", "bad path"),
        ("http://h/a<b>", "bad path"),
        ("http://hôst", "non-ASCII"),
    ])
    func rejectsBadURLs(text: String, problem: String) {
        #expect { try HTTPURL(parsing: text) } throws: { error in
            (error as? URLError)?.description.contains(problem) == true
        }
    }
}
