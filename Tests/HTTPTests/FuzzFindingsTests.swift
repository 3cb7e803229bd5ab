import Testing
@testable import HTTP
import Reactor

/// What the fuzz targets (Fuzz/) found, kept as tests. Each input is also in the target's
/// corpus, Fuzz/Corpus/<target>/regression-*, so every fuzz run replays it too.
@Suite struct FuzzFindingsTests {
    /// Fuzz/Corpus/JSON/regression-number-out-of-range: read as infinity, written back as null.
    @Test(arguments: ["11e133111", "[-1e400]", "{\"port\":1e309}"])
    func jsonNumberBeyondADoubleIsRejected(text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func jsonNumbersAtTheEdgeOfADoubleStillParse() throws {
        #expect(try JSONValue.parse(Array("1.7976931348623157e308".utf8)) == .number(.greatestFiniteMagnitude))
        #expect(try JSONValue.parse(Array("5e-324".utf8)) == .number(.leastNonzeroMagnitude))
    }

    /// Fuzz/Corpus/URL/regression-space-in-path, -line-break-in-path: the base path goes into
    /// every request line as it is.
    @Test(arguments: ["http://127.0.0.1:8080/a b", "http://127.0.0.1:8080/qbt HTTP/1.1\r\nX: y", "http://h/\u{0}", "http://h/caf\u{E9}"])
    func urlPathWithSpaceControlOrNonASCIIIsRejected(text: String) {
        #expect { try HTTPURL(parsing: text) } throws: { error in
            (error as? URLError)?.problem.contains("a space, a control character or a non-ASCII character") == true
        }
    }

    /// Fuzz/Corpus/URL/regression-double-slash-path: "//" left a base path "/", and requests
    /// went to "//api/v2/…".
    @Test func urlTrailingSlashesAreAllDropped() throws {
        let url = try HTTPURL(parsing: "http://n//")
        #expect(url.basePath == "")
        #expect(url.target("/api/v2/app/version") == "/api/v2/app/version")
        #expect(try HTTPURL(parsing: "http://h/qbt///").basePath == "/qbt")
        #expect(try HTTPURL(parsing: url.description) == url)
    }

    /// Fuzz/Corpus/URL/regression-colon-in-host: "127.0.0.1:8:80" read as host "127.0.0.1:8",
    /// printed as http://127.0.0.1:8, which reads as port 8.
    @Test(arguments: ["http://127.0.0.1:8:80", "http://a:b:80", "http://[]", "http://[fe80::1%eth0]", "http://h]:80", "http://[::1]x"])
    func urlHostWithAStrayColonOrBracketIsRejected(text: String) {
        #expect(throws: URLError.self) { try HTTPURL(parsing: text) }
    }

    @Test func urlIPv6HostsStillParse() throws {
        let url = try HTTPURL(parsing: "http://[::ffff:127.0.0.1]:8080/")
        #expect(url.host == "[::ffff:127.0.0.1]")
        #expect(url.port == 8080)
        #expect(try HTTPURL(parsing: url.description) == url)
    }

    /// Fuzz/Corpus/HTTPServerRequest/regression-control-character-in-path: the metrics server
    /// took a control character (a bare CR or LF too) in the request line into the path.
    @Test(arguments: ["GET /\u{2}metrics HTTP/1.1\r\n\r\n", "GET /metrics\nX HTTP/1.1\r\n\r\n", "GET /metrics\rX HTTP/1.1\r\n\r\n",
                      "GET /metrics\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n"])
    func aRequestLineWithAControlCharacterIsABadRequest(text: String) {
        guard case .refused(let response) = HTTPServer.parse(Array(text.utf8)) else {
            Issue.record("served \(text.debugDescription)")
            return
        }
        #expect(response.status == 400)
    }

    /// Fuzz/Corpus/HTTPServerRequest/regression-control-character-in-header, -target-not-a-path:
    /// a bare CR or LF, a NUL, inside a header line, or a line that is no "name: value", was
    /// taken as a header that read differently once written out; "GET ?" was served with an
    /// empty path, "HTTP/1.10" taken for HTTP/1.1, and a combining mark after a space hid the
    /// space from the split (-combining-mark-after-a-space).
    @Test(arguments: ["GET /metrics HTTP/1.1\r\nHost: a\rb\r\n\r\n", "GET /metrics HTTP/1.1\r\nX: a\nHost: b\r\n\r\n",
                      "GET /metrics HTTP/1.1\r\nX\u{0}: a\r\n\r\n", "GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
                      "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", "GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
                      "GET ? HTTP/1.10\r\n\r\n", "GET metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.10\r\n\r\n",
                      "GET /met \u{35D}ric HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1\r\nX: caf\u{E9}\r\n\r\n"])
    func aHeaderLineThatIsNotHTTPIsABadRequest(text: String) {
        guard case .refused(let response) = HTTPServer.parse(Array(text.utf8)) else {
            Issue.record("served \(text.debugDescription)")
            return
        }
        #expect(response.status == 400)
    }

    @Test func aScrapeIsStillServed() {
        let text = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9834\r\nUser-Agent: curl/7.88.1\r\n\r\n"
        guard case .request(let request) = HTTPServer.parse(Array(text.utf8)) else {
            Issue.record("refused a scrape")
            return
        }
        #expect(request.method == "GET" && request.path == "/metrics" && request.headers["Host"] == "127.0.0.1:9834")
        #expect(HTTPServer.parse(Array(text.utf8.dropLast(2))) == nil)
    }

    /// Fuzz/Corpus/HTTPResponseParser/regression-chunk-line-without-size: ";5" read as size 5.
    @Test func aChunkLineWithoutASizeIsAnError() throws {
        var parser = HTTPResponseParser()
        #expect(throws: HTTPParseError.self) {
            _ = try parser.consume(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;5\r\nhello\r\n0\r\n\r\n".utf8))
        }
        var extensions = HTTPResponseParser()
        let response = try extensions.consume(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n".utf8))
        #expect(response?.text == "hello")
    }
}
