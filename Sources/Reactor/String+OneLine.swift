extension StringProtocol {
    /// The text as one printable line, for anything from outside (a server's answer, a file's
    /// content, an environment value) on its way into a log line, systemd's `STATUS=` or a
    /// metric label: CR, LF and tab become `\r`, `\n` and `\t`, other control characters (C0,
    /// DEL, C1) and the Unicode line and paragraph separators `\xHH` or `\u{HHHH}`; after `limit`
    /// Unicode scalars the rest becomes an ellipsis.
    public func oneLine(limit: Int = 200) -> String {
        var result = ""
        var characters = 0
        for scalar in unicodeScalars {
            if characters == limit { return result + "…" }
            characters += 1
            switch scalar.value {
            case 0x0D: result += "\\r"
            case 0x0A: result += "\\n"
            case 0x09: result += "\\t"
            case 0..<0x20, 0x7F..<0xA0:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                result += "\\x" + (hex.count < 2 ? "0" : "") + hex
            case 0x2028, 0x2029:
                result += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default:
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line ends.
    public var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
