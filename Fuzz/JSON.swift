@testable import Reactor
@testable import HTTP

/// JSONValue.parse (qBittorrent's and Gluetun's answers, the state file).
///
/// Properties: it accepts exactly what an independent reading of RFC 8259 accepts, with the
/// same value (a lone surrogate escape or invalid UTF-8 may be rejected or replaced by U+FFFD,
/// never anything else); every value it returns serialises to text that parses back to the
/// same value; and keeping only some members of an object accepts exactly the same texts and
/// keeps those members as they are.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let parsed = try? JSONValue.parse(bytes)
    var reference = ReferenceJSON(bytes: bytes)
    let expected = reference.document()
    if let parsed {
        require(expected != nil, "JSONValue.parse accepted what RFC 8259 rejects: \(parsed.serialized)")
        require(parsed == expected!, "JSONValue.parse read \(parsed.serialized), RFC 8259 reads \(expected!.serialized)")
        let text = parsed.serialized
        let again = try? JSONValue.parse(Array(text.utf8))
        require(again == parsed, "\(text) does not parse back to the same value")
    } else if expected != nil {
        require(reference.repaired, "JSONValue.parse rejected valid JSON \(expected!.serialized)")
    }
    let some = try? JSONValue.parse(bytes, members: ["listen_port", "a", ""])
    require((some == nil) == (parsed == nil), "keeping some members accepts other texts than parse")
    if let parsed, case .object(let all) = parsed {
        require(some == .object(all.filter { ["listen_port", "a", ""].contains($0.key) }), "keeping some members changed them")
    } else {
        require(some == parsed, "a value that is not an object is read whole")
    }
    return 0
}

/// RFC 8259 read separately: the grammar of §2–7, the same nesting limit, the last of
/// duplicate names wins, numbers that overflow a Double rejected. `repaired`: a lone surrogate
/// or invalid UTF-8 was replaced by U+FFFD (RFC 8259 leaves the behaviour open).
struct ReferenceJSON {
    let bytes: [UInt8]
    var at = 0
    var repaired = false

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() -> JSONValue? {
        space()
        guard let value = value(depth: 0) else { return nil }
        space()
        return at == bytes.count ? value : nil
    }

    func peek(_ offset: Int = 0) -> UInt8? { at + offset < bytes.count ? bytes[at + offset] : nil }

    mutating func space() {
        while let byte = peek(), [0x20, 0x09, 0x0A, 0x0D].contains(byte) { at += 1 }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek() == byte else { return false }
        at += 1
        return true
    }

    mutating func value(depth: Int) -> JSONValue? {
        guard depth < 64, let byte = peek() else { return nil }
        switch byte {
        case UInt8(ascii: "{"):
            at += 1
            var members: [String: JSONValue] = [:]
            space()
            if take(UInt8(ascii: "}")) { return .object(members) }
            repeat {
                space()
                guard peek() == UInt8(ascii: "\""), let name = string() else { return nil }
                space()
                guard take(UInt8(ascii: ":")) else { return nil }
                space()
                guard let member = value(depth: depth + 1) else { return nil }
                members[name] = member
                space()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "}")) ? .object(members) : nil
        case UInt8(ascii: "["):
            at += 1
            var elements: [JSONValue] = []
            space()
            if take(UInt8(ascii: "]")) { return .array(elements) }
            repeat {
                space()
                guard let element = value(depth: depth + 1) else { return nil }
                elements.append(element)
                space()
            } while take(UInt8(ascii: ","))
            return take(UInt8(ascii: "]")) ? .array(elements) : nil
        case UInt8(ascii: "\""):
            return string().map { .string($0) }
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    mutating func literal(_ word: String, _ value: JSONValue) -> JSONValue? {
        for byte in word.utf8 { guard take(byte) else { return nil } }
        return value
    }

    mutating func digits() -> Int {
        var count = 0
        while let byte = peek(), byte >= 0x30 && byte <= 0x39 {
            at += 1
            count += 1
        }
        return count
    }

    mutating func number() -> JSONValue? {
        let start = at
        _ = take(UInt8(ascii: "-"))
        if !take(UInt8(ascii: "0")) && digits() == 0 { return nil }
        if take(UInt8(ascii: ".")) && digits() == 0 { return nil }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
            if digits() == 0 { return nil }
        }
        guard let number = Double(String(decoding: bytes[start..<at], as: UTF8.self)), number.isFinite else { return nil }
        return .number(number)
    }

    /// Four hex digits, nothing else (no sign, no prefix).
    mutating func hex4() -> UInt32? {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek() else { return nil }
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
            at += 1
        }
        return value
    }

    mutating func string() -> String? {
        at += 1
        var text = ""
        var run: [UInt8] = []
        func flush(_ text: inout String, _ repaired: inout Bool) {
            let decoded = String(decoding: run, as: UTF8.self)
            if String(validating: run, as: UTF8.self) == nil { repaired = true }
            text += decoded
            run = []
        }
        while let byte = peek() {
            at += 1
            switch byte {
            case UInt8(ascii: "\""):
                flush(&text, &repaired)
                return text
            case UInt8(ascii: "\\"):
                flush(&text, &repaired)
                guard let escape = peek() else { return nil }
                at += 1
                switch escape {
                case UInt8(ascii: "\""): text += "\""
                case UInt8(ascii: "\\"): text += "\\"
                case UInt8(ascii: "/"): text += "/"
                case UInt8(ascii: "b"): text += "\u{8}"
                case UInt8(ascii: "f"): text += "\u{C}"
                case UInt8(ascii: "n"): text += "\n"
                case UInt8(ascii: "r"): text += "\r"
                case UInt8(ascii: "t"): text += "\t"
                case UInt8(ascii: "u"):
                    guard let unit = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(unit), peek() == UInt8(ascii: "\\"), peek(1) == UInt8(ascii: "u") {
                        let mark = at
                        at += 2
                        if let low = hex4(), (0xDC00..<0xE000).contains(low) {
                            text.unicodeScalars.append(Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))!)
                            continue
                        }
                        at = mark  // not a pair: the next escape is read on its own
                    }
                    if let scalar = Unicode.Scalar(unit) {
                        text.unicodeScalars.append(scalar)
                    } else {
                        text += "\u{FFFD}"
                        repaired = true
                    }
                default:
                    return nil
                }
            case 0..<0x20:
                return nil
            default:
                run.append(byte)
            }
        }
        return nil
    }
}
