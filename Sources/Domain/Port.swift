/// A TCP/UDP port number that can be listened on: 1...65535, never 0.
public struct Port: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: UInt16

    public init?(_ value: Int) {
        guard (1...65535).contains(value) else { return nil }
        self.value = UInt16(value)
    }

    public init?(_ value: UInt16) {
        guard value != 0 else { return nil }
        self.value = value
    }

    /// The port next to this one (one up; one down from 65535): where a client is moved and
    /// back from, since none re-binds for a write of the port it has.
    public var neighbour: Port { Port(value == UInt16.max ? value - 1 : value + 1)! }

    /// Parses ASCII decimal digits (no sign, no spaces).
    public init?(parsing text: Substring) {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = Int(text) else { return nil }
        self.init(number)
    }

    public var description: String { String(value) }

    public static func < (lhs: Port, rhs: Port) -> Bool { lhs.value < rhs.value }
}
