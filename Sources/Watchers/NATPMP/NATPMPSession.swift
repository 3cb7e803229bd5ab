import Domain
import Reactor

/// The NAT-PMP client's logic (RFC 6886), with no I/O: each cycle asks for the UDP and the TCP
/// mapping together, completes when both are answered, retransmits only the unanswered ones,
/// 250 ms doubling but never past the lease, renews before the lease ends, ignores anything
/// that is not a well-formed answer to a question in flight, and re-maps at once when the
/// gateway's epoch shows it lost its state. A renewal is in no hurry: its two answers are left
/// queued and collected in one wake-up, twice the last round trip and 20 ms (for a gateway or a
/// machine slow to wake) after the requests, at most at the first retransmission, so that an
/// idle renewal costs two wake-ups, not three. The shell owns the socket, bound to the tunnel's
/// own address and connected to the gateway.
public struct NATPMPSession {
    public enum Input {
        /// The tunnel is usable: up, addressed, and the route to its gateway goes through it
        /// (first time, back, or with a new address or gateway).
        case tunnelUp(Tunnel)
        case linkDown(String)
        /// The port in use (qBittorrent's): the internal port, if no mapping was made yet.
        case preferredPort(Port)
        /// The internal port of an earlier run (from the state file): the same key keeps the
        /// same mapping, and so the same external port, across restarts.
        case previousInternalPort(UInt16)
        case datagramReceived([UInt8])
        /// The gateway answered with ICMP port unreachable (ECONNREFUSED on the socket).
        case refused
        case deadlineReached
        /// The shell read what was queued, as `.collectAnswers` asked.
        case answersCollected
        /// Peers cannot reach the mapped port: ask for the mappings again now (a gateway that
        /// lost them silently maps them anew), as a renewal does; nothing while already asking.
        case remapNow
    }

    public enum Effect: Equatable {
        /// (Re)create the socket: bound to `local`, connected to `gateway`:5351, its packets
        /// kept on the interface with index `interface`.
        case openSocket(local: IPv4Address, gateway: IPv4Address, interface: Int32)
        case closeSocket
        case send([UInt8])
        /// Wake up for answers as they come (true), or leave them queued (false).
        case listen(Bool)
        /// Read the answers queued on the socket now, then say `.answersCollected`.
        case collectAnswers
        /// The gateway forwards `port` until `expiry`; `reason`: why it is another port than
        /// the one before, if it is.
        case mapped(Port, expiry: Instant, reason: ChangeReason)
        /// No mapping any more, and why: in words, and `.leaseLapsed` for a lease that ran out,
        /// `.tunnelRecreated` for a tunnel that went away.
        case unmapped(String, ChangeReason)
        /// The gateway's public address (opcode 0), asked once a mapping is granted: the address
        /// peers must reach for the forwarded port.
        case publicAddress(IPv4Address)
        /// A cycle failed; `streak` failures in a row while the link is up.
        case failed(streak: Int)
        case log(LogLevel, String)
    }

    private enum Phase: Equatable {
        case down
        case asking(Cycle)
        case mapped
        case waiting
    }

    /// One round of asking for both mappings.
    private struct Cycle: Equatable {
        var startedAt: Instant
        /// Rounds of requests sent so far, and the lease that must not lapse (nil: none left).
        var attempt = 0
        var protecting: Instant?
        var retransmitAt: Instant?
        /// The answers are left queued until the deadline (`collecting`), or were.
        var collecting = false
        var deferred = false
        /// What each protocol's answer granted, once it came.
        var udp: Grant?
        var tcp: Grant?

        var unanswered: [NATPMP.MappingProtocol] { (udp == nil ? [.udp] : []) + (tcp == nil ? [.tcp] : []) }
    }

    private struct Grant: Equatable {
        var port: UInt16
        var lifetime: UInt32
    }

    public let settings: NATPMPSettings
    public private(set) var nextDeadline: Instant?
    public private(set) var port: Port?
    public private(set) var leaseExpiry: Instant?
    /// The gateway's public address, as it last answered opcode 0 on this tunnel and epoch.
    public private(set) var publicAddress: IPv4Address?
    /// The tunnel last seen usable (kept while it is down, for messages).
    public private(set) var tunnel: Tunnel?
    public var gateway: IPv4Address? { tunnel?.gateway }
    /// Requests and answers, for tests and the idle benchmark.
    public private(set) var requestsSent = 0
    public private(set) var mappingsGranted = 0

    private var phase = Phase.down
    private var preferred: Port?
    public private(set) var sessionInternalPort: UInt16?
    /// The last external port granted: suggested again, also after the tunnel went away.
    private var lastExternal: UInt16?
    private var lastEpoch: (epoch: UInt32, at: Instant)?
    /// The last round trip watched as it happened, on this tunnel.
    private var roundTrip: Duration?
    /// Failed cycles in a row while the link is up.
    public private(set) var failureStreak = 0
    /// Why the next mapping, if it grants another port than the last, does: a renewal, unless
    /// the tunnel came back, the gateway restarted or the lease lapsed since.
    private var cause = ChangeReason.started
    /// What went wrong last (a refusal, silence, a lapsed lease), nil until something did.
    public private(set) var lastProblem: String?
    private var warnedMismatch = false
    /// An external-address request is in flight (its answer is taken only then).
    private var askedAddress = false

    public init(settings: NATPMPSettings) {
        self.settings = settings
    }

    public var isUp: Bool { phase != .down }

    public mutating func handle(_ input: Input, now: Instant) -> [Effect] {
        var effects: [Effect] = []
        switch input {
        case .tunnelUp(let tunnel):
            if phase != .down && tunnel == self.tunnel { break }
            let fresh = phase == .down
            if self.tunnel != nil { cause = .tunnelRecreated }
            self.tunnel = tunnel
            lastEpoch = nil
            roundTrip = nil
            forgetPublicAddress()
            effects.append(.openSocket(local: tunnel.address, gateway: tunnel.gateway, interface: tunnel.index))
            effects.append(.log(.info, fresh
                ? "tunnel up with address \(tunnel.address); mapping on gateway \(tunnel.gateway) (\(tunnel.gatewayRule))"
                : "tunnel is now \(tunnel.address) with gateway \(tunnel.gateway) (\(tunnel.gatewayRule)); mapping again"))
            startCycle(now, &effects)
        case .linkDown(let reason):
            guard phase != .down else { break }
            phase = .down
            nextDeadline = nil
            lastEpoch = nil
            roundTrip = nil
            forgetPublicAddress()
            effects.append(.closeSocket)
            effects.append(.log(.warning, "\(reason): NAT-PMP paused"))
            if port != nil { effects.append(.unmapped(reason, .tunnelRecreated)) }
            port = nil
            leaseExpiry = nil
        case .preferredPort(let port):
            preferred = port
        case .previousInternalPort(let port):
            if sessionInternalPort == nil && settings.internalPort == nil && !settings.zeroInternalPort && port != 0 {
                sessionInternalPort = port
            }
        case .datagramReceived(let bytes):
            received(bytes, now, &effects)
        case .refused:
            guard case .asking = phase else { break }
            cycleFailed("the gateway \(gatewayText) refused NAT-PMP (port unreachable): port forwarding is off for this connection (ProtonVPN: a P2P server, with NAT-PMP/port forwarding enabled)", now, &effects)
        case .deadlineReached:
            guard let deadline = nextDeadline, deadline <= now else { break }
            nextDeadline = nil
            deadlineReached(now, &effects)
        case .remapNow:
            guard phase == .mapped || phase == .waiting else { break }
            effects.append(.log(.info, "asking the gateway \(gatewayText) for the mappings again"))
            startCycle(now, &effects)
        case .answersCollected:
            effects.append(.listen(true))
            guard case .asking(let cycle) = phase, !cycle.collecting else { break }
            // Not all in after twice the round trip: the next renewal measures it again.
            roundTrip = nil
            // Never in the past, however late the shell reports (the fuzz target reports at any time).
            nextDeadline = cycle.retransmitAt.map { max(now, $0) }
        }
        return effects
    }

    /// The delete requests (lifetime 0) for both mappings, for a clean shutdown when asked for.
    public func deleteRequests() -> [[UInt8]] {
        guard port != nil, let key = sessionInternalPort else { return [] }
        return [NATPMP.MappingProtocol.udp, .tcp].map {
            NATPMP.mappingRequest($0, internalPort: key, suggestedExternalPort: 0, lifetime: 0)
        }
    }

    private var gatewayText: String { gateway.map { "\($0)" } ?? "(none yet)" }

    /// Another tunnel or a gateway that restarted may leave from another address: ask again.
    private mutating func forgetPublicAddress() {
        publicAddress = nil
        askedAddress = false
    }

    // MARK: Cycles

    /// The internal port is chosen once, at the first mapping, and kept: gateways such as
    /// ProtonVPN's tell mappings apart by it, so a new one would mean a new external port. It is
    /// the port already in use when known (RFC-strict gateways forward to it), never 0 unless
    /// configured.
    private mutating func startCycle(_ now: Instant, _ effects: inout [Effect]) {
        if sessionInternalPort == nil {
            sessionInternalPort = settings.zeroInternalPort ? 0 : settings.internalPort ?? preferred?.value ?? port?.value ?? 0
            if sessionInternalPort == 0 && !settings.zeroInternalPort {
                // Nothing known yet: any stable port will do as this session's key.
                sessionInternalPort = UInt16.random(in: 49152...65535)
            }
        }
        // A renewal after the lease ran out unseen (the machine was suspended): the gateway
        // may give another port, for that reason.
        if cause == .renewedToNewPort, let leaseExpiry, leaseExpiry <= now { cause = .leaseLapsed }
        phase = .asking(Cycle(startedAt: now, protecting: leaseExpiry.flatMap { $0 > now ? $0 : nil }))
        sendRequests(now, &effects)
    }

    /// Sends the requests not answered yet in this cycle, all at once, and sets the deadline
    /// of the next retransmission.
    private mutating func sendRequests(_ now: Instant, _ effects: inout [Effect]) {
        guard case .asking(var cycle) = phase, let key = sessionInternalPort else { return }
        let lifetime = UInt32(clamping: settings.lease.components.seconds)
        let suggested = lastExternal ?? key
        for mappingProtocol in cycle.unanswered {
            effects.append(.send(NATPMP.mappingRequest(mappingProtocol, internalPort: key, suggestedExternalPort: suggested, lifetime: lifetime)))
            requestsSent += 1
        }
        var wait = min(settings.initialRetransmit * (1 << min(cycle.attempt, 20)), settings.maxRetransmit)
        if let protecting = cycle.protecting, protecting > now { wait = min(wait, protecting - now) }
        cycle.attempt += 1
        cycle.retransmitAt = now + wait
        phase = .asking(cycle)
        nextDeadline = now + wait
    }

    private mutating func deadlineReached(_ now: Instant, _ effects: inout [Effect]) {
        switch phase {
        case .down:
            break
        case .mapped:
            startCycle(now, &effects)
            // A renewal with a round trip known on this tunnel: its answers wait to be collected.
            guard case .asking(var cycle) = phase, cycle.protecting != nil, let roundTrip else { break }
            cycle.collecting = true
            cycle.deferred = true
            phase = .asking(cycle)
            nextDeadline = now + min(roundTrip * 2 + .milliseconds(20), settings.initialRetransmit)
            effects.append(.listen(false))
        case .waiting:
            startCycle(now, &effects)
        case .asking(var cycle) where cycle.collecting:
            cycle.collecting = false
            phase = .asking(cycle)
            effects.append(.collectAnswers)
        case .asking(var cycle):
            if let protecting = cycle.protecting, now >= protecting {
                // The lease ran out while renewing: the port is gone; keep asking for a new one
                // (what this cycle already got stays: it was granted just now).
                leaseLapsed("the lease ran out with no answer from the gateway \(gatewayText)", now, &effects)
                cycle.attempt = 0
                cycle.protecting = nil
                phase = .asking(cycle)
                sendRequests(now, &effects)
            } else if cycle.protecting == nil && cycle.attempt >= settings.attempts {
                cycleFailed("no answer from the NAT-PMP gateway \(gatewayText) after \(cycle.attempt) tries", now, &effects)
            } else {
                sendRequests(now, &effects)
            }
        }
    }

    private mutating func leaseLapsed(_ reason: String, _ now: Instant, _ effects: inout [Effect]) {
        lastProblem = reason
        cause = .leaseLapsed
        if port != nil {
            effects.append(.log(.warning, "\(reason); port \(port!) is no longer forwarded"))
            effects.append(.unmapped(reason, .leaseLapsed))
        }
        port = nil
        leaseExpiry = nil
    }

    private mutating func cycleFailed(_ message: String, _ now: Instant, _ effects: inout [Effect]) {
        failureStreak += 1
        if message != lastProblem {
            effects.append(.log(.error, message))
            lastProblem = message
        }
        effects.append(.failed(streak: failureStreak))
        if let expiry = leaseExpiry, expiry <= now { leaseLapsed(message, now, &effects) }
        phase = .waiting
        nextDeadline = now + settings.retryDelay
        if let expiry = leaseExpiry, expiry > now, expiry < nextDeadline! {
            // Try again before a lease that is still running ends.
            nextDeadline = max(now, expiry - settings.initialRetransmit * 4)
        }
    }

    // MARK: Answers

    private mutating func received(_ bytes: [UInt8], _ now: Instant, _ effects: inout [Effect]) {
        guard phase != .down else {
            // A late datagram after the tunnel went down (or before it ever came up): there is
            // no gateway to map on, so even an epoch that jumped must not start a cycle.
            effects.append(.log(.debug, "ignored a datagram while the tunnel is down"))
            return
        }
        let response: NATPMP.Response
        do {
            response = try NATPMP.decode(bytes)
        } catch {
            effects.append(.log(.debug, "ignored a datagram from the gateway: \(error)"))
            return
        }
        if gatewayLostState(response.epoch, now) {
            effects.append(.log(.warning, "the gateway lost its mappings (its epoch went from \(lastEpoch!.epoch) to \(response.epoch)); mapping again"))
            lastEpoch = (response.epoch, now)
            cause = .gatewayRestarted
            forgetPublicAddress()
            startCycle(now, &effects)
            return
        }
        lastEpoch = (response.epoch, now)
        if case .externalAddress(let result, _, let address) = response, askedAddress {
            return publicAddressAnswered(result, address, &effects)
        }
        guard case .asking(var cycle) = phase else {
            effects.append(.log(.debug, "ignored an answer nobody asked for"))
            return
        }
        if case .unsupportedVersion = response {
            return cycleFailed("the gateway \(gatewayText) does not speak NAT-PMP version 0", now, &effects)
        }
        guard case .mapping(let answered, let result, _, _, let external, let lifetime) = response, cycle.unanswered.contains(answered) else {
            effects.append(.log(.debug, "ignored an answer to another question (\(response))"))
            return
        }
        guard result == .success else {
            return cycleFailed("the gateway \(gatewayText) refused the \(answered) mapping: \(result)", now, &effects)
        }
        guard external != 0, lifetime != 0 else {
            return cycleFailed("the gateway \(gatewayText) answered success but granted no port (port \(external), lifetime \(lifetime) s)", now, &effects)
        }
        if answered == .udp { cycle.udp = Grant(port: external, lifetime: lifetime) } else { cycle.tcp = Grant(port: external, lifetime: lifetime) }
        phase = .asking(cycle)
        // The other answer is still to come: its retransmission deadline stands.
        guard let udp = cycle.udp, let tcp = cycle.tcp else { return }
        if !cycle.deferred && cycle.attempt == 1 { roundTrip = now - cycle.startedAt }
        mapped(udp: udp.port, tcp: tcp.port, lifetime: min(udp.lifetime, tcp.lifetime), now, &effects)
    }

    private mutating func mapped(udp: UInt16, tcp: UInt16, lifetime: UInt32, _ now: Instant, _ effects: inout [Effect]) {
        let newPort = Port(tcp)!
        if udp != tcp, !warnedMismatch {
            effects.append(.log(.warning, "the gateway gave UDP port \(udp) but TCP port \(tcp); using the TCP port"))
            warnedMismatch = true
        }
        let granted = Duration.seconds(Int64(lifetime))
        let previous = port
        port = newPort
        lastExternal = tcp
        leaseExpiry = now + granted
        mappingsGranted += 1
        if failureStreak > 0 || lastProblem != nil { effects.append(.log(.info, "the NAT-PMP gateway answers again")) }
        failureStreak = 0
        lastProblem = nil
        if previous != newPort {
            effects.append(.log(.notice, previous == nil
                ? "the gateway \(gatewayText) forwards port \(newPort) (lease \(lifetime) s)"
                : "the gateway \(gatewayText) changed the forwarded port from \(previous!) to \(newPort)"))
        } else {
            effects.append(.log(.debug, "mapping of port \(newPort) renewed for \(lifetime) s"))
        }
        effects.append(.mapped(newPort, expiry: leaseExpiry!, reason: cause))
        cause = .renewedToNewPort
        phase = .mapped
        nextDeadline = now + min(settings.renewInterval, granted * 3 / 4)
        if publicAddress == nil {
            // After the mappings, never beside them (RFC 6886 §3.1: one request at a time); asked
            // again at each renewal until it is answered.
            askedAddress = true
            requestsSent += 1
            effects.append(.send(NATPMP.externalAddressRequest()))
        }
    }

    private mutating func publicAddressAnswered(_ result: NATPMP.ResultCode, _ address: IPv4Address, _ effects: inout [Effect]) {
        askedAddress = false
        guard result == .success, address != IPv4Address(0, 0, 0, 0) else {
            effects.append(.log(.info, "the gateway \(gatewayText) does not say its public address (\(result), \(address))"))
            return
        }
        publicAddress = address
        effects.append(.log(.info, "the gateway \(gatewayText) forwards on the public address \(address)"))
        effects.append(.publicAddress(address))
    }

    /// RFC 6887 §8.5's test, which also catches a jump forward (another server behind the same
    /// gateway address): the gateway's clock and ours must advance alike, within 2 s + 1/16.
    private func gatewayLostState(_ epoch: UInt32, _ now: Instant) -> Bool {
        guard let last = lastEpoch else { return false }
        let client = Double((now - last.at).nanoseconds) / 1e9
        let server = Double(Int64(epoch) - Int64(last.epoch))
        return server + 2 < client - client / 16 || client + 2 < server - server / 16
    }
}
