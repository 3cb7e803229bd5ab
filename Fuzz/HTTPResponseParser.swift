@testable import Reactor
@testable import HTTP

/// HTTPResponseParser: the bytes of a connection, as a server (qBittorrent, Gluetun) sends them.
///
/// Properties: the input gives the same responses and the same verdict whole, byte by byte
/// (split at every point at once) and split in two (at up to 33 points); each response's framing is what RFC 9112 allows (an
/// independent reading of version, status, Content-Length and chunk sizes below: whatever the
/// parser accepts, it accepts too, with the same status and body); bodies stay within the
/// limit; and every response, written out again, parses back equal.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPResponseParser(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let whole = ParserRun(feeding: [bytes])
    require(ParserRun(feeding: bytes.map { [$0] }) == whole, "fed byte by byte, the result differs")
    for split in stride(from: 0, through: bytes.count, by: max(1, bytes.count / 32)) {
        let parts = [Array(bytes[..<split]), Array(bytes[split...])]
        require(ParserRun(feeding: parts) == whole, "split at byte \(split), the result differs")
    }

    var reference = ReferenceFraming(bytes: bytes)
    let expected = reference.responses()
    for (index, response) in whole.responses.enumerated() {
        require(index < expected.responses.count, "the parser accepted response \(index + 1), which RFC 9112 rejects")
        let framing = expected.responses[index]
        require(response.version == (1, framing.minor) && response.status == framing.status && response.body == framing.body,
                "response \(index + 1) reads as \(response.version) \(response.status) with a \(response.body.count)-byte body, RFC 9112 reads \(framing)")
        require(response.body.count <= ParserRun.maxBody, "a body over the limit was returned")

        var normal = response
        normal.headers.remove("Content-Length")
        normal.headers.remove("Transfer-Encoding")
        normal.headers.add("Content-Length", String(response.body.count))
        // Latin-1 in the head is written back as UTF-8, up to twice as long: more room.
        let again = ParserRun(feeding: [wire(normal)], maxHeader: 4 * ParserRun.maxHeader)
        require(again.completed && again.responses == [normal],
                "response \(index + 1), written out again, parses as \(again.responses.map(describe)), not \(describe(normal))")
    }
    require(!whole.completed || expected.complete, "the parser accepted the whole input; RFC 9112 rejects its end")
    return 0
}

func describe(_ response: HTTPResponse) -> String {
    "\(response.version) \(response.status) \(response.reason.debugDescription) \(response.headers.fields.map { "\($0.name.debugDescription): \($0.value.debugDescription)" }) \(response.body.count) bytes"
}

/// A response on the wire, framed by Content-Length.
func wire(_ response: HTTPResponse) -> [UInt8] {
    let status = String(response.status)  // three digits, as it came ("004" is 4)
    var text = "HTTP/\(response.version.major).\(response.version.minor) \(String(repeating: "0", count: max(0, 3 - status.count)) + status) \(response.reason)\r\n"
    for (name, value) in response.headers { text += "\(name): \(value)\r\n" }
    return Array((text + "\r\n").utf8) + response.body
}

/// Feeds a parser and collects what it says, up to the first error; `completed`: no error,
/// and the connection's close (`finish()`) left nothing unfinished.
struct ParserRun: Equatable {
    static let maxHeader = 512
    static let maxBody = 2048

    var responses: [HTTPResponse] = []
    var completed = false

    init(feeding parts: [[UInt8]], maxHeader: Int = Self.maxHeader) {
        var parser = HTTPResponseParser(maxHeaderBytes: maxHeader, maxBodyBytes: Self.maxBody)
        do {
            for part in parts {
                var next = try parser.consume(part)
                while let response = next {
                    responses.append(response)
                    next = try parser.next()
                }
            }
            if let last = try parser.finish() { responses.append(last) }
            completed = true
        } catch {
            completed = false
        }
    }
}

/// RFC 9112's framing, read separately and as leniently as the parser means to be (bare LF
/// line ends, interim 1xx responses skipped, 204 and 304 without a body, a body until the
/// close when nothing else frames it), but strict where the RFC is: `HTTP/` digits `.` digits
/// (major 1), three-digit status, Content-Length digits only (equal values in a list), chunk sizes hex
/// digits only.
struct ReferenceFraming {
    struct Framing: CustomStringConvertible {
        var minor: Int
        var status: Int
        var body: [UInt8]
        var description: String { "1.\(minor) \(status) with a \(body.count)-byte body" }
    }

    let bytes: [UInt8]
    var at = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// The responses up to the first one that is malformed or cut short; `complete`: all of
    /// the input is whole responses.
    mutating func responses() -> (responses: [Framing], complete: Bool) {
        var found: [Framing] = []
        while at < bytes.count {
            guard let response = response() else { return (found, false) }
            if let response { found.append(response) }
        }
        return (found, true)
    }

    /// One response; .some(nil) for an interim one; nil when malformed or cut short.
    mutating func response() -> Framing?? {
        guard let head = head() else { return nil }
        let lines = head.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? Array(line.dropLast()) : Array(line)
        }
        let status = lines[0]
        guard let space = status.firstIndex(of: 0x20), status.starts(with: Array("HTTP/".utf8)) else { return nil }
        let numbers = status[5..<space].split(separator: 0x2E, omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        guard numbers.count == 2, numbers.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy(isDigit) }),
              Int(numbers[0]) == 1, let minor = Int(numbers[1]) else { return nil }
        let code = status[(space + 1)...].prefix(4)
        guard code.count >= 3, code.prefix(3).allSatisfy(isDigit), code.count == 3 || code.last == 0x20 else { return nil }
        let number = Int(String(decoding: code.prefix(3), as: UTF8.self))!

        var lengths: [[UInt8]]?
        var codings: [String] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: 0x3A) else { continue }
            let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
            let value = Array(line[(colon + 1)...])
            if name == "content-length" {
                lengths = (lengths ?? []) + value.split(separator: 0x2C).map { trimmed(Array($0)) }.filter { !$0.isEmpty }
            } else if name == "transfer-encoding" {
                codings += String(decoding: value, as: UTF8.self).lowercased().split(separator: ",").map { $0.trimmingSpaces }
            }
        }
        if (100..<200).contains(number) { return .some(nil) }
        var framing = Framing(minor: minor, status: number, body: [])
        if number == 204 || number == 304 { return framing }
        if let last = codings.last {
            guard last == "chunked" else {
                if codings.contains("chunked") { return nil }
                framing.body = Array(bytes[at...])
                at = bytes.count
                return framing
            }
            guard let body = chunks() else { return nil }
            framing.body = body
            return framing
        }
        guard let lengths else {
            framing.body = Array(bytes[at...])
            at = bytes.count
            return framing
        }
        guard let first = lengths.first, lengths.allSatisfy({ $0 == first && $0.allSatisfy(isDigit) }),
              first.count <= 15, let length = Int(String(decoding: first, as: UTF8.self)),
              at + length <= bytes.count else { return nil }
        framing.body = Array(bytes[at..<(at + length)])
        at += length
        return framing
    }

    /// The head up to its blank line (CRLF CRLF, or bare LFs), and the position after it.
    mutating func head() -> ArraySlice<UInt8>? {
        var index = at
        while index < bytes.count {
            if bytes[index] == 0x0A {
                var end: Int?
                if index + 1 < bytes.count && bytes[index + 1] == 0x0A { end = index + 2 }
                if index + 2 < bytes.count && bytes[index + 1] == 0x0D && bytes[index + 2] == 0x0A { end = index + 3 }
                if let end {
                    defer { at = end }
                    return bytes[at..<index]
                }
            }
            index += 1
        }
        return nil
    }

    mutating func line() -> [UInt8]? {
        guard let newline = bytes[at...].firstIndex(of: 0x0A) else { return nil }
        defer { at = newline + 1 }
        let line = bytes[at..<newline]
        return Array(line.last == 0x0D ? line.dropLast() : line)
    }

    mutating func chunks() -> [UInt8]? {
        var body: [UInt8] = []
        while true {
            guard let sizeLine = line() else { return nil }
            let size = trimmed(Array(sizeLine.split(separator: 0x3B, maxSplits: 1, omittingEmptySubsequences: false)[0]))
            guard !size.isEmpty, size.count <= 15, size.allSatisfy(isHexDigit),
                  let length = Int(String(decoding: size, as: UTF8.self), radix: 16) else { return nil }
            if length == 0 { break }
            guard at + length <= bytes.count else { return nil }
            body += bytes[at..<(at + length)]
            at += length
            guard line() == [] else { return nil }
        }
        while true {
            guard let trailer = line() else { return nil }
            if trailer.isEmpty { return body }
        }
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66) }

    func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return [] }
        return Array(bytes[first...bytes.lastIndex(where: { !isSpace($0) })!])
    }
}
