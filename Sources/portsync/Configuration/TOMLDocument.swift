import Reactor

/// A value of our TOML subset.
enum TOMLValue: Equatable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case stringArray([String])

    var kindName: String {
        switch self {
        case .string: "a string"
        case .integer: "a whole number"
        case .boolean: "true or false"
        case .stringArray: "an array of strings"
        }
    }
}

/// A parsed configuration file: a strict TOML subset. Tables (`[name]`, and one level of
/// dotted headers, `[name.sub]`, named `name.sub`), bare keys, basic and
/// literal strings, integers, booleans, arrays of strings (one or several lines), comments.
/// Anything else is an error with the file name and line number.
struct TOMLDocument {
    struct Entry: Equatable {
        let table: String
        let key: String
        let value: TOMLValue
        let line: Int
    }

    private(set) var entries: [Entry] = []
    /// Table names and the line of their header.
    private(set) var tables: [(name: String, line: Int)] = []

    static func parse(_ text: String, fileName: String) throws(ConfigurationError) -> TOMLDocument {
        var parser = Parser(scalars: Array(text.unicodeScalars), fileName: fileName)
        return try parser.parseDocument()
    }

    private struct Parser {
        let scalars: [Unicode.Scalar]
        let fileName: String
        var index = 0
        var line = 1

        init(scalars: [Unicode.Scalar], fileName: String) {
            self.scalars = scalars
            self.fileName = fileName
        }

        /// Every message one line, whatever character of the file it quotes (an escape of a
        /// bare CR was the fuzz target's find).
        func fail(_ message: String, line: Int? = nil) -> ConfigurationError {
            ConfigurationError("\(fileName):\(line ?? self.line)", message.oneLine(limit: 300))
        }

        var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

        mutating func advance() {
            if current == "\n" { line += 1 }
            index += 1
        }

        mutating func skipSpaces() {
            while let scalar = current, scalar == " " || scalar == "\t" { advance() }
        }

        /// Spaces, then an optional comment, then the end of the line (or of the file).
        mutating func expectLineEnd(after what: String) throws(ConfigurationError) {
            skipSpaces()
            if current == "#" { try skipComment() }
            if current == "\r" { advance() }
            guard current == nil || current == "\n" else {
                throw fail("unexpected text after \(what): \"\(restOfLine())\"")
            }
            if current == "\n" { advance() }
        }

        /// A comment, up to the line's end (its CR too, when a LF follows). TOML allows no
        /// control character in it but the tab: a NUL or a bare CR is an error, not a comment.
        mutating func skipComment() throws(ConfigurationError) {
            while let scalar = current, scalar != "\n" {
                if scalar == "\r", index + 1 < scalars.count, scalars[index + 1] == "\n" { return }
                if (scalar.value < 0x20 && scalar != "\t") || scalar.value == 0x7F {
                    throw fail("control character U+\(String(scalar.value, radix: 16, uppercase: true)) in a comment")
                }
                advance()
            }
        }

        /// The rest of the line, shortened, for a message; control characters shown as \x0d,
        /// so that a bare CR cannot break the message's line.
        func restOfLine() -> String {
            var text = ""
            var position = index
            while position < scalars.count, scalars[position] != "\n", text.count < 40 {
                text.unicodeScalars.append(scalars[position])
                position += 1
            }
            var shown = ""
            for scalar in text.trimmingSpaces.unicodeScalars {
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    shown += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    shown.unicodeScalars.append(scalar)
                }
            }
            return shown
        }

        static func isBareKeyScalar(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": true
            default: false
            }
        }

        mutating func bareKey(what: String) throws(ConfigurationError) -> String {
            var key = ""
            while let scalar = current, Parser.isBareKeyScalar(scalar) {
                key.unicodeScalars.append(scalar)
                advance()
            }
            guard !key.isEmpty else {
                if current == "\"" || current == "'" { throw fail("quoted \(what)s are not supported; use letters, digits, _ and -") }
                throw fail("expected a \(what), found \"\(restOfLine())\"")
            }
            return key
        }

        mutating func parseDocument() throws(ConfigurationError) -> TOMLDocument {
            var document = TOMLDocument()
            var table = ""
            var seenKeys: [String: Int] = [:]
            while current != nil {
                skipSpaces()
                guard let scalar = current else { break }
                switch scalar {
                case "\n", "\r", "#":
                    try expectLineEnd(after: "a comment")
                case "[":
                    let headerLine = line
                    advance()
                    if current == "[" { throw fail("arrays of tables ([[…]]) are not supported") }
                    skipSpaces()
                    var name = try bareKey(what: "table name")
                    skipSpaces()
                    if current == "." {
                        // One level: `[qbittorrent.movies]`, a named client of one kind.
                        advance()
                        skipSpaces()
                        name += "." + (try bareKey(what: "table name"))
                        skipSpaces()
                        if current == "." { throw fail("tables nest one level at most ([\(name).…]); name a client [kind.name]") }
                    }
                    guard current == "]" else { throw fail("expected ] after [\(name)") }
                    advance()
                    if let previous = document.tables.first(where: { $0.name == name }) {
                        throw fail("table [\(name)] is defined twice (first on line \(previous.line))")
                    }
                    document.tables.append((name, headerLine))
                    table = name
                    try expectLineEnd(after: "[\(name)]")
                default:
                    let keyLine = line
                    let key = try bareKey(what: "key")
                    skipSpaces()
                    if current == "." { throw fail("dotted keys (\(key).…) are not supported") }
                    guard current == "=" else { throw fail("expected = after \"\(key)\"") }
                    advance()
                    skipSpaces()
                    let value = try parseValue(for: key)
                    let qualified = "\(table).\(key)"
                    if let first = seenKeys[qualified] {
                        throw fail("key \"\(key)\" is set twice in [\(table)] (first on line \(first))", line: keyLine)
                    }
                    seenKeys[qualified] = keyLine
                    document.entries.append(Entry(table: table, key: key, value: value, line: keyLine))
                    try expectLineEnd(after: "the value of \"\(key)\"")
                }
            }
            return document
        }

        mutating func parseValue(for key: String) throws(ConfigurationError) -> TOMLValue {
            guard let scalar = current, scalar != "\n", scalar != "#" else { throw fail("\"\(key)\" has no value") }
            switch scalar {
            case "\"", "'":
                return .string(try parseString())
            case "[":
                return .stringArray(try parseStringArray(for: key))
            case "t", "f":
                var word = ""
                while let next = current, Parser.isBareKeyScalar(next) {
                    word.unicodeScalars.append(next)
                    advance()
                }
                guard word == "true" || word == "false" else {
                    throw fail("\"\(key)\" has an unquoted value \"\(word)\"; strings need quotes")
                }
                return .boolean(word == "true")
            case "+", "-", "0"..."9":
                return .integer(try parseInteger(for: key))
            default:
                throw fail("\"\(key)\" has an unquoted value \"\(restOfLine())\"; strings need quotes")
            }
        }

        mutating func parseInteger(for key: String) throws(ConfigurationError) -> Int {
            var text = ""
            while let scalar = current, Parser.isBareKeyScalar(scalar) || scalar == "+" || scalar == "." || scalar == ":" {
                text.unicodeScalars.append(scalar)
                advance()
            }
            if text.contains(".") || text.contains("e") || text.contains("E") {
                throw fail("\"\(key)\" = \(text): fractions are not supported; durations are whole seconds")
            }
            let digits = text.hasPrefix("+") || text.hasPrefix("-") ? String(text.dropFirst()) : text
            let parts = digits.split(separator: "_", omittingEmptySubsequences: false)
            guard !digits.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
                  !(digits.count > 1 && digits.hasPrefix("0")),
                  let value = Int(text.replacingUnderscores()) else {
                throw fail("\"\(key)\" = \(text) is not a whole number")
            }
            return value
        }

        mutating func parseString() throws(ConfigurationError) -> String {
            let quote = current!
            let startLine = line
            advance()
            if current == quote && index + 1 < scalars.count && scalars[index + 1] == quote {
                throw fail("multi-line strings are not supported")
            }
            var value = ""
            while true {
                guard let scalar = current, scalar != "\n" else {
                    throw fail("unterminated string (missing \(quote))", line: startLine)
                }
                advance()
                if scalar == quote { return value }
                if scalar == "\\" && quote == "\"" {
                    value.unicodeScalars.append(try parseEscape())
                } else if scalar.value < 0x20 && scalar != "\t" || scalar.value == 0x7F {
                    throw fail("control character U+\(String(scalar.value, radix: 16, uppercase: true)) in a string; escape it")
                } else {
                    value.unicodeScalars.append(scalar)
                }
            }
        }

        mutating func parseEscape() throws(ConfigurationError) -> Unicode.Scalar {
            guard let scalar = current else { throw fail("unterminated escape") }
            advance()
            switch scalar {
            case "\"": return "\""
            case "\\": return "\\"
            case "n": return "\n"
            case "t": return "\t"
            case "r": return "\r"
            case "b": return "\u{8}"
            case "f": return "\u{C}"
            case "u", "U":
                let count = scalar == "u" ? 4 : 8
                var hex = ""
                for _ in 0..<count {
                    guard let digit = current, digit.properties.isASCIIHexDigit else {
                        throw fail("\\\(scalar) needs \(count) hex digits")
                    }
                    hex.unicodeScalars.append(digit)
                    advance()
                }
                guard let code = UInt32(hex, radix: 16), let result = Unicode.Scalar(code) else {
                    throw fail("\\\(scalar)\(hex) is not a Unicode scalar value")
                }
                return result
            default:
                throw fail("unknown escape \\\(scalar) in a string")
            }
        }

        mutating func skipArraySpace() throws(ConfigurationError) {
            while let scalar = current {
                if scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n" {
                    advance()
                } else if scalar == "#" {
                    try skipComment()
                } else {
                    return
                }
            }
        }

        mutating func parseStringArray(for key: String) throws(ConfigurationError) -> [String] {
            let startLine = line
            advance()  // [
            var values: [String] = []
            while true {
                try skipArraySpace()
                guard let scalar = current else { throw fail("array of \"\(key)\" is not closed with ]", line: startLine) }
                if scalar == "]" {
                    advance()
                    return values
                }
                guard scalar == "\"" || scalar == "'" else {
                    throw fail("\"\(key)\" must be an array of strings; found \"\(restOfLine())\"")
                }
                values.append(try parseString())
                try skipArraySpace()
                if current == "," {
                    advance()
                } else if current != "]" {
                    throw fail("expected , or ] in the array of \"\(key)\"")
                }
            }
        }
    }
}

extension String {
    func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}
