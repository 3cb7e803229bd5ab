/// The two DNS messages a stub resolver needs (RFC 1035): a recursive query for one name and
/// type, and what its answer holds. Pure functions from values to bytes and back. Queries carry
/// EDNS0's OPT record (RFC 6891), so that answers up to `udpPayloadSize` come whole over UDP;
/// a bigger one comes truncated (TC), to be asked again over TCP.
enum DNSMessage {
    enum RecordType: UInt16, Sendable {
        case a = 1
        case aaaa = 28
    }

    /// The record type of an alias (RFC 1035 3.2.2) and the class of the internet.
    private static let cname: UInt16 = 5
    private static let internet: UInt16 = 1
    /// The UDP payload size offered: DNS flag day 2020's, which fits any path's MTU unfragmented.
    static let udpPayloadSize: UInt16 = 1232

    /// The useful part of an answer: its code and the addresses (4 or 16 bytes each) of the
    /// asked type, in the order sent, that belong to the asked name or to the chain of CNAMEs
    /// from it within the answer (the server follows them; their targets' records come in the
    /// same answer section). Records of any other name are not taken.
    struct Answer: Equatable, Sendable {
        var id: UInt16
        /// 0 no error, 2 server failure, 3 no such name, 5 refused.
        var responseCode: UInt8
        var addresses: [[UInt8]]
        /// The server cut the answer short (TC): none of its records are read.
        var truncated = false
    }

    struct ParseError: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// A recursive query (RD set) for `name` (dotted, at most 253 bytes, labels of 1-63 bytes),
    /// with an OPT record offering `udpPayloadSize`. Over TCP, the same bytes after their length.
    static func query(id: UInt16, name: String, type: RecordType) -> [UInt8]? {
        guard let labels = labels(of: name) else { return nil }
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
        for label in labels {
            bytes.append(UInt8(label.count))
            bytes += label
        }
        bytes += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        // OPT: the root name, type 41, the payload size as its class, version 0, no flags, no data.
        bytes += [0, 0, 41, UInt8(udpPayloadSize >> 8), UInt8(udpPayloadSize & 0xFF), 0, 0, 0, 0, 0, 0]
        return bytes
    }

    /// Reads an answer to the query for `name` and `type`; throws when it is no DNS response at
    /// all, or a response to another question (another name, type or class: not this query's
    /// answer, whatever its ID says).
    static func parse(_ bytes: [UInt8], name: String, type: RecordType) throws(ParseError) -> Answer {
        guard bytes.count >= 12 else { throw ParseError(description: "\(bytes.count) bytes, shorter than a DNS header") }
        guard bytes[2] & 0x80 != 0 else { throw ParseError(description: "a query, not a response") }
        guard let asked = labels(of: name).map(folded) else { throw ParseError(description: "\"\(name)\" is not a valid host name") }
        let id = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        guard word(bytes, 4) == 1 else { throw ParseError(description: "\(word(bytes, 4)) questions, not the one asked") }
        let answers = Int(word(bytes, 6))
        var (question, offset) = try readName(bytes, 12)
        guard offset + 4 <= bytes.count else { throw ParseError(description: "the question runs past the end") }
        guard question == asked, word(bytes, offset) == type.rawValue, word(bytes, offset + 2) == internet else {
            throw ParseError(description: "an answer to another question")
        }
        offset += 4
        if bytes[2] & 0x02 != 0 {
            return Answer(id: id, responseCode: bytes[3] & 0x0F, addresses: [], truncated: true)
        }
        var owners: Set<[[UInt8]]> = [asked]
        var aliases: [(owner: [[UInt8]], target: [[UInt8]])] = []
        var records: [(owner: [[UInt8]], data: [UInt8])] = []
        for _ in 0..<answers {
            let owner: [[UInt8]]
            (owner, offset) = try readName(bytes, offset)
            guard offset + 10 <= bytes.count else { throw ParseError(description: "a record runs past the end") }
            let recordType = word(bytes, offset)
            let recordClass = word(bytes, offset + 2)
            let length = Int(word(bytes, offset + 8))
            offset += 10
            guard offset + length <= bytes.count else { throw ParseError(description: "a record's data runs past the end") }
            if recordClass == internet && recordType == cname {
                aliases.append((owner, try readName(bytes, offset).name))
            } else if recordType == type.rawValue && recordClass == internet && length == (type == .a ? 4 : 16) {
                records.append((owner, Array(bytes[offset..<offset + length])))
            }
            offset += length
        }
        // The chain from the asked name, in any order the server listed it; a loop ends it.
        var grown = true
        while grown {
            grown = false
            for alias in aliases where owners.contains(alias.owner) && !owners.contains(alias.target) {
                owners.insert(alias.target)
                grown = true
            }
        }
        let addresses = records.filter { owners.contains($0.owner) }.map(\.data)
        return Answer(id: id, responseCode: bytes[3] & 0x0F, addresses: addresses)
    }

    /// The labels of a dotted name (a trailing dot allowed); nil when it is no valid name.
    private static func labels(of name: String) -> [[UInt8]]? {
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { return nil }
        let labels = trimmed.split(separator: ".", omittingEmptySubsequences: false).map { Array($0.utf8) }
        return labels.allSatisfy({ (1...63).contains($0.count) }) ? labels : nil
    }

    /// The labels with ASCII letters in lower case: names compare case-insensitively (RFC 4343),
    /// byte for byte otherwise.
    private static func folded(_ labels: [[UInt8]]) -> [[UInt8]] {
        labels.map { label in label.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 } }
    }

    private static func word(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    /// The (possibly compressed) name at `start`, folded, and the offset after it where it
    /// starts. Pointers must point backwards, so a name cannot loop.
    private static func readName(_ bytes: [UInt8], _ start: Int) throws(ParseError) -> (name: [[UInt8]], next: Int) {
        var labels: [[UInt8]] = []
        var offset = start
        var next: Int?
        var length = 0
        while offset < bytes.count {
            let count = Int(bytes[offset])
            if count == 0 { return (folded(labels), next ?? offset + 1) }
            if count & 0xC0 == 0xC0 {
                guard offset + 1 < bytes.count else { break }
                let target = (count & 0x3F) << 8 | Int(bytes[offset + 1])
                guard target < offset else { throw ParseError(description: "a name's pointer does not point backwards") }
                if next == nil { next = offset + 2 }
                offset = target
                continue
            }
            guard count & 0xC0 == 0 else { throw ParseError(description: "a bad label") }
            guard offset + 1 + count <= bytes.count else { break }
            length += count + 1
            guard length <= 255 else { throw ParseError(description: "a name longer than 255 bytes") }
            labels.append(Array(bytes[offset + 1...offset + count]))
            offset += 1 + count
        }
        throw ParseError(description: "a name runs past the end")
    }
}
