import Reactor
@testable import HTTP

/// DNSMessage.parse and NameLookup: a datagram from a name server (RFC 1035 §4.1), whatever it
/// holds.
///
/// Properties: every address read is 4 bytes from an A answer or 16 from an AAAA answer; a
/// lookup fed the datagram as the answer to each of its queries either waits, asks the next
/// server or finishes, and a success always holds at least one address, on the asked port.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDNS(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let input = FuzzInput(data, count)
    let bytes = input.bytes
    for type in [DNSMessage.RecordType.a, .aaaa] {
        if let answer = try? DNSMessage.parse(bytes, name: "nas.lan", type: type) {
            require(answer.addresses.allSatisfy { $0.count == (type == .a ? 4 : 16) }, "\(type) answer with \(answer.addresses)")
        }
    }
    let servers = ResolverConfiguration.NameServers(servers: [.v4(IPv4Address(10, 0, 0, 1), port: 53)], timeout: .seconds(1), attempts: 2)
    let seed = bytes.count >= 2 ? UInt16(bytes[0]) << 8 | UInt16(bytes[1]) : 0
    // The IDs drawn count up from the datagram's own, so that it answers the first query.
    var next = seed
    var lookup = NameLookup(names: ["nas.lan", "nas"], port: 8080, nameServers: servers, drawID: { defer { next &+= 1 }; return next })
    let now = Instant(nanoseconds: 0)
    _ = lookup.handle(.start, now: now)
    for _ in 0..<2 {
        for effect in lookup.handle(.answerReceived(bytes), now: now) {
            if case .finished(.success(let addresses)) = effect {
                require(!addresses.isEmpty && addresses.allSatisfy { $0.port == 8080 }, "success with \(addresses)")
            }
        }
    }
    return 0
}
