import Domain
import HTTP
import Reactor

/// PrivateVPN's answer to `GET /v3/Api/port?ip[]=<tunnel address>`, read as Gluetun reads it
/// (internal/provider/privatevpn/portforward.go): `{"supported":true,"status":"Port 61527
/// UDP/TCP"}`, the port the first number in `status`, or `{"supported":false}` for a server
/// that forwards none (PrivateVPN forwards ports over OpenVPN only: over WireGuard it answers
/// false). Pure.
public enum PrivateVPNAnswer: Equatable, Sendable {
    case port(Port)
    case unsupported

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }

        public init(message: String) {
            self.message = message
        }
    }

    public static func parse(_ body: [UInt8]) throws(ParseError) -> PrivateVPNAnswer {
        let value: JSONValue
        switch JSONValue.object(body) {
        case .success(let members): value = .object(members)
        case .failure(let why): throw ParseError(message: "the answer \(why): \"\(HTTPResponse(status: 200, body: body).bodyExcerpt)\"")
        }
        guard let supported = value["supported"]?.bool else {
            throw ParseError(message: "the answer has no \"supported\" true or false: \(value.excerpt)")
        }
        guard supported else { return .unsupported }
        guard let status = value["status"]?.string else {
            throw ParseError(message: "the answer is supported but has no \"status\" string: \(value.excerpt)")
        }
        guard let port = firstNumber(in: status).flatMap({ Port($0) }) else {
            throw ParseError(message: "the status \(JSONValue.quoted(status.oneLine(limit: 80))) names no port (1 to 65535)")
        }
        return .port(port)
    }

    /// The first run of ASCII digits in `text`, nil when there is none or it is longer than a
    /// port can be.
    private static func firstNumber(in text: String) -> Int? {
        let digits = text.utf8.drop { !(0x30...0x39).contains($0) }.prefix { (0x30...0x39).contains($0) }
        guard !digits.isEmpty, digits.count <= 5 else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }
}
