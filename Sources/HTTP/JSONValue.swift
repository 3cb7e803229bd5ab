import Reactor
/// A JSON value, parsed strictly (RFC 8259) from bytes, with a depth limit so that a hostile
/// answer cannot exhaust the stack.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public let offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 64) throws(ParseError) -> JSONValue {
        try parse(bytes, members: nil, maxDepth: maxDepth)
    }

    /// Like `parse`, as strict, but of a top-level object only the `members` named are kept:
    /// the rest is checked and dropped without being built. For answers read on the latency
    /// path of which a few fields matter (qBittorrent's preferences: four of 170 members).
    public static func parse(_ bytes: [UInt8], members: Set<String>?, maxDepth: Int = 64) throws(ParseError) -> JSONValue {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        parser.wanted = members
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected data after the JSON value") }
        return value
    }

    /// A top-level object (of which only `members` are kept, when named), or why the bytes are
    /// none, in a few words: "number out of range at byte 9", "an array". What every client
    /// says of an answer that should have been an object.
    public static func object(_ bytes: [UInt8], members: Set<String>? = nil) -> Result<[String: JSONValue], NotAnObject> {
        do throws(ParseError) {
            switch try parse(bytes, members: members) {
            case .object(let members): return .success(members)
            case .array: return .failure(NotAnObject(reason: "an array"))
            case .string: return .failure(NotAnObject(reason: "a string"))
            case .number: return .failure(NotAnObject(reason: "a number"))
            case .bool: return .failure(NotAnObject(reason: "a boolean"))
            case .null: return .failure(NotAnObject(reason: "null"))
            }
        } catch {
            return .failure(NotAnObject(reason: error.description))
        }
    }

    public struct NotAnObject: Error, Equatable, CustomStringConvertible {
        /// What the bytes are instead, or where they stop being JSON.
        public let reason: String
        public var description: String { "is not a JSON object (\(reason))" }
    }

    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    /// The value as an integer, when it is a number without a fraction.
    public var integer: Int? {
        guard case .number(let number) = self, number.rounded() == number, abs(number) < 9.0e15 else { return nil }
        return Int(number)
    }

    public var string: String? {
        guard case .string(let text) = self else { return nil }
        return text
    }

    public var bool: Bool? {
        guard case .bool(let flag) = self else { return nil }
        return flag
    }

    public var array: [JSONValue]? {
        guard case .array(let elements) = self else { return nil }
        return elements
    }

    /// Compact JSON text; object keys sorted so the output is stable.
    public var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number):
            if let integer { return String(integer) }
            return number.isFinite ? "\(number)" : "null"
        case .string(let text): return JSONValue.quoted(text)
        case .array(let elements): return "[" + elements.map(\.serialized).joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.map { "\(JSONValue.quoted($0.key)):\($0.value.serialized)" }
                .joined(separator: ",") + "}"
        }
    }

    /// The serialized value as one line of at most 200 characters, for messages: a server's
    /// answer is quoted, never echoed whole.
    public var excerpt: String { serialized.oneLine() }

    /// `text` as a JSON string. Control characters and DEL are escaped, so the result is also
    /// a valid TOML basic string.
    public static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }

    private struct Parser {
        let bytes: [UInt8]
        let maxDepth: Int
        var index = 0
        /// The top-level members to keep; nil: all.
        var wanted: Set<String>?
        /// false while reading a value that is dropped: checked, not built.
        var materialize = true

        init(bytes: [UInt8], maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        func error(_ message: String) -> ParseError { ParseError(message: message, offset: index) }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
        }

        /// A literal (`true`, `false`, `null`), compared byte by byte: no allocation.
        mutating func expect(_ literal: StaticString, _ value: JSONValue) throws(ParseError) -> JSONValue {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("invalid literal") }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
                throw error("invalid literal")
            }
            index += count
            return value
        }

        mutating func parseValue(depth: Int) throws(ParseError) -> JSONValue {
            guard depth < maxDepth else { throw error("nested deeper than \(maxDepth) levels") }
            guard let byte = current else { throw error("unexpected end of input") }
            switch byte {
            case UInt8(ascii: "{"): return try parseObject(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw error("unexpected character")
            }
        }

        mutating func parseObject(depth: Int) throws(ParseError) -> JSONValue {
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let key = try parseString()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected :") }
                index += 1
                skipWhitespace()
                let outer = materialize
                materialize = outer && (depth > 0 || wanted?.contains(key) ?? true)
                let value = try parseValue(depth: depth + 1)
                if materialize { members[key] = value }
                materialize = outer
                skipWhitespace()
                guard let separator = current else { throw error("unexpected end of input") }
                index += 1
                if separator == UInt8(ascii: "}") { return .object(members) }
                guard separator == UInt8(ascii: ",") else { throw error("expected , or }") }
            }
        }

        mutating func parseArray(depth: Int) throws(ParseError) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                let element = try parseValue(depth: depth + 1)
                if materialize { elements.append(element) }
                skipWhitespace()
                guard let separator = current else { throw error("unexpected end of input") }
                index += 1
                if separator == UInt8(ascii: "]") { return .array(elements) }
                guard separator == UInt8(ascii: ",") else { throw error("expected , or ]") }
            }
        }

        mutating func parseNumber() throws(ParseError) -> JSONValue {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            guard let first = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { throw error("invalid number") }
            if first == UInt8(ascii: "0") {
                index += 1
            } else {
                while let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if current == UInt8(ascii: ".") {
                index += 1
                guard let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { throw error("invalid number") }
                while let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { throw error("invalid number") }
                while let digit = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) { index += 1 }
            }
            if let integer = Self.smallInteger(bytes[start..<index]) { return .number(Double(integer)) }
            guard let number = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else { throw error("invalid number") }
            // 1e400 reads as infinity, which JSON cannot write back.
            guard number.isFinite else { throw error("number out of range") }
            return .number(number)
        }

        /// Up to 15 digits with an optional minus sign: exact as a Double, read without making a
        /// String (most numbers in the answers we read are ports, flags and counts).
        static func smallInteger(_ digits: ArraySlice<UInt8>) -> Int? {
            let negative = digits.first == UInt8(ascii: "-")
            let body = negative ? digits.dropFirst() : digits
            guard !body.isEmpty, body.count <= 15 else { return nil }
            var value = 0
            for digit in body {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
                value = value * 10 + Int(digit - UInt8(ascii: "0"))
            }
            return negative ? (value == 0 ? nil : -value) : value  // -0 stays a Double's -0.0
        }

        mutating func parseString() throws(ParseError) -> String {
            // The common case, a string with no escape: one UTF-8 decoding of the bytes in place.
            var end = index + 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "\\"), bytes[end] != UInt8(ascii: "\""), bytes[end] >= 0x20 { end += 1 }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                let text = materialize ? String(decoding: bytes[(index + 1)..<end], as: UTF8.self) : ""
                index = end + 1
                return text
            }
            index += 1
            var scalars = String.UnicodeScalarView()
            var run: [UInt8] = []
            func flush() { if !run.isEmpty { scalars.append(contentsOf: String(decoding: run, as: UTF8.self).unicodeScalars); run.removeAll() } }
            while true {
                guard let byte = current else { throw error("unterminated string") }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    scalars.append(try parseEscape())
                case 0..<0x20:
                    throw error("control character in a string")
                default:
                    run.append(byte)
                }
            }
        }

        mutating func parseEscape() throws(ParseError) -> Unicode.Scalar {
            guard let byte = current else { throw error("unterminated escape") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""): return "\""
            case UInt8(ascii: "\\"): return "\\"
            case UInt8(ascii: "/"): return "/"
            case UInt8(ascii: "b"): return "\u{8}"
            case UInt8(ascii: "f"): return "\u{C}"
            case UInt8(ascii: "n"): return "\n"
            case UInt8(ascii: "r"): return "\r"
            case UInt8(ascii: "t"): return "\t"
            case UInt8(ascii: "u"):
                // A lone surrogate becomes U+FFFD; an escape after a lone high surrogate is
                // read again on its own, so no character is lost.
                let high = try hex4()
                if (0xD800..<0xDC00).contains(high) {
                    let afterHigh = index
                    if current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        let low = try hex4()
                        if (0xDC00..<0xE000).contains(low) {
                            return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)) ?? "\u{FFFD}"
                        }
                        index = afterHigh
                    }
                    return "\u{FFFD}"
                }
                return Unicode.Scalar(high) ?? "\u{FFFD}"
            default:
                throw error("invalid escape")
            }
        }

        /// Exactly four hex digits: no sign, no fewer.
        mutating func hex4() throws(ParseError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("invalid \\u escape") }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }
    }
}
