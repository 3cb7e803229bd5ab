import Reactor
@testable import Watchers

/// NATPMPSession, driven through a sequence of events: the tunnel up (with an address) and
/// down, preferred and remembered ports, datagrams (raw from the input, or answers to the
/// request in flight with fuzzed result, epoch, port and lifetime), ICMP refusals, deadlines
/// and the passing of time.
///
/// Properties: requests go out only while the socket is open, on the gateway the settings
/// name (or the address's .1); each is a 12-byte version-0 mapping request for the lease
/// asked for, with the same internal port for the whole session, 0 only when configured; TCP
/// is asked only after UDP was granted; a mapping is announced only on an answer, with the
/// port that answer granted (never 0) and an expiry ahead; the link going down forgets the
/// port; deadlines never in the past.
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
    var lastRequest: [UInt8]?
    var internalPort: UInt16?
    // The gateway's epoch: its seconds since start, moved by this much when it restarts.
    var epochOffset = Int64(input.uint16())
    var steps = 0
    while !input.isAtEnd && steps < 300 {
        steps += 1
        let event: NATPMPSession.Input
        var granted: UInt16?
        switch input.byte() % 9 {
        case 0:
            let address = input.pick([IPv4Address(10, 2, 0, 2), IPv4Address(10, 2, 0, 3), IPv4Address(10, 8, 0, 5),
                                      IPv4Address(input.byte(), input.byte(), input.byte(), input.byte())])
            event = .linkUp(address)
        case 1:
            event = .linkDown("proton0 is down")
        case 2:
            guard let port = Port(input.uint16()) else { continue }
            event = .preferredPort(port)
        case 3:
            event = .previousInternalPort(input.uint16())
        case 4:
            let bytes = input.chunk()
            if let response = try? NATPMP.decode(bytes), case .mapping(.tcp, .success, _, _, let external, _) = response {
                granted = external
            }
            event = .datagramReceived(bytes)
        case 5:
            event = .refused
        case 6:
            if let deadline = session.nextDeadline, deadline > now { now = deadline }
            event = .deadlineReached
        case 7:
            guard let request = lastRequest else { continue }
            let epoch = UInt32(truncatingIfNeeded: epochOffset + (now - start).components.seconds)
            let reply = answer(to: request, epoch: epoch, &input)
            epochOffset += Int64(reply[4...7].reduce(0) { $0 << 8 | UInt32($1) }) - Int64(epoch)
            if reply[1] == 130 && reply[2] == 0 && reply[3] == 0 { granted = UInt16(reply[10]) << 8 | UInt16(reply[11]) }
            event = .datagramReceived(reply)
        default:
            now = now + .milliseconds(Int(input.uint16()) * 10)
            continue
        }

        let before = session.nextDeadline
        let effects = session.handle(event, now: now)
        for effect in effects {
            switch effect {
            case .openSocket(let local, let to):
                require(to == settings.gateway ?? IPv4Address(local.bytes.0, local.bytes.1, local.bytes.2, 1), "socket to \(to) for \(local)")
                gateway = to
            case .closeSocket:
                gateway = nil
            case .send(let request):
                require(gateway != nil, "a request sent with no socket open")
                require(request.count == 12 && request[0] == 0 && (request[1] == 1 || request[1] == 2), "request \(request)")
                require(UInt32(request[8]) << 24 | UInt32(request[9]) << 16 | UInt32(request[10]) << 8 | UInt32(request[11]) == 60,
                        "lifetime asked for is not the lease")
                let key = UInt16(request[4]) << 8 | UInt16(request[5])
                require(key == internalPort ?? key, "internal port \(key), earlier \(internalPort!)")
                require(key != 0 || settings.zeroInternalPort, "internal port 0 when not configured")
                require(request[1] == 1 || grantsUDP(event) || (isDeadline(event) && lastRequest?[1] == 2),
                        "TCP asked before UDP was granted")
                internalPort = key
                lastRequest = request
            case .mapped(let port, let expiry):
                require(granted == port.value, "mapped \(port), the answer granted \(String(describing: granted))")
                require(expiry > now, "a lease that has expired already")
            case .unmapped, .failed, .log:
                break
            }
        }
        if case .linkDown = event { require(session.port == nil && !session.isUp, "still mapped with the link down") }
        if let deadline = session.nextDeadline, deadline != before { require(deadline >= now, "a deadline in the past") }
    }
    return 0
}

func grantsUDP(_ event: NATPMPSession.Input) -> Bool {
    guard case .datagramReceived(let bytes) = event else { return false }
    return bytes.count == 16 && bytes[0] == 0 && bytes[1] == 129 && bytes[2] == 0 && bytes[3] == 0
}

func isDeadline(_ event: NATPMPSession.Input) -> Bool {
    if case .deadlineReached = event { return true }
    return false
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
