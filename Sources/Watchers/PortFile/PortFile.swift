import Domain
import Reactor

/// The content of a forwarded-port file: ProtonVPN's app writes ASCII digits with no newline,
/// Gluetun writes one port per line; both empty the file when there is no port.
public enum PortFile {
    public enum Content: Equatable, Sendable {
        /// No port right now (an empty file): never "port 0".
        case noPort
        /// One or more ports, in file order.
        case ports([Port])
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Parses the file's bytes. Surrounding white space is ignored; anything but whole port
    /// numbers written as plain digits (no sign, no leading zero: ProtonVPN and Gluetun write
    /// none) is an error that shows the offending content (printable, shortened).
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> Content {
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
            .map { $0.trimmingSpaces }
            .filter { !$0.isEmpty }
        guard !lines.isEmpty else { return .noPort }
        var ports: [Port] = []
        for line in lines {
            guard line.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw ParseError(message: "not a port number: \"\(line.oneLine(limit: 32))\"")
            }
            guard line == "0" || line.first != "0" else {
                throw ParseError(message: "port \"\(line.oneLine(limit: 32))\" has a leading zero")
            }
            guard let port = Port(parsing: Substring(line)) else {
                throw ParseError(message: "port \(line.oneLine(limit: 32)) is out of range (1-65535)")
            }
            ports.append(port)
        }
        return .ports(ports)
    }
}
