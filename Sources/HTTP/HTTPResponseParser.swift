import Reactor
/// What was wrong with a response's bytes.
public struct HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "malformed HTTP response: \(message)" }
}

/// An incremental HTTP/1.1 response parser: feed it bytes as they arrive, in any split, and it
/// returns each complete response. It handles Content-Length, chunked bodies (extensions and
/// trailers included), bodies delimited by the connection's close, interim 1xx responses, and
/// responses that never have a body (HEAD, 204, 304). Limits keep a hostile server from
/// growing memory without bound.
public struct HTTPResponseParser {
    private enum BodyState {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    public let maxHeaderBytes: Int
    public let maxBodyBytes: Int

    private var buffer: [UInt8] = []
    private var position = 0
    private var state: BodyState = .head
    private var current: HTTPResponse?
    private var noBodyExpected = false

    public init(maxHeaderBytes: Int = 64 * 1024, maxBodyBytes: Int = 4 * 1024 * 1024) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxBodyBytes = maxBodyBytes
    }

    /// Tells the parser that the next response answers a HEAD request: it has no body.
    public mutating func expectNoBody() {
        noBodyExpected = true
    }

    /// Whether bytes of an unfinished response are held.
    public var isIdle: Bool {
        if case .head = state { return position == buffer.count }
        return false
    }

    /// Adds `bytes` and returns the next complete response, if one is complete. Call `next()`
    /// for any further responses already buffered.
    public mutating func consume(_ bytes: [UInt8]) throws(HTTPParseError) -> HTTPResponse? {
        buffer.append(contentsOf: bytes)
        return try next()
    }

    /// The next complete response in what was already fed, if any.
    public mutating func next() throws(HTTPParseError) -> HTTPResponse? {
        while true {
            switch state {
            case .head:
                guard let end = findHeadEnd() else {
                    if buffer.count - position > maxHeaderBytes {
                        throw HTTPParseError("header section longer than \(maxHeaderBytes) bytes")
                    }
                    compact()
                    return nil
                }
                guard end - position <= maxHeaderBytes else {
                    throw HTTPParseError("header section longer than \(maxHeaderBytes) bytes")
                }
                let head = try parseHead(buffer[position..<end])
                position = end
                if (100..<200).contains(head.status) {
                    continue  // interim response (100 Continue, 103 Early Hints): the real one follows
                }
                current = head
                try startBody(for: head)
            case .fixed(let remaining):
                let missing = takeBody(remaining)
                guard missing == 0 else {
                    state = .fixed(remaining: missing)
                    return nil
                }
                return finishResponse()
            case .chunkSize:
                guard let line = readLine() else { return try needMore(limit: 1024, what: "chunk size line") }
                // Empty pieces kept: ";5" has no size, it is not size 5.
                let sizeText = (line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "").trimmingSpaces
                guard !sizeText.isEmpty, sizeText.count <= 15, sizeText.allSatisfy(\.isHexDigit), sizeText.allSatisfy(\.isASCII),
                      let size = Int(sizeText, radix: 16) else {
                    throw HTTPParseError("bad chunk size \"\(line.oneLine(limit: 40))\"")
                }
                if size == 0 {
                    state = .trailers
                } else {
                    guard current!.body.count + size <= maxBodyBytes else {
                        throw HTTPParseError("body longer than \(maxBodyBytes) bytes")
                    }
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                let missing = takeBody(remaining)
                guard missing == 0 else {
                    state = .chunkData(remaining: missing)
                    return nil
                }
                state = .chunkDataEnd
            case .chunkDataEnd:
                guard let line = readLine() else { return try needMore(limit: 2, what: "chunk end") }
                guard line.isEmpty else { throw HTTPParseError("chunk data longer than its size") }
                state = .chunkSize
            case .trailers:
                guard let line = readLine() else { return try needMore(limit: maxHeaderBytes, what: "trailer section") }
                if line.isEmpty { return finishResponse() }
            case .untilClose:
                current!.body.append(contentsOf: buffer[position...])
                position = buffer.count
                guard current!.body.count <= maxBodyBytes else {
                    throw HTTPParseError("body longer than \(maxBodyBytes) bytes")
                }
                compact()
                return nil
            }
        }
    }

    /// The connection closed: completes a body that runs until the close, or reports a response
    /// cut short. Returns nil when nothing was pending.
    public mutating func finish() throws(HTTPParseError) -> HTTPResponse? {
        switch state {
        case .untilClose:
            return finishResponse()
        case .head where position == buffer.count:
            return nil
        case .head:
            throw HTTPParseError("connection closed inside the header section")
        default:
            throw HTTPParseError("connection closed before the body was complete")
        }
    }

    // MARK: Pieces

    /// Moves up to `remaining` buffered bytes into the body; returns how many are still missing.
    private mutating func takeBody(_ remaining: Int) -> Int {
        let available = min(remaining, buffer.count - position)
        current!.body.append(contentsOf: buffer[position..<position + available])
        position += available
        if available < remaining { compact() }
        return remaining - available
    }

    private mutating func startBody(for head: HTTPResponse) throws(HTTPParseError) {
        let noBody = noBodyExpected || head.status == 204 || head.status == 304
        noBodyExpected = false
        if noBody {
            state = .fixed(remaining: 0)
            return
        }
        let codings = head.headers.values(for: "Transfer-Encoding")
            .flatMap { $0.lowercased().split(separator: ",").map { $0.trimmingSpaces } }
        if let last = codings.last {
            guard last == "chunked" else {
                if codings.contains("chunked") { throw HTTPParseError("chunked is not the final transfer coding") }
                state = .untilClose
                return
            }
            state = .chunkSize
            return
        }
        let lengths = Set(head.headers.values(for: "Content-Length").flatMap {
            $0.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
        })
        guard let lengthText = lengths.first else {
            state = .untilClose
            return
        }
        guard !lengths.contains("") else { throw HTTPParseError("bad Content-Length: an empty value") }
        guard lengths.count == 1 else { throw HTTPParseError("conflicting Content-Length values") }
        guard lengthText.count <= 15, lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let length = Int(lengthText) else {
            throw HTTPParseError("bad Content-Length \"\(lengthText.oneLine(limit: 20))\"")
        }
        guard length <= maxBodyBytes else { throw HTTPParseError("body of \(length) bytes is over the \(maxBodyBytes) limit") }
        current!.body.reserveCapacity(length)
        state = .fixed(remaining: length)
    }

    private func findHeadEnd() -> Int? {
        // The head ends with an empty line: CRLF CRLF, or bare LF LF from lenient servers.
        var index = position
        while index < buffer.count {
            if buffer[index] == 0x0A {
                let next = index + 1
                if next < buffer.count && buffer[next] == 0x0A { return next + 1 }
                if next + 1 < buffer.count && buffer[next] == 0x0D && buffer[next + 1] == 0x0A { return next + 2 }
            }
            index += 1
        }
        return nil
    }

    private func parseHead(_ bytes: ArraySlice<UInt8>) throws(HTTPParseError) -> HTTPResponse {
        // Split on LF bytes, not on Characters: in Swift "\r\n" is one Character. Only the CR
        // of a line's CRLF is dropped; any other CR, a NUL or another control byte (tab aside)
        // makes the response malformed, so that nothing of the kind reaches a header value.
        var lines: [String] = []
        for (number, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let content = line.last == 0x0D ? line.dropLast() : line
            if let bad = content.first(where: { !HTTPSyntax.isFieldValueByte($0) }) {
                let what = bad == 0x0D ? "a bare CR" : "control byte 0x\(String(bad, radix: 16, uppercase: true))"
                throw HTTPParseError("\(number == 0 ? "the status line" : "header line \(number)") holds \(what)")
            }
            lines.append(String(validating: content, as: UTF8.self) ?? String(bytes: content, encodingLatin1: ())!)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let statusLine = lines.first else { throw HTTPParseError("empty status line") }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/") else {
            throw HTTPParseError("status line \"\(statusLine.oneLine(limit: 40))\" is not HTTP")
        }
        let version: (major: Int, minor: Int)
        switch parts[0] {
        case "HTTP/1.1": version = (1, 1)
        case "HTTP/1.0": version = (1, 0)
        default: throw HTTPParseError("unsupported version \"\(parts[0].oneLine(limit: 20))\" (only HTTP/1.0 and HTTP/1.1)")
        }
        guard parts[1].count == 3, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let status = Int(parts[1]) else {
            throw HTTPParseError("bad status code \"\(parts[1].oneLine(limit: 20))\"")
        }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            if line.first == " " || line.first == "\t" {
                throw HTTPParseError("folded header line")
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw HTTPParseError("header line without a colon: \"\(line.oneLine(limit: 40))\"")
            }
            let name = line[..<colon]
            guard !name.isEmpty, name.utf8.allSatisfy(HTTPSyntax.isTokenByte) else {
                throw HTTPParseError("bad header name \"\(name.oneLine(limit: 40))\"")
            }
            headers.add(String(name), line[line.index(after: colon)...].trimmingSpaces)
        }
        return HTTPResponse(version: version, status: status,
                            reason: parts.count > 2 ? String(parts[2]) : "", headers: headers)
    }

    /// One line without its line ending, advancing past it; nil when no full line is buffered.
    private mutating func readLine() -> String? {
        guard let newline = buffer[position...].firstIndex(of: 0x0A) else { return nil }
        var end = newline
        if end > position && buffer[end - 1] == 0x0D { end -= 1 }
        let line = String(decoding: buffer[position..<end], as: UTF8.self)
        position = newline + 1
        return line
    }

    private mutating func needMore(limit: Int, what: String) throws(HTTPParseError) -> HTTPResponse? {
        if buffer.count - position > limit { throw HTTPParseError("\(what) longer than \(limit) bytes") }
        compact()
        return nil
    }

    private mutating func finishResponse() -> HTTPResponse? {
        state = .head
        defer { current = nil }
        compact()
        return current
    }

    /// Drops consumed bytes once they dominate the buffer.
    private mutating func compact() {
        if position > 0 && (position == buffer.count || position > 4096) {
            buffer.removeFirst(position)
            position = 0
        }
    }
}

extension String {
    init?(bytes: ArraySlice<UInt8>, encodingLatin1: Void) {
        var result = ""
        for byte in bytes { result.unicodeScalars.append(Unicode.Scalar(byte)) }
        self = result
    }
}
