import CLinux
import Glibc
import Reactor

/// Follows the VPN interface through rtnetlink (no privilege needed): a dump of links, IPv4
/// addresses and IPv4 routes (every table) at start, then the kernel's link, address, route
/// and rule events. After each batch it asks the kernel which way a packet from the tunnel's
/// address to the gateway would go (`ip route get GATEWAY from ADDRESS`, on a second socket
/// that the kernel answers at once), so the tunnel counts as usable only once that way is the
/// tunnel. When to dump again (lost events, an interrupted dump) is `DumpSchedule`'s to say.
/// Reports the state whenever it changes.
public final class TunnelWatcher {
    public let name = "link.netlink"
    private let loop: EventLoop
    private let handler: (TunnelTracker.State) -> Void
    private var tracker: TunnelTracker
    private var events: Registration?
    private var lookupFD: FileDescriptor?
    private var dumps = DumpSchedule()
    private var reported: TunnelTracker.State?
    public var resyncs: Int { dumps.resyncs }
    /// Route lookups made, for tests and the benchmark.
    public private(set) var lookups = 0
    /// Set before `start` to follow IPv6 too (its addresses and routes): told the tunnel's IPv6
    /// way to its gateway whenever it changes (`TunnelTracker.ipv6`), nil when there is none.
    public var onIPv6Change: ((GatewayPath?) -> Void)?
    private var reportedIPv6: GatewayPath?

    private let receiveBufferSize: Int32

    /// `gateway`: the configured NAT-PMP gateway, nil to find it. `receiveBufferSize`: the
    /// socket's buffer (the kernel caps it at net.core.rmem_max).
    public convenience init(loop: EventLoop, interface: String, gateway: IPv4Address? = nil, receiveBufferSize: Int32 = 1 << 20,
                            handler: @escaping (TunnelTracker.State) -> Void) {
        self.init(loop: loop, tracker: TunnelTracker(interface: interface, gateway: gateway), receiveBufferSize: receiveBufferSize,
                  handler: handler)
    }

    /// `tracker`: what to follow (an interface, or the default route's router).
    public init(loop: EventLoop, tracker: TunnelTracker, receiveBufferSize: Int32 = 1 << 20,
                handler: @escaping (TunnelTracker.State) -> Void) {
        self.loop = loop
        self.receiveBufferSize = receiveBufferSize
        self.handler = handler
        self.tracker = tracker
    }

    deinit { stop() }

    public var state: TunnelTracker.State { tracker.state }
    /// Whether the interface followed exists at all (tells "not there" from "down").
    public var exists: Bool { tracker.exists }
    /// Whether the first dumps were read and the state said once.
    public var hasReported: Bool { reported != nil }

    /// The event socket is vital: a watcher that cannot read it would leave the tunnel's state
    /// frozen, so the loop stops instead (`FailurePolicy.stopLoop`).
    public func start() throws {
        var groups = UInt32(RTMGRP_LINK | RTMGRP_IPV4_IFADDR) | CLINUX_RTMGRP_IPV4_ROUTE | CLINUX_RTMGRP_IPV4_RULE
        if followsIPv6 { groups |= CLINUX_RTMGRP_IPV6_IFADDR | CLINUX_RTMGRP_IPV6_ROUTE }
        let socketFD = try Netlink.socket(NETLINK_ROUTE, groups: groups)
        // The kernel caps it at rmem_max; a smaller buffer only means an earlier ENOBUFS, handled.
        try? Socket(socketFD).setOption(SOL_SOCKET, SO_RCVBUF, receiveBufferSize, name: "SO_RCVBUF")
        events = try Registration(loop: loop, owning: socketFD, interest: .readable, name: name, onFailure: .stopLoop) {
            [unowned self] _ in try self.drain()
        }
        lookupFD = try Netlink.socket(NETLINK_ROUTE)
        try perform(dumps.start())
    }

    private var followsIPv6: Bool { onIPv6Change != nil }

    public func stop() {
        events?.cancel()
        events = nil
        lookupFD?.close()
        lookupFD = nil
    }

    private func perform(_ effects: [DumpSchedule.Effect]) throws {
        for effect in effects {
            switch effect {
            case .resetTracker: tracker.reset()
            case .sendDump(let type, let sequence):
                guard let fd = events?.fd else { return }
                try Netlink.send(NetlinkMessage.dumpRequest(type: type, sequence: sequence, ipv6: followsIPv6), on: fd)
            case .log(let level, let message): loop.logger.log(level, name, message)
            }
        }
    }

    private func drain() throws {
        guard let fd = events?.fd else { return }
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            let result: IOResult<Int>
            do {
                result = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch let error as SystemCallError where error.errno == .noBufferSpace {
                try perform(dumps.eventsLost(interface: tracker.interface))
                continue
            }
            guard case .done(let count) = result, count > 0 else { break }
            for message in NetlinkMessage.parse(Array(buffer[0..<count])) {
                loop.logger.trace(name, "\(message)")
                switch message {
                case .done(let done, let interrupted) where done == dumps.inFlight:
                    try perform(dumps.dumpEnded(sequence: done, interrupted: interrupted))
                case .overrun:
                    try perform(dumps.overrun())
                default:
                    tracker.apply(message)
                }
            }
        }
        guard dumps.isSettled else { return }
        // At most two: the way out (for the default route), then the way to the gateway.
        for _ in 0..<2 {
            guard let query = tracker.pendingLookup else { break }
            tracker.routeLookedUp(query, lookUp(query))
        }
        report()
    }

    /// Asks the kernel which way a packet would go. rtnetlink answers a request while
    /// `sendto` runs, so the answer is already queued when `recv` looks: nothing blocks.
    private func lookUp(_ query: TunnelTracker.RouteQuery) -> TunnelTracker.RouteAnswer {
        guard let lookupFD else { return .none("no netlink socket") }
        lookups += 1
        let asked = dumps.nextSequence()
        do {
            try Netlink.send(NetlinkMessage.routeLookup(to: query.destination, from: query.source, sequence: asked), on: lookupFD)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case .done(let count) = try buffer.withUnsafeMutableBytes({ try lookupFD.read(into: $0) }), count > 0 {
                if let answer = NetlinkMessage.routeAnswer(Array(buffer[0..<count]), sequence: asked) {
                    loop.logger.trace(name, "route to \(query.destination)\(query.source.map { " from \($0)" } ?? " (the way to the internet; only looked up)"): \(answer)")
                    return answer
                }
            }
            return .none("the kernel did not answer the route lookup")
        } catch {
            return .none("route lookup: \(error)")
        }
    }

    private func report() {
        reportState()
        if let onIPv6Change, tracker.ipv6 != reportedIPv6 {
            reportedIPv6 = tracker.ipv6
            onIPv6Change(reportedIPv6)
        }
    }

    private func reportState() {
        let state = tracker.state
        guard state != reported else { return }
        switch (reported, state) {
        case (_, .usable), (.usable?, _):
            break  // told by whoever uses the tunnel
        default:
            // A change between two ways of not being usable (gone, then up without a route):
            // said once, here.
            loop.logger.info(name, "\(state)")
        }
        reported = state
        handler(state)
    }
}
