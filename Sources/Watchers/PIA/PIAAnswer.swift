import Domain
import HTTP

/// PIA's answers, parsed: the token endpoint's `{"token":…}`, `getSignature`'s
/// `{"status":"OK","payload":…,"signature":…}` (the payload base64 JSON with `port` and
/// `expires_at`), and `bindPort`'s `{"status":"OK","message":…}` or, with 409, `port N is busy.`.
/// No message quotes a secret; whoever logs one runs it through the session's `Redaction` still.
public enum PIAAnswer {
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// What a `bindPort` answer says.
    public enum Binding: Equatable, Sendable {
        case bound
        /// 409, or a status that is not OK: the payload is no longer good; its message.
        case refused(String)
    }

    public static func token(_ body: [UInt8]) throws(ParseError) -> String {
        let members = try object(body)
        guard let token = members["token"]?.string, !token.isEmpty else {
            throw ParseError(message: "the answer holds no token (members: \(members.keys.sorted().joined(separator: ", ")))")
        }
        return token
    }

    /// `getSignature`'s answer: the payload and signature as given, the payload's port and expiry.
    public static func signature(_ body: [UInt8]) throws(ParseError) -> (payload: String, signature: String, port: Port, expiresAt: Int64) {
        let members = try object(body)
        guard let status = members["status"]?.string else { throw ParseError(message: "the answer has no \"status\"") }
        guard status == "OK" else { throw ParseError(message: "status \"\(status.oneLine(limit: 40))\"\(message(members))") }
        guard let payload = members["payload"]?.string, let signature = members["signature"]?.string, !signature.isEmpty else {
            throw ParseError(message: "status OK without a payload and a signature")
        }
        let contents = try Self.payload(payload)
        return (payload, signature, contents.port, contents.expiresAt)
    }

    /// The payload's JSON: `port` (1-65535) and `expires_at` (RFC 3339).
    public static func payload(_ text: String) throws(ParseError) -> (port: Port, expiresAt: Int64) {
        guard let bytes = Base64.decode(text) else { throw ParseError(message: "the payload is not base64") }
        guard case .success(let members) = JSONValue.object(bytes) else { throw ParseError(message: "the payload is not a JSON object") }
        guard let number = members["port"]?.integer, let port = Port(number) else { throw ParseError(message: "the payload names no port") }
        guard let text = members["expires_at"]?.string, let expiresAt = unixTime(rfc3339: text) else {
            throw ParseError(message: "the payload has no readable expires_at")
        }
        return (port, expiresAt)
    }

    public static func binding(_ response: HTTPResponse) throws(ParseError) -> Binding {
        let members = try object(response.body)
        let text = members["message"]?.string?.oneLine(limit: 120) ?? ""
        if response.status == 409 { return .refused(text.isEmpty ? "409" : text) }
        guard let status = members["status"]?.string else { throw ParseError(message: "the answer has no \"status\"") }
        return status == "OK" ? .bound : .refused("status \"\(status.oneLine(limit: 40))\"\(message(members))")
    }

    /// "2021-02-11T07:06:01.788870376Z" or with an offset ("+02:00"): seconds since 1970.
    public static func unixTime(rfc3339 text: String) -> Int64? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int64? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int64 = 0
            for byte in bytes[range] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - 0x30)
            }
            return value
        }
        func byte(_ index: Int, is character: Character) -> Bool { index < bytes.count && bytes[index] == character.asciiValue! }
        guard let year = number(0..<4), byte(4, is: "-"), let month = number(5..<7), byte(7, is: "-"), let day = number(8..<10),
              byte(10, is: "T") || byte(10, is: "t") || byte(10, is: " "),
              let hour = number(11..<13), byte(13, is: ":"), let minute = number(14..<16), byte(16, is: ":"), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60 else { return nil }
        var index = 19
        if byte(index, is: ".") {
            index += 1
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            guard index > start else { return nil }
        }
        var offset: Int64 = 0
        if byte(index, is: "Z") || byte(index, is: "z") {
            index += 1
        } else if byte(index, is: "+") || byte(index, is: "-") {
            guard let hours = number(index + 1..<index + 3), byte(index + 3, is: ":"), let minutes = number(index + 4..<index + 6),
                  hours < 24, minutes < 60 else { return nil }
            offset = (hours * 3600 + minutes * 60) * (byte(index, is: "-") ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        // Days from 1970-01-01 to the civil date (Howard Hinnant's days_from_civil).
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = shiftedYear / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return days * 86_400 + hour * 3600 + minute * 60 + second - offset
    }

    private static func object(_ body: [UInt8]) throws(ParseError) -> [String: JSONValue] {
        switch JSONValue.object(body) {
        case .success(let members): return members
        case .failure(let why): throw ParseError(message: "\(why): \"\(HTTPResponse(status: 200, body: body).bodyExcerpt)\"")
        }
    }

    private static func message(_ members: [String: JSONValue]) -> String {
        guard let message = members["message"]?.string, !message.isEmpty else { return "" }
        return ": \(message.oneLine(limit: 120))"
    }
}
