import Reactor
@testable import HTTP

/// The first response in `bytes` as the HTTP client would hand it over (the connection closed
/// after them), or the error it would report.
func response(from bytes: [UInt8]) -> Result<HTTPResponse, HTTPClientError> {
    var parser = HTTPResponseParser()
    do throws(HTTPParseError) {
        if let response = try parser.consume(bytes) { return .success(response) }
        if let response = try parser.finish() { return .success(response) }
        return .failure(.closed)
    } catch {
        return .failure(.malformed(error))
    }
}

/// The properties of every request a session sends to `url`: a known method, a target under
/// the URL's base path with no space or control character, header names that are tokens,
/// values with no line break, the URL's Host header; and `serialized()` goes through.
func checkRequest(_ request: HTTPRequest, to url: HTTPURL, methods: Set<String>) {
    require(methods.contains(request.method), "method \(request.method)")
    require(request.target.hasPrefix(url.basePath + "/"), "target \(request.target) is not under \(url)")
    require(!request.target.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F },
            "target \(request.target.debugDescription) has a space or a control character")
    for (name, value) in request.headers {
        require(!name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }, "header name \(name.debugDescription)")
        require(!hasLineBreak(value), "header \(name) holds a line break: \(value.debugDescription)")
    }
    require(request.headers.values(for: "Host") == [url.hostHeader], "Host \(request.headers.values(for: "Host"))")
    let wire = try? request.serialized()
    require(wire != nil, "serialized() refused a request the session made")
    require((wire?.count ?? 0) >= request.body.count, "serialized")
}

/// The bytes of an answer: status line, headers, Content-Length and body.
func answer(_ status: Int, _ headers: [(String, String)] = [], _ body: String = "") -> [UInt8] {
    var text = "HTTP/1.1 \(status) \(status < 300 ? "OK" : "Error")\r\n"
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    return Array("\(text)Content-Length: \(body.utf8.count)\r\n\r\n\(body)".utf8)
}

/// `text` with its percent-escapes decoded (form bodies).
func percentDecoded(_ text: Substring) -> String {
    var bytes: [UInt8] = []
    var rest = Array(text.utf8)[...]
    while let byte = rest.popFirst() {
        if byte == UInt8(ascii: "%"), rest.count >= 2, let value = UInt8(String(decoding: rest.prefix(2), as: UTF8.self), radix: 16) {
            bytes.append(value)
            rest = rest.dropFirst(2)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
