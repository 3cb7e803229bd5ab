import Reactor
@testable import HTTP

/// DNSMessage.parse and NameLookup: a message from a name server (RFC 1035 §4.1), whatever it
/// holds, read as the answer to the queries for nas.test (the seeds' name) and others.
///
/// Properties: every address read is 4 bytes from an A answer or 16 from an AAAA answer, and
/// none from a truncated one; an answer is one question's: it never reads as the answer to two
/// names, nor to both types, and names compare without case. A lookup fed the message as the
/// answer to its A query (the AAAA one answered empty), then once more, either waits, asks
/// again over TCP (the query the message answers, of the server asked), asks the next server
/// or finishes; a success always holds at least one address, on the asked port, and needs a
/// message whose question is the name and type asked.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNS(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzInput(data, count)
    let bytes = input.bytes
    let names = ["nas.test", "nas", "other.test"]
    var answered: [(name: String, type: DNSMessage.RecordType)] = []
    for type in [DNSMessage.RecordType.a, .aaaa] {
        for name in names {
            guard let answer = try? DNSMessage.parse(bytes, name: name, type: type) else { continue }
            answered.append((name, type))
            require(answer.addresses.allSatisfy { $0.count == (type == .a ? 4 : 16) }, "\(type) answer with \(answer.addresses)")
            require(!answer.truncated || answer.addresses.isEmpty, "addresses read from a truncated answer")
            let folded = try? DNSMessage.parse(bytes, name: name.uppercased() + ".", type: type)
            require(folded == answer, "\(name) and \(name.uppercased()). read differently")
        }
    }
    require(answered.count <= 1, "one answer for several questions: \(answered)")

    let server = SocketAddress.v4(IPv4Address(10, 0, 0, 1), port: 53)
    let servers = ResolverConfiguration.NameServers(servers: [server], timeout: .seconds(1), attempts: 2)
    let id = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
    // The IDs drawn count up from the message's own, so that it answers the first query.
    var next = id
    var lookup = NameLookup(names: ["nas.test", "nas"], port: 8080, nameServers: servers, drawID: { defer { next &+= 1 }; return next })
    let now = Instant(nanoseconds: 0)
    guard case .ask(_, let queries)? = lookup.handle(.start, now: now).first, queries.count == 2 else {
        require(false, "no A and AAAA queries at the start")
        return 0
    }
    // The message answers the A query; the AAAA query gets an empty answer, so that the
    // message decides; then the message again (a replay), then a failed stream.
    let aaaa = queries[1]
    let emptyAAAA = Array(aaaa[0..<2]) + [0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0] + aaaa[12..<(aaaa.count - 11)]
    for input in [NameLookup.Input.answerReceived(bytes), .answerReceived(emptyAAAA), .answerReceived(bytes), .streamFailed] {
        for effect in lookup.handle(input, now: now) {
            switch effect {
            case .finished(.success(let addresses)):
                require(!addresses.isEmpty && addresses.allSatisfy { $0.port == 8080 }, "success with \(addresses)")
                require(answered.contains { $0.name == "nas.test" && $0.type == .a }, "success from a message that answers no question asked")
            case .askOverTCP(let asked, let query):
                require(asked == server, "TCP to \(asked), not the server asked")
                require(query == queries[0], "TCP for a query the message does not answer")
            default:
                break
            }
        }
    }
    return 0
}
