import CLinux
import Glibc
import Reactor

/// Follows the VPN interface through rtnetlink (no privilege needed): a dump of links and
/// IPv4 addresses at start, then the kernel's events. When events were lost (ENOBUFS) it says
/// so and dumps again. Reports the interface's state whenever it changes.
public final class LinkWatcher {
    public let name = "link.netlink"
    private let loop: EventLoop
    private let handler: (LinkTracker.State) -> Void
    private var tracker: LinkTracker
    private var fd: FileDescriptor?
    private var registration: RegistrationID?
    /// The dumps still to make, and the sequence number of the one in flight.
    private var pendingDumps: [UInt16] = []
    private var dumpSequence: UInt32?
    private var sequence: UInt32 = 0
    private var reported: LinkTracker.State?
    private var resyncRequested = false
    public private(set) var resyncs = 0

    private let receiveBufferSize: Int32

    /// `receiveBufferSize`: the socket's buffer (the kernel caps it at net.core.rmem_max).
    public init(loop: EventLoop, interface: String, receiveBufferSize: Int32 = 1 << 20,
                handler: @escaping (LinkTracker.State) -> Void) {
        self.loop = loop
        self.receiveBufferSize = receiveBufferSize
        self.handler = handler
        tracker = LinkTracker(interface: interface)
    }

    deinit { stop() }

    public var state: LinkTracker.State { tracker.state }

    public func start() throws {
        let socketFD = FileDescriptor(rawValue: try systemCall("socket(AF_NETLINK)") {
            socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, NETLINK_ROUTE)
        })
        fd = socketFD
        var size = receiveBufferSize
        // The kernel caps it at rmem_max; a smaller buffer only means an earlier ENOBUFS, handled.
        setsockopt(socketFD.rawValue, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = UInt32(RTMGRP_LINK | RTMGRP_IPV4_IFADDR)
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try systemCall("bind(AF_NETLINK)") { bind(socketFD.rawValue, raw, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
            }
        }
        registration = try loop.register(socketFD, interest: .readable, name: name) { [unowned self] _ in try self.drain() }
        try dumpAll()
    }

    public func stop() {
        if let registration { loop.deregister(registration) }
        registration = nil
        fd?.close()
        fd = nil
    }

    private func dumpAll() throws {
        tracker.reset()
        pendingDumps = [UInt16(RTM_GETLINK), UInt16(RTM_GETADDR)]
        try nextDump()
    }

    private func nextDump() throws {
        guard let fd, !pendingDumps.isEmpty else {
            dumpSequence = nil
            return
        }
        sequence += 1
        dumpSequence = sequence
        let request = NetlinkMessage.dumpRequest(type: pendingDumps.removeFirst(), sequence: sequence)
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        _ = try request.withUnsafeBytes { bytes in
            try withUnsafePointer(to: &kernel) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    try systemCall("sendto(AF_NETLINK)") {
                        sendto(fd.rawValue, bytes.baseAddress, bytes.count, 0, raw, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
        }
    }

    private func drain() throws {
        guard let fd else { return }
        var buffer = [UInt8](repeating: 0, count: 32 * 1024)
        while true {
            let result: IOResult<Int>
            do {
                result = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            } catch let error as SystemCallError where error.errno == ENOBUFS {
                // A socket runs one dump at a time: one in flight is redone when it ends.
                if dumpSequence == nil {
                    resyncs += 1
                    loop.logger.warning(name, "netlink events were lost (ENOBUFS); reading the state of \(tracker.interface) again")
                    try dumpAll()
                } else {
                    resyncRequested = true
                }
                continue
            }
            guard case .done(let count) = result, count > 0 else { break }
            for message in NetlinkMessage.parse(Array(buffer[0..<count])) {
                loop.logger.trace(name, "\(message)")
                switch message {
                case .done(let done, let interrupted) where done == dumpSequence:
                    if interrupted || resyncRequested {
                        resyncRequested = false
                        try dumpAll()
                    } else {
                        try nextDump()
                    }
                case .overrun:
                    try dumpAll()
                default:
                    tracker.apply(message)
                }
            }
        }
        report()
    }

    private func report() {
        guard dumpSequence == nil, tracker.state != reported else { return }
        reported = tracker.state
        handler(tracker.state)
    }
}
