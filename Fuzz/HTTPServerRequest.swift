@testable import Reactor
@testable import HTTP

/// HTTPServer.parse: what a client of the metrics endpoint sends.
///
/// Properties: the answer is the same whatever the bytes' arrival (the server parses what has
/// come so far after every read: each prefix gives nothing yet or the same answer as the whole);
/// a request it serves is a GET or a HEAD whose path has no query, no space and no control
/// character; anything else is turned away with 400 or 405; a request it serves, written out
/// again, parses back equal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPServerRequest(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let whole = HTTPServer.parse(bytes).map(Summary.init)
    for split in 0..<bytes.count {
        if let early = HTTPServer.parse(Array(bytes[..<split])).map(Summary.init) {
            require(early == whole, "after \(split) bytes the answer is \(early), after all of them \(String(describing: whole))")
            break
        }
    }
    guard case .request(let method, let path, let headers) = whole else {
        if case .refused(let status) = whole { require(status == 400 || status == 405, "refused with \(status)") }
        return 0
    }
    require(method == "GET" || method == "HEAD", "served \(method)")
    require(!path.contains("?") && !path.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7F },
            "path \(path.debugDescription)")
    var text = "\(method) \(path) HTTP/1.1\r\n"
    for (name, value) in headers { text += "\(name): \(value)\r\n" }
    let again = HTTPServer.parse(Array((text + "\r\n").utf8)).map(Summary.init)
    require(again == whole, "written out again, it reads as \(String(describing: again))")
    return 0
}

enum Summary: Equatable {
    case request(method: String, path: String, headers: HTTPHeaders)
    case refused(status: Int)

    init(_ parsed: HTTPServer.ParsedRequest) {
        switch parsed {
        case .request(let request): self = .request(method: request.method, path: request.path, headers: request.headers)
        case .refused(let response): self = .refused(status: response.status)
        }
    }
}
