import Domain
import Reactor
@testable import Watchers

/// PortFile.parse: the forwarded-port file (ProtonVPN's app, Gluetun).
///
/// Properties: it agrees with a plain reading of the format (lines split at CR or LF, spaces
/// and tabs around them ignored, every other line ASCII digits with no leading zero naming a
/// port 1-65535; no line at all means no port, never port 0); the ports it returns, written one per line, parse back
/// equal; its error messages are one printable line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPortFile(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let bytes = FuzzInput(data, count).bytes
    let lines = bytes.split(whereSeparator: { $0 == 0x0A || $0 == 0x0D })
        .map { line in line.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed() }
        .filter { !$0.isEmpty }
    var expected: [Port]? = []
    for line in lines {
        guard line.count <= 5, line.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), line.first != 0x30,
              let port = Port(Int(String(decoding: line, as: UTF8.self))!) else {
            expected = nil
            break
        }
        expected?.append(port)
    }

    do {
        let content = try PortFile.parse(bytes)
        switch content {
        case .noPort:
            require(expected == [], "an empty reading for a file with ports \(String(describing: expected))")
        case .ports(let ports):
            require(!ports.isEmpty, ".ports([]) instead of .noPort")
            require(ports == expected, "read \(ports), the format says \(String(describing: expected))")
            let written = Array(ports.map(\.description).joined(separator: "\n").utf8)
            require((try? PortFile.parse(written)) == content, "\(ports) written one per line reads differently")
        }
    } catch {
        require(expected == nil, "rejected a file with ports \(expected!): \(error)")
        let message = error.description
        require(!message.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "error message with a control character")
        require(message.unicodeScalars.count < 200, "error message of \(message.unicodeScalars.count) characters")
    }
    return 0
}
