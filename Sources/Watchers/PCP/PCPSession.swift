import Domain
import Reactor

/// The PCP client's logic (RFC 6887, MAP for UDP and TCP), with no I/O. Each cycle asks for
/// both mappings at once and completes when both are answered; an answer counts only if it
/// carries the nonce of its mapping (96 bits, kept for the tunnel's life, so renewals and
/// retransmissions reuse it), its protocol and its internal port. Retransmissions follow §8.1.1
/// (3 s doubling up to 1024 s), never past a lease still running; a mapping is renewed at half
/// the lifetime granted; the epoch is checked on every answer as §8.5 says, and a gateway that
/// lost its state is asked again at once for the port it gave last. The client address in each
/// request is the socket's own (`.socketOpened`). A gateway that does not speak PCP
/// (UNSUPP_VERSION naming version 0, port unreachable, silence) is handed to NAT-PMP
/// (`.fallBack`) when the settings allow it. Over IPv6 (`settings.followsClients`) it maps
/// the clients' own port on the IPv6 address (a firewall's pinhole): it waits for that port,
/// and when the port moves it deletes the old mapping and asks for the new one.
public struct PCPSession {
    public enum Input {
        /// The way to the gateway is usable (first time, back, or with a new address or gateway).
        case tunnelUp(GatewayPath)
        case linkDown(String)
        /// The socket was made; `local` is its own address (getsockname).
        case socketOpened(local: IPAddress)
        /// The port the clients use (or were verified on): the internal port of a first
        /// mapping, and the external port suggested when none was granted yet.
        case preferredPort(Port)
        case datagramReceived([UInt8])
        /// The gateway answered with ICMP port unreachable (ECONNREFUSED on the socket).
        case refused
        case deadlineReached
    }

    public enum Effect: Equatable {
        /// (Re)create the socket: bound to `local`, connected to `gateway`:5351, its packets kept
        /// on the interface with index `interface`; then say `.socketOpened`.
        case openSocket(local: IPAddress, gateway: IPAddress, interface: Int32)
        case closeSocket
        case send([UInt8])
        case mapped(Port, expiry: Instant, reason: ChangeReason)
        case unmapped(String, ChangeReason)
        /// A cycle failed; `streak` failures in a row while the link is up.
        case failed(streak: Int)
        /// The gateway does not speak PCP: ask it with NAT-PMP on this tunnel instead.
        case fallBack(String)
        case log(LogLevel, String)
    }

    private enum Phase: Equatable {
        case down
        /// Waiting for the socket's address before the first request.
        case opening
        case asking(Cycle)
        case mapped
        case waiting
        /// Handed to NAT-PMP until the tunnel changes.
        case fellBack
    }

    private struct Cycle: Equatable {
        var attempt = 0
        /// The lease that must not lapse while asking (nil: none).
        var protecting: Instant?
        var udp: Grant?
        var tcp: Grant?

        var unanswered: [PCP.MappingProtocol] { (udp == nil ? [.udp] : []) + (tcp == nil ? [.tcp] : []) }
    }

    private struct Grant: Equatable {
        var port: UInt16
        var lifetime: UInt32
        var address: IPAddress?
    }

    public let settings: PCPSettings
    public private(set) var nextDeadline: Instant?
    public private(set) var port: Port?
    public private(set) var leaseExpiry: Instant?
    /// The external address the gateway named with the last mapping.
    public private(set) var externalAddress: IPAddress?
    public private(set) var tunnel: GatewayPath?
    public var gateway: IPAddress? { tunnel?.gateway }
    public private(set) var requestsSent = 0
    public private(set) var mappingsGranted = 0
    public private(set) var failureStreak = 0
    public private(set) var lastProblem: String?
    /// The result code of the last refusal, nil after a grant.
    public private(set) var lastResult: PCP.ResultCode?
    public private(set) var sessionInternalPort: UInt16?
    /// Whether NAT-PMP has this tunnel.
    public var fellBack: Bool { phase == .fellBack }

    private var phase = Phase.down
    private var client: IPAddress?
    private var preferred: Port?
    private var lastExternal: UInt16?
    private var nonces: [PCP.MappingProtocol: [UInt8]] = [:]
    private var lastEpoch: (epoch: UInt32, at: Instant)?
    private var cause = ChangeReason.started
    private var warnedMismatch = false

    public init(settings: PCPSettings) {
        self.settings = settings
    }

    /// The nonce of `mappingProtocol`'s mapping on this tunnel (tests read it).
    public func nonce(_ mappingProtocol: PCP.MappingProtocol) -> [UInt8]? { nonces[mappingProtocol] }

    /// The requests that delete the mappings held now (§15: lifetime 0, the mapping's nonce and
    /// internal port; the suggested port 0 and the family's all-zeros address, erratum 3621),
    /// one per protocol granted on this tunnel; none when nothing is held.
    public func deleteRequests() -> [[UInt8]] {
        guard let key = sessionInternalPort, let client else { return [] }
        var held: [PCP.MappingProtocol] = []
        if port != nil {
            held = [.udp, .tcp]
        } else if case .asking(let cycle) = phase {
            held = [PCP.MappingProtocol.udp, .tcp].filter { !cycle.unanswered.contains($0) }
        }
        return held.compactMap { mappingProtocol in
            nonces[mappingProtocol].map {
                PCP.mapRequest(mappingProtocol, nonce: $0, internalPort: key, suggestedExternalPort: 0, suggestedExternalAddress: nil,
                               lifetime: 0, client: client)
            }
        }
    }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .tunnelUp(let tunnel):
            if phase != .down && tunnel == self.tunnel { break }
            let fresh = phase == .down
            if self.tunnel != nil { cause = .tunnelRecreated }
            self.tunnel = tunnel
            // §11.2: new nonces for what may be another server.
            nonces = [.udp: Self.makeNonce(), .tcp: Self.makeNonce()]
            lastEpoch = nil
            client = nil
            effects.append(.log(.info, fresh
                ? "\(tunnel.interface) up with address \(tunnel.local); mapping with PCP on gateway \(tunnel.gatewayText) (\(tunnel.gatewayRule))"
                : "\(tunnel.interface) is now \(tunnel.local) with gateway \(tunnel.gatewayText) (\(tunnel.gatewayRule)); mapping again with PCP"))
            open(tunnel, now, &effects)
        case .linkDown(let reason):
            guard phase != .down else { break }
            phase = .down
            nextDeadline = nil
            lastEpoch = nil
            client = nil
            effects.append(.closeSocket)
            effects.append(.log(.warning, "\(reason): PCP paused"))
            if port != nil { effects.append(.unmapped(reason, .tunnelRecreated)) }
            port = nil
            leaseExpiry = nil
        case .socketOpened(let local):
            client = local
            if phase == .opening { startCycle(now, &effects) }
        case .preferredPort(let port):
            preferred = port
            if settings.followsClients, port.value != sessionInternalPort { follow(port, now, &effects) }
        case .datagramReceived(let bytes):
            received(bytes, now, &effects)
        case .refused:
            guard case .asking(let cycle) = phase else { break }
            notPCP("the gateway \(gatewayText) refused PCP (port unreachable): nothing answers on port 5351", cycle, now, &effects)
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now else { break }
            nextDeadline = nil
            deadlineReached(now, &effects)
        }
        return effects
    }

    private var gatewayText: String { tunnel?.gatewayText ?? "(none yet)" }

    /// The clients moved to `port`: the mapping of the old one is deleted, and the new one asked
    /// for with new nonces (another mapping), at once if the way is up.
    private mutating func follow(_ port: Port, _ now: Instant, _ effects: inout [Effect]) {
        if sessionInternalPort != nil {
            effects += deleteRequests().map { .send($0) }
            effects.append(.log(.info, "the clients moved to port \(port): mapping it instead of \(sessionInternalPort!)"))
        }
        sessionInternalPort = port.value
        nonces = [.udp: Self.makeNonce(), .tcp: Self.makeNonce()]
        lastExternal = nil
        self.port = nil
        leaseExpiry = nil
        switch phase {
        case .asking, .mapped, .waiting: startCycle(now, &effects)
        case .down, .opening, .fellBack: break
        }
    }

    static func makeNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<12).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    private mutating func open(_ tunnel: GatewayPath, _ now: Instant, _ effects: inout [Effect]) {
        phase = .opening
        // Tried again if no socket could be made (the shell said nothing).
        nextDeadline = now + settings.retryDelay
        effects.append(.openSocket(local: tunnel.local, gateway: tunnel.gateway, interface: tunnel.index))
    }

    // MARK: Cycles

    private mutating func startCycle(_ now: Instant, _ effects: inout [Effect]) {
        if settings.followsClients && sessionInternalPort == nil {
            // Nothing to open before the clients' port is known.
            phase = .waiting
            nextDeadline = nil
            return
        }
        if sessionInternalPort == nil {
            sessionInternalPort = settings.internalPort ?? preferred?.value ?? port?.value ?? UInt16.random(in: 49152...65535)
        }
        if cause == .renewedToNewPort, let leaseExpiry, leaseExpiry <= now { cause = .leaseLapsed }
        phase = .asking(Cycle(protecting: leaseExpiry.flatMap { $0 > now ? $0 : nil }))
        sendRequests(now, &effects)
    }

    private mutating func sendRequests(_ now: Instant, _ effects: inout [Effect]) {
        guard case .asking(var cycle) = phase, let key = sessionInternalPort, let client else { return }
        let lifetime = UInt32(clamping: settings.lease.components.seconds)
        // The port granted last (also before a restart of the gateway), else the clients' own.
        let suggested = lastExternal ?? preferred?.value ?? key
        for mappingProtocol in cycle.unanswered {
            effects.append(.send(PCP.mapRequest(mappingProtocol, nonce: nonces[mappingProtocol]!, internalPort: key,
                                                suggestedExternalPort: suggested, suggestedExternalAddress: externalAddress,
                                                lifetime: lifetime, client: client)))
            requestsSent += 1
        }
        var wait = min(settings.initialRetransmit * (1 << min(cycle.attempt, 20)), settings.maxRetransmit)
        if let protecting = cycle.protecting, protecting > now { wait = min(wait, protecting - now) }
        cycle.attempt += 1
        phase = .asking(cycle)
        nextDeadline = now + wait
    }

    private mutating func deadlineReached(_ now: Instant, _ effects: inout [Effect]) {
        switch phase {
        case .down, .fellBack:
            break
        case .opening:
            if let tunnel { open(tunnel, now, &effects) }
        case .mapped, .waiting:
            startCycle(now, &effects)
        case .asking(var cycle):
            if let protecting = cycle.protecting, now >= protecting {
                leaseLapsed("the lease ran out with no answer from the gateway \(gatewayText)", &effects)
                cycle.attempt = 0
                cycle.protecting = nil
                phase = .asking(cycle)
                sendRequests(now, &effects)
            } else if cycle.protecting == nil && cycle.attempt >= settings.attempts {
                notPCP("no answer from the PCP gateway \(gatewayText) after \(cycle.attempt) tries", cycle, now, &effects)
            } else {
                sendRequests(now, &effects)
            }
        }
    }

    /// The gateway does not seem to speak PCP: NAT-PMP takes over if allowed and nothing was
    /// ever granted with PCP on this tunnel.
    private mutating func notPCP(_ message: String, _ cycle: Cycle, _ now: Instant, _ effects: inout [Effect]) {
        guard settings.fallBackToNATPMP, port == nil, cycle.udp == nil, cycle.tcp == nil else {
            return cycleFailed(message, retryAfter: nil, now, &effects)
        }
        lastProblem = message
        phase = .fellBack
        nextDeadline = nil
        effects.append(.log(.notice, "\(message); asking with NAT-PMP instead"))
        effects.append(.closeSocket)
        effects.append(.fallBack(message))
    }

    private mutating func leaseLapsed(_ reason: String, _ effects: inout [Effect]) {
        lastProblem = reason
        cause = .leaseLapsed
        if let port {
            effects.append(.log(.warning, "\(reason); port \(port) is no longer forwarded"))
            effects.append(.unmapped(reason, .leaseLapsed))
        }
        port = nil
        leaseExpiry = nil
    }

    /// `retryAfter`: the gateway's "do not retry before" (an error's lifetime).
    private mutating func cycleFailed(_ message: String, retryAfter: Duration?, _ now: Instant, _ effects: inout [Effect]) {
        failureStreak += 1
        if message != lastProblem {
            effects.append(.log(.error, message))
            lastProblem = message
        }
        effects.append(.failed(streak: failureStreak))
        if let expiry = leaseExpiry, expiry <= now { leaseLapsed(message, &effects) }
        phase = .waiting
        var next = now + max(settings.retryDelay, retryAfter ?? .zero)
        if let expiry = leaseExpiry, expiry > now, expiry < next {
            // Try again before a lease that is still running ends.
            next = max(now, expiry - settings.initialRetransmit * 4)
        }
        nextDeadline = next
    }

    // MARK: Answers

    private mutating func received(_ bytes: [UInt8], _ now: Instant, _ effects: inout [Effect]) {
        guard case .asking(var cycle) = phase else {
            effects.append(.log(.debug, "ignored a datagram nobody asked for"))
            return
        }
        let response: PCP.Response
        do {
            response = try PCP.decode(bytes)
        } catch {
            effects.append(.log(.debug, "ignored a datagram from the gateway: \(error)"))
            return
        }
        switch response {
        case .unsupportedVersion(let version, _):
            if version < PCP.version {
                return notPCP("the gateway \(gatewayText) answered UNSUPP_VERSION: it speaks version \(version)\(version == 0 ? " (NAT-PMP)" : ""), not PCP", cycle, now, &effects)
            }
            return cycleFailed("the gateway \(gatewayText) does not speak PCP version 2 (it offers version \(version))", retryAfter: .seconds(1800), now, &effects)
        case .headerOnly(_, let result, let lifetime, let epoch):
            if restarted(epoch, now, &effects) { return }
            return refused(result, lifetime: lifetime, what: "the mappings", now, &effects)
        case .map(let answer):
            guard let mappingProtocol = answer.mappingProtocol, cycle.unanswered.contains(mappingProtocol),
                  answer.nonce == nonces[mappingProtocol], answer.internalPort == sessionInternalPort else {
                effects.append(.log(.debug, "ignored an answer to another question (\(response))"))
                return
            }
            if restarted(answer.epoch, now, &effects) { return }
            guard answer.result == .success else {
                return refused(answer.result, lifetime: answer.lifetime, what: "the \(mappingProtocol) mapping", now, &effects)
            }
            guard answer.externalPort != 0, answer.lifetime != 0 else {
                return cycleFailed("the gateway \(gatewayText) answered SUCCESS but granted no port (port \(answer.externalPort), lifetime \(answer.lifetime) s)",
                                   retryAfter: nil, now, &effects)
            }
            let grant = Grant(port: answer.externalPort, lifetime: answer.lifetime, address: answer.external)
            if mappingProtocol == .udp { cycle.udp = grant } else { cycle.tcp = grant }
            phase = .asking(cycle)
            guard let udp = cycle.udp, let tcp = cycle.tcp else { return }
            mapped(udp: udp, tcp: tcp, now, &effects)
        }
    }

    private mutating func refused(_ result: PCP.ResultCode, lifetime: UInt32, what: String, _ now: Instant, _ effects: inout [Effect]) {
        lastResult = result
        // §8.3: an error's lifetime is how long not to ask again; capped at 30 minutes.
        cycleFailed("the gateway \(gatewayText) refused \(what): \(result)", retryAfter: .seconds(Int64(min(lifetime, 1800))), now, &effects)
    }

    /// §8.5: the gateway lost its state if its epoch went back more than a second, or if its
    /// clock and ours moved apart by more than 2 s and 1/16. Then every mapping is asked again
    /// at once.
    private mutating func restarted(_ epoch: UInt32, _ now: Instant, _ effects: inout [Effect]) -> Bool {
        defer { lastEpoch = (epoch, now) }
        guard let last = lastEpoch else { return false }
        let client = Double((now - last.at).nanoseconds) / 1e9
        let server = Double(Int64(epoch) - Int64(last.epoch))
        guard server < -1 || client + 2 < server - server / 16 || server + 2 < client - client / 16 else { return false }
        effects.append(.log(.warning, "the gateway lost its mappings (its epoch went from \(last.epoch) to \(epoch)); mapping again"))
        cause = .gatewayRestarted
        lastEpoch = (epoch, now)
        startCycle(now, &effects)
        return true
    }

    private mutating func mapped(udp: Grant, tcp: Grant, _ now: Instant, _ effects: inout [Effect]) {
        let newPort = Port(tcp.port)!
        if udp.port != tcp.port, !warnedMismatch {
            effects.append(.log(.warning, "the gateway gave UDP port \(udp.port) but TCP port \(tcp.port); using the TCP port"))
            warnedMismatch = true
        }
        let lifetime = min(udp.lifetime, tcp.lifetime)
        let granted = Duration.seconds(Int64(lifetime))
        let previous = port
        port = newPort
        lastExternal = tcp.port
        externalAddress = tcp.address
        leaseExpiry = now + granted
        mappingsGranted += 1
        if failureStreak > 0 || lastProblem != nil { effects.append(.log(.info, "the PCP gateway grants mappings again")) }
        failureStreak = 0
        lastProblem = nil
        lastResult = nil
        if previous != newPort {
            effects.append(.log(.notice, previous == nil
                ? "the gateway \(gatewayText) forwards port \(newPort) of \(tcp.address?.description ?? "its external address") (lease \(lifetime) s)"
                : "the gateway \(gatewayText) changed the forwarded port from \(previous!) to \(newPort)"))
        } else {
            effects.append(.log(.debug, "mapping of port \(newPort) renewed for \(lifetime) s"))
        }
        effects.append(.mapped(newPort, expiry: leaseExpiry!, reason: cause))
        cause = .renewedToNewPort
        phase = .mapped
        // Renewed at half the lifetime granted.
        nextDeadline = now + granted / 2
    }
}
