import Reactor
/// An HTTP/1.1 request, and its bytes on the wire.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var target: String
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(method: String, target: String, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// A POST of `application/x-www-form-urlencoded` fields.
    public static func form(_ target: String, fields: [(String, String)], headers: HTTPHeaders = [:]) -> HTTPRequest {
        var request = HTTPRequest(method: "POST", target: target, headers: headers, body: Array(FormEncoding.encode(fields).utf8))
        request.headers.set("Content-Type", "application/x-www-form-urlencoded")
        return request
    }

    /// The request line, the headers, Content-Length when there is a body or the method sends
    /// one, the blank line and the body. What cannot go on the wire as it is (a target with a
    /// space, a header value with a CR, LF or other control byte, which a cookie from a broken
    /// server may hold) is an error, checked byte by byte; the message never quotes a value.
    public func serialized() throws(HTTPRequestError) -> [UInt8] {
        guard !method.isEmpty, method.utf8.allSatisfy(HTTPSyntax.isTokenByte) else {
            throw HTTPRequestError("the method is not a token")
        }
        guard target.hasPrefix("/"), target.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw HTTPRequestError("the target \(target.oneLine(limit: 60)) is not an absolute path of printable characters")
        }
        var text = "\(method) \(target) HTTP/1.1\r\n"
        for (name, value) in headers where name.lowercased() != "content-length" {
            guard !name.isEmpty, name.utf8.allSatisfy(HTTPSyntax.isTokenByte) else {
                throw HTTPRequestError("a header name is not a token")
            }
            guard value.utf8.allSatisfy(HTTPSyntax.isFieldValueByte) else {
                throw HTTPRequestError("header \(name) holds a line break or another control character")
            }
            text += "\(name): \(value)\r\n"
        }
        if !body.isEmpty || ["POST", "PUT", "PATCH"].contains(method) {
            text += "Content-Length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + body
    }
}

/// Percent-encoding for form bodies and query strings: everything but unreserved characters
/// is encoded, so `+`, `&` and `=` in a password or in JSON survive the trip.
public enum FormEncoding {
    public static func encode(_ fields: [(String, String)]) -> String {
        fields.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
    }

    public static func percentEncode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                result += "%"
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 0xf)]))
            }
        }
        return result
    }
}
