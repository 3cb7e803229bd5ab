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

extension PortFile {
    /// What reading a port file found: the one reading that the watcher, `once` and `doctor`
    /// share, each saying it in its own words.
    public enum Reading: Equatable, Sendable, CustomStringConvertible {
        case missing
        /// A FIFO, a device, a directory: never opened for reading, so never blocked on.
        case notARegularFile(String)
        case unreadable(String)
        /// Empty: no port right now.
        case empty
        case garbage(ParseError)
        /// Fewer ports than the `port_index` asks for.
        case noPortAtIndex(count: Int)
        /// The port at the index, and every port the file lists.
        case port(Port, all: [Port])

        /// For the trace: "port 51413 (of 51413, 51414)", "empty", "not a port number: …".
        public var description: String {
            switch self {
            case .missing: "no such file"
            case .notARegularFile(let why), .unreadable(let why): why
            case .empty: "empty"
            case .garbage: "not a port file's content (see the warning)"
            case .noPortAtIndex(let count): "\(count) port(s), none at the index"
            case .port(let port, let all): all.count == 1 ? "port \(port)" : "port \(port) (of \(all.map(\.description).joined(separator: ", ")))"
            }
        }
    }

    /// Reads `path` (4 KiB at most: a port file is a few bytes) and picks the port at `portIndex`.
    public static func read(atPath path: String, portIndex: Int = 0) -> Reading {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 4096)
        } catch let error as SystemCallError where error.errno == .noSuchFileOrDirectory {
            return .missing
        } catch let error as NotARegularFileError {
            return .notARegularFile("\(error)")
        } catch {
            return .unreadable("\(error)")
        }
        return reading(bytes, portIndex: portIndex)
    }

    /// `bytes` as a file's content, the port at `portIndex` picked.
    public static func reading(_ bytes: [UInt8], portIndex: Int = 0) -> Reading {
        do {
            switch try parse(bytes) {
            case .noPort: return .empty
            case .ports(let ports): return portIndex < ports.count ? .port(ports[portIndex], all: ports) : .noPortAtIndex(count: ports.count)
            }
        } catch {
            return .garbage(error)
        }
    }
}
