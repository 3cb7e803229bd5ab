import Domain
import Reactor
@testable import Watchers

/// PCP.decode and PCPSession, from one input: the whole input decoded as a datagram, then the
/// same bytes read as a settings byte and a sequence of events driving the session (the tunnel
/// up and down, the socket's address, preferred ports, raw datagrams, answers to a request sent
/// with fuzzed result, nonce, epoch, port and lifetime, refusals, deadlines and time passing).
///
/// Decoder properties: a MAP answer decodes only from a version-2 response of 60 to 1100 bytes,
/// a multiple of 4, with its fields where §11.1 puts them; UNSUPP_VERSION only with the R bit
/// (or a NAT-PMP version 0 answer); codes known by name never come back as `.other`.
/// Session properties: no request before the socket named its address, each a 60-byte version-2
/// MAP request naming that address, with the lease asked for, one nonce per protocol for the
/// tunnel's life, the same internal port for the whole session; one batch asks for each protocol
/// at most once; a mapping is announced only with a TCP port a matching answer granted (nonce,
/// protocol, internal port), with an expiry ahead; no mapping while fallen back to NAT-PMP; the
/// link going down forgets the port; deadlines never in the past.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPCP(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    checkDecode(input.bytes)
    let flags = input.byte()
    let settings = PCPSettings(gateway: flags & 1 == 0 ? nil : IPv4Address(192, 168, 1, 1), lease: .seconds(Int64(flags >> 2) * 60 + 2),
                               internalPort: flags & 2 == 0 ? nil : 51413, attempts: Int(flags >> 5) + 1, fallBackToNATPMP: flags & 16 == 0)
    var session = PCPSession(settings: settings)
    let start = Instant(nanoseconds: 1_000_000_000)
    var now = start
    var tunnel: GatewayPath?
    var socketOpen = false
    var local: IPAddress?
    var requests: [[UInt8]] = []
    var grantedTCP: Set<UInt16> = []
    var internalPort: UInt16?
    var nonces: [UInt8: [UInt8]] = [:]
    var epochOffset = Int64(input.uint16())
    var steps = 0
    while !input.isAtEnd && steps < 300 {
        steps += 1
        let event: PCPSession.Input
        switch input.byte() % 9 {
        case 0:
            let address = input.pick([IPv4Address(192, 168, 1, 20), IPv4Address(10, 2, 0, 2),
                                      IPv4Address(input.byte(), input.byte(), input.byte(), input.byte())])
            tunnel = GatewayPath(Tunnel(interface: "eth0", index: Int32(input.byte() % 4) + 2, address: address,
                                        gateway: settings.gateway ?? IPv4Address(address.bytes.0, address.bytes.1, address.bytes.2, 1),
                                        gatewayRule: settings.gateway == nil ? .lastByteOne : .configured))
            event = .tunnelUp(tunnel!)
        case 1:
            event = .linkDown("eth0 is down")
        case 2:
            guard socketOpen, let tunnel else { continue }
            local = input.byte() % 4 == 0 ? .v4(IPv4Address(192, 168, 1, input.byte())) : tunnel.local
            event = .socketOpened(local: local!)
        case 3:
            guard let port = Port(input.uint16()) else { continue }
            event = .preferredPort(port)
        case 4:
            event = .datagramReceived(input.chunk())
        case 5:
            event = .refused
        case 6:
            if let deadline = session.nextDeadline, deadline > now { now = deadline }
            event = .deadlineReached
        case 7:
            guard !requests.isEmpty else { continue }
            let request = input.pick(requests)
            let epoch = UInt32(truncatingIfNeeded: epochOffset + (now - start).components.seconds)
            let reply = answer(to: request, epoch: epoch, &input)
            if reply.count >= 12 { epochOffset += Int64(PCP.word(reply, 8)) - Int64(epoch) }
            event = .datagramReceived(reply)
        default:
            now = now + .milliseconds(Int(input.uint16()) * 10)
            continue
        }

        if case .datagramReceived(let bytes) = event, case .map(let map)? = try? PCP.decode(bytes), map.result == .success,
           map.mappingProtocol == .tcp, map.nonce == nonces[6], map.internalPort == internalPort {
            grantedTCP.insert(map.externalPort)
        }
        let before = session.nextDeadline
        let effects = session.handle(event, now: now)
        var asked: [UInt8] = []
        for effect in effects {
            switch effect {
            case .openSocket(let address, let to, let interface):
                require(address == tunnel?.local && to == tunnel?.gateway && interface == tunnel?.index,
                        "socket \(address) → \(to) on \(interface) for \(String(describing: tunnel))")
                socketOpen = true
                local = nil
                nonces = [:]
            case .closeSocket:
                socketOpen = false
            case .send(let request):
                require(socketOpen && local != nil, "a request before the socket named its address")
                require(request.count == 60 && request[0] == 2 && request[1] == 1, "request \(request)")
                require(Array(request[8..<24]) == PCP.field(local!), "client address is not the socket's")
                require(PCP.word(request, 4) == UInt32(settings.lease.components.seconds), "lifetime asked for is not the lease")
                let mappingProtocol = request[36]
                require(mappingProtocol == 6 || mappingProtocol == 17, "protocol \(mappingProtocol)")
                let nonce = Array(request[24..<36])
                require(nonces[mappingProtocol].map { $0 == nonce } ?? true, "the nonce changed within a tunnel")
                nonces[mappingProtocol] = nonce
                let key = UInt16(request[40]) << 8 | UInt16(request[41])
                require(key == internalPort ?? key && key != 0, "internal port \(key), earlier \(String(describing: internalPort))")
                require(!asked.contains(mappingProtocol), "protocol \(mappingProtocol) asked twice in one go")
                asked.append(mappingProtocol)
                internalPort = key
                if mappingProtocol == 6 { grantedTCP = [] }
                requests = requests.filter { $0[36] != mappingProtocol } + [request]
            case .mapped(let port, let expiry, _):
                require(grantedTCP.contains(port.value), "mapped \(port), matching TCP answers granted \(grantedTCP.sorted())")
                require(expiry > now, "a lease that has expired already")
                require(!session.fellBack, "mapped while NAT-PMP has the tunnel")
            case .fallBack:
                require(settings.fallBackToNATPMP, "fell back with the fallback off")
            case .unmapped, .failed, .log:
                break
            }
        }
        if case .linkDown = event { require(session.port == nil, "still mapped with the link down") }
        if let deadline = session.nextDeadline, deadline != before { require(deadline >= now, "a deadline in the past") }
    }
    return 0
}

func checkDecode(_ bytes: [UInt8]) {
    guard let response = try? PCP.decode(bytes) else { return }
    switch response {
    case .map(let map):
        require(bytes[0] == 2 && bytes[1] == 0x81, "a MAP answer from version \(bytes[0]), opcode \(bytes[1])")
        require(bytes.count >= 60 && bytes.count <= 1100 && bytes.count % 4 == 0, "a MAP answer of \(bytes.count) bytes")
        require(map.nonce == Array(bytes[24..<36]) && map.protocolNumber == bytes[36] && map.externalAddress == Array(bytes[44..<60]),
                "fields out of place: \(map)")
        require(map.lifetime == PCP.word(bytes, 4) && map.epoch == PCP.word(bytes, 8), "lifetime or epoch out of place")
        checkNamed(map.result)
    case .unsupportedVersion(let version, _):
        require(version == bytes[0], "version \(version) from byte \(bytes[0])")
        require(bytes[0] == 0 || (bytes[1] & 0x80 != 0 && bytes[3] == 1), "UNSUPP_VERSION from \(bytes.prefix(4))")
    case .headerOnly(_, let result, _, _):
        require(bytes.count >= 24 && bytes.count < 60 && result != .success, "a header-only answer of \(bytes.count) bytes, \(result)")
        checkNamed(result)
    }
}

func checkNamed(_ result: PCP.ResultCode) {
    if case .other(let code) = result { require(code > 13, "result \(code) decoded as .other") }
}

/// The gateway's answer to `request`, shaped by the input: mostly a success echoing the nonce,
/// protocol and internal port with a port and a lifetime; sometimes another result, another
/// nonce, port 0, lifetime 0, a header alone, a NAT-PMP Unsupported Version, or an epoch that
/// jumps.
func answer(to request: [UInt8], epoch: UInt32, _ input: inout FuzzInput) -> [UInt8] {
    switch input.byte() % 16 {
    case 0: return [0, 128, 0, 1] + bigEndian(epoch)
    case 1: return [2, 0x81, 0, input.pick([3, 1, 2] as [UInt8])] + bigEndian(UInt32(30)) + bigEndian(epoch) + [UInt8](repeating: 0, count: 12)
    default: break
    }
    var reply = request
    reply[1] = 0x81
    reply[3] = input.pick([0, 0, 0, 0, 2, 8, 11, 12, input.byte()] as [UInt8])
    reply.replaceSubrange(4..<8, with: bigEndian(input.pick([600, 7200, 0, input.uint32()] as [UInt32])))
    reply.replaceSubrange(8..<12, with: bigEndian(input.byte() % 8 == 0 ? UInt32(input.uint16()) : epoch))
    if input.byte() % 8 == 0 { reply[24 + Int(input.byte() % 12)] ^= 1 }
    if input.byte() % 8 == 0 { reply[36] = reply[36] == 6 ? 17 : 6 }
    reply.replaceSubrange(42..<44, with: bigEndian(input.pick([40000, 40001, 0, input.uint16()] as [UInt16])))
    return reply
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}
