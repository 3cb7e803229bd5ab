/// The two DNS messages a stub resolver needs (RFC 1035): a recursive query for one name and
/// type, and what its answer holds. Pure functions from values to bytes and back.
enum DNSMessage {
    enum RecordType: UInt16, Sendable {
        case a = 1
        case aaaa = 28
    }

    /// The useful part of an answer: its code and the addresses (4 or 16 bytes each) of the
    /// asked type, in the order sent. CNAMEs are followed by the server; their targets' records
    /// come in the same answer section.
    struct Answer: Equatable, Sendable {
        var id: UInt16
        /// 0 no error, 2 server failure, 3 no such name, 5 refused.
        var responseCode: UInt8
        var addresses: [[UInt8]]
    }

    struct ParseError: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// A recursive query (RD set) for `name` (dotted, at most 253 bytes, labels of 1-63 bytes).
    static func query(id: UInt16, name: String, type: RecordType) -> [UInt8]? {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { return nil }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count) else { return nil }
            bytes.append(UInt8(label.utf8.count))
            bytes += label.utf8
        }
        bytes += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return bytes
    }

    /// Reads an answer to a query of `type`; throws when it is no DNS response at all.
    static func parse(_ bytes: [UInt8], type: RecordType) throws(ParseError) -> Answer {
        guard bytes.count >= 12 else { throw ParseError(description: "\(bytes.count) bytes, shorter than a DNS header") }
        guard bytes[2] & 0x80 != 0 else { throw ParseError(description: "a query, not a response") }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let questions = Int(word(bytes, 4))
        let answers = Int(word(bytes, 6))
        var offset = 12
        for _ in 0..<questions {
            offset = try skipName(bytes, offset) + 4
        }
        var addresses: [[UInt8]] = []
        for _ in 0..<answers {
            offset = try skipName(bytes, offset)
            guard offset + 10 <= bytes.count else { throw ParseError(description: "a record runs past the end") }
            let recordType = word(bytes, offset)
            let recordClass = word(bytes, offset + 2)
            let length = Int(word(bytes, offset + 8))
            offset += 10
            guard offset + length <= bytes.count else { throw ParseError(description: "a record's data runs past the end") }
            if recordType == type.rawValue && recordClass == 1 && length == (type == .a ? 4 : 16) {
                addresses.append(Array(bytes[offset..<offset + length]))
            }
            offset += length
        }
        return Answer(id: id, responseCode: bytes[3] & 0x0F, addresses: addresses)
    }

    private static func word(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// The offset after the (possibly compressed) name at `offset`.
    private static func skipName(_ bytes: [UInt8], _ start: Int) throws(ParseError) -> Int {
        var offset = start
        while offset < bytes.count {
            let length = Int(bytes[offset])
            if length == 0 { return offset + 1 }
            if length & 0xC0 == 0xC0 { return offset + 2 }  // a pointer ends the name here
            guard length & 0xC0 == 0 else { throw ParseError(description: "a bad label") }
            offset += 1 + length
        }
        throw ParseError(description: "a name runs past the end")
    }
}
