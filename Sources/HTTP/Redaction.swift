import Domain
import Reactor

/// Takes the configured secrets out of text quoted from a peer, before it reaches a log line,
/// a sink's status (`/healthz`, systemd's `STATUS=`, the state file, `portsync status`) or a
/// trace. A server or proxy may echo what it was sent (an error page with the login form, a
/// JSON-RPC error with its request, the headers), so each secret is looked for in every form
/// it travels in: as it is, percent-encoded (either case, a space as `%20` or `+`, as a login
/// form carries it), as a JSON string (also with non-ASCII as `\u` escapes, as Python writes
/// it), HTML-escaped, as Basic credentials, and as `oneLine` prints each. An excerpt cut in
/// the middle of a secret (`…` right after its first characters) loses that beginning too.
/// The result is one line.
public struct Redaction: Equatable, Sendable {
    public static let replacement = "<redacted>"
    public static let none = Redaction([])

    /// Every form of every secret, as bytes, longest first.
    private let forms: [[UInt8]]

    /// `basicUser`: the secrets also go as `Authorization: Basic` of `basicUser:secret`.
    public init(_ secrets: [Secret?], basicUser: String? = nil) {
        var forms: Set<String> = []
        for secret in secrets.compactMap({ $0 }) where !secret.value.isEmpty {
            let value = secret.value
            let percent = FormEncoding.percentEncode(value)
            var encodings = [value, percent, Self.lowercasingHex(percent), percent.replacingSpaceEscapes,
                             Self.lowercasingHex(percent.replacingSpaceEscapes),
                             String(JSONValue.quoted(value).dropFirst().dropLast()), Self.asciiJSON(value), Self.htmlEscaped(value)]
            if let basicUser { encodings.append(Base64.encode(Array("\(basicUser):\(value)".utf8))) }
            for encoding in encodings {
                forms.insert(encoding)
                forms.insert(encoding.oneLine(limit: Int.max))
            }
        }
        self.forms = forms.map { Array($0.utf8) }.sorted { $0.count != $1.count ? $0.count > $1.count : $0.lexicographicallyPrecedes($1) }
    }

    /// `text` as one line with every form of every secret replaced.
    public func callAsFunction(_ text: String) -> String {
        let line = text.oneLine(limit: Int.max)
        guard !forms.isEmpty else { return line }
        let bytes = Array(line.utf8)
        let cut = Array("…".utf8)
        let marker = Array(Self.replacement.utf8)
        var result: [UInt8] = []
        result.reserveCapacity(bytes.count)
        var index = 0
        scan: while index < bytes.count {
            for form in forms where bytes[index...].starts(with: form) {
                result += marker
                index += form.count
                continue scan
            }
            if bytes[index...].starts(with: cut) {
                // The excerpt was cut here: whatever before it begins a secret goes too.
                let longest = forms.map { form in
                    (1..<form.count).last { length in result.count >= length && result.suffix(length).elementsEqual(form.prefix(length)) } ?? 0
                }.max() ?? 0
                if longest > 0 {
                    result.removeLast(longest)
                    result += marker
                }
            }
            result.append(bytes[index])
            index += 1
        }
        return String(decoding: result, as: UTF8.self)
    }

    /// `%2F` → `%2f`: some encoders write lowercase hex.
    private static func lowercasingHex(_ percent: String) -> String {
        var result = ""
        var afterPercent = 0
        for scalar in percent.unicodeScalars {
            if afterPercent > 0, ("A"..."F").contains(scalar) {
                result.unicodeScalars.append(Unicode.Scalar(scalar.value + 0x20)!)
            } else {
                result.unicodeScalars.append(scalar)
            }
            afterPercent = scalar == "%" ? 2 : max(afterPercent - 1, 0)
        }
        return result
    }

    /// A JSON string's inside with everything outside ASCII as `\uXXXX` (Python's `json.dumps`).
    private static func asciiJSON(_ value: String) -> String {
        var result = ""
        for unit in String(JSONValue.quoted(value).dropFirst().dropLast()).utf16 {
            if unit < 0x80 {
                result.unicodeScalars.append(Unicode.Scalar(unit)!)
            } else {
                let hex = String(unit, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return result
    }

    private static func htmlEscaped(_ value: String) -> String {
        var result = ""
        for character in value {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}

private extension String {
    /// A form body's other spelling of a space: `+` for `%20`.
    var replacingSpaceEscapes: String {
        let bytes = Array(utf8)
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index...].starts(with: Array("%20".utf8)) {
                result.append(UInt8(ascii: "+"))
                index += 3
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return String(decoding: result, as: UTF8.self)
    }
}
