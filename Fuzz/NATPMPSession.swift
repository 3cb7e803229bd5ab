import Domain
import Reactor
@testable import Watchers

/// NATPMPSession, driven through a sequence of events: the tunnel up (with an address, a
/// gateway and an interface index) and down, preferred and remembered ports, datagrams (raw
/// from the input, or answers to a request sent, with fuzzed result, epoch, port and
/// lifetime), ICMP refusals, deadlines, collected answers and the passing of time.
///
/// Properties: requests go out only while the socket is open, to the tunnel's gateway on its
/// interface; each is a 12-byte version-0 mapping request for the lease asked for, with the
/// same internal port for the whole session, 0 only when configured; one batch of effects asks
/// for each protocol at most once; a mapping is announced only with a port that a TCP answer to
/// the last TCP request granted (never 0), with an expiry ahead; the link going down forgets the port; deadlines never
/// in the past.
///
/// Input: a settings byte, then steps of an operation byte and its arguments.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNATPMPSession(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let flags = input.byte()
    let settings = NATPMPSettings(gateway: flags & 1 == 0 ? nil : IPv4Address(10, 2, 0, 1),
                                  internalPort: flags & 2 == 0 ? nil : 51413, zeroInternalPort: flags & 4 != 0,
                                  attempts: Int(flags >> 4) + 1)
    var session = NATPMPSession(settings: settings)
    let start = Instant(nanoseconds: 1_000_000_000)
    var now = start
    var gateway: IPv4Address?
    var tunnel: Tunnel?
    var requests: [[UInt8]] = []
    /// TCP ports granted by success answers since the last TCP request went out.
    var grantedTCP: Set<UInt16> = []
    var internalPort: UInt16?
    // The gateway's epoch: its seconds since start, moved by this much when it restarts.
    var epochOffset = Int64(input.uint16())
    var steps = 0
    while !input.isAtEnd && steps < 300 {
        steps += 1
        let event: NATPMPSession.Input
        switch input.byte() % 10 {
        case 0:
            let address = input.pick([IPv4Address(10, 2, 0, 2), IPv4Address(10, 2, 0, 3), IPv4Address(10, 8, 0, 5),
                                      IPv4Address(input.byte(), input.byte(), input.byte(), input.byte())])
            let gateway = settings.gateway ?? input.pick([IPv4Address(10, 2, 0, 1), IPv4Address(10, 96, 0, 1),
                                                          IPv4Address(address.bytes.0, address.bytes.1, address.bytes.2, 1)])
            tunnel = Tunnel(interface: "wg0", index: Int32(input.byte() % 4) + 5, address: address, gateway: gateway,
                            gatewayRule: settings.gateway == nil ? .lastByteOne : .configured)
            event = .tunnelUp(tunnel!)
        case 1:
            event = .linkDown("proton0 is down")
        case 2:
            guard let port = Port(input.uint16()) else { continue }
            event = .preferredPort(port)
        case 3:
            event = .previousInternalPort(input.uint16())
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
            epochOffset += Int64(reply[4...7].reduce(0) { $0 << 8 | UInt32($1) }) - Int64(epoch)
            event = .datagramReceived(reply)
        case 8:
            event = .answersCollected
        default:
            now = now + .milliseconds(Int(input.uint16()) * 10)
            continue
        }

        if case .datagramReceived(let bytes) = event, let response = try? NATPMP.decode(bytes),
           case .mapping(.tcp, .success, _, _, let external, _) = response {
            grantedTCP.insert(external)
        }
        let before = session.nextDeadline
        let effects = session.handle(event, now: now)
        var asked: [UInt8] = []
        for effect in effects {
            switch effect {
            case .openSocket(let local, let to, let interface):
                require(local == tunnel?.address && to == tunnel?.gateway && interface == tunnel?.index,
                        "socket \(local) → \(to) on \(interface) for \(String(describing: tunnel))")
                gateway = to
            case .closeSocket:
                gateway = nil
            case .send(let request) where request == NATPMP.externalAddressRequest():
                require(gateway != nil, "an address request sent with no socket open")
                require(session.port != nil, "the public address asked before a mapping")
            case .send(let request):
                require(gateway != nil, "a request sent with no socket open")
                require(request.count == 12 && request[0] == 0 && (request[1] == 1 || request[1] == 2), "request \(request)")
                require(UInt32(request[8]) << 24 | UInt32(request[9]) << 16 | UInt32(request[10]) << 8 | UInt32(request[11]) == 60,
                        "lifetime asked for is not the lease")
                let key = UInt16(request[4]) << 8 | UInt16(request[5])
                require(key == internalPort ?? key, "internal port \(key), earlier \(internalPort!)")
                require(key != 0 || settings.zeroInternalPort, "internal port 0 when not configured")
                require(!asked.contains(request[1]), "protocol \(request[1]) asked twice in one go")
                asked.append(request[1])
                internalPort = key
                if request[1] == 2 { grantedTCP = [] }
                requests = (requests.filter { $0[1] != request[1] } + [request])
            case .mapped(let port, let expiry, _):
                require(grantedTCP.contains(port.value), "mapped \(port), TCP answers since the request granted \(grantedTCP.sorted())")
                require(expiry > now, "a lease that has expired already")
            case .publicAddress(let address):
                require(address != IPv4Address(0, 0, 0, 0) && address == session.publicAddress, "public address \(address)")
            case .unmapped, .failed, .log, .listen, .collectAnswers:
                break
            }
        }
        if case .linkDown = event { require(session.port == nil && !session.isUp, "still mapped with the link down") }
        if let deadline = session.nextDeadline, deadline != before { require(deadline >= now, "a deadline in the past") }
    }
    return 0
}

/// The gateway's reply to `request`, shaped by the input: mostly a success for the same
/// protocol with a port and 60 s, sometimes another result, port 0, another lifetime, or an
/// epoch that jumps (the gateway restarted, or another one answers).
func answer(to request: [UInt8], epoch: UInt32, _ input: inout FuzzInput) -> [UInt8] {
    let result = input.pick([0, 0, 0, 0, 2, 3, 4, 1] as [UInt16])
    let external = input.pick([40000, 40001, 0, input.uint16()] as [UInt16])
    let lifetime = input.pick([60, 60, 30, 0, input.uint32()] as [UInt32])
    let epoch = input.byte() % 8 == 0 ? UInt32(input.uint16()) : epoch
    let opcode = input.byte() % 8 == 0 ? 128 + (3 - request[1]) : 128 + request[1]
    return [0, opcode] + bigEndian(result) + bigEndian(epoch) + Array(request[4..<6]) + bigEndian(external) + bigEndian(lifetime)
}

func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}
