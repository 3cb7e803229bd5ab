import CLinux
import Reactor

/// When the tunnel watcher reads the whole state again, with no I/O: the links, IPv4
/// addresses and IPv4 routes are dumped at the start, one dump at a time (a netlink socket runs
/// one at a time), each under its own sequence number. Events the kernel dropped (ENOBUFS), a
/// dump it marked interrupted (`NLM_F_DUMP_INTR`: the state changed while it ran) or an
/// overrun mean the tracker's picture may be wrong: every dump is made again, from a reset
/// tracker. Lost events during a dump redo the dumps once it ends, not in its middle. The shell
/// (`TunnelWatcher`) reads the socket and carries out the effects.
public struct DumpSchedule: Equatable, Sendable {
    public enum Effect: Equatable, Sendable {
        /// Forget what the tracker knows: the dumps are about to tell it again.
        case resetTracker
        case sendDump(type: UInt16, sequence: UInt32)
        case log(LogLevel, String)
    }

    public static let dumps = [UInt16(RTM_GETLINK), UInt16(RTM_GETADDR), UInt16(RTM_GETROUTE)]

    private var pending: [UInt16] = []
    /// The sequence number of the dump in flight; nil when none is.
    public private(set) var inFlight: UInt32?
    private var sequence: UInt32 = 0
    private var redoWhenDone = false
    /// Times the whole state was read again after lost events, for tests and the benchmark.
    public private(set) var resyncs = 0

    public init() {}

    /// No dump in flight: the tracker's picture is complete.
    public var isSettled: Bool { inFlight == nil }

    /// A sequence number of its own for another request on the same numbering (a route lookup).
    public mutating func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    public mutating func start() -> [Effect] {
        redoWhenDone = false
        pending = Self.dumps
        return [.resetTracker] + next()
    }

    /// The socket said ENOBUFS: events were dropped.
    public mutating func eventsLost(interface: String) -> [Effect] {
        guard inFlight == nil else {
            redoWhenDone = true
            return []
        }
        resyncs += 1
        return [.log(.warning, "netlink events were lost (ENOBUFS); reading the state of \(interface) again")] + start()
    }

    /// `NLMSG_DONE` for `sequence`; one for another sequence (a late answer) is not ours.
    public mutating func dumpEnded(sequence: UInt32, interrupted: Bool) -> [Effect] {
        guard sequence == inFlight else { return [] }
        inFlight = nil
        if interrupted || redoWhenDone { return start() }
        return next()
    }

    /// A message said the kernel's answer overran: read everything again.
    public mutating func overrun() -> [Effect] {
        inFlight = nil
        return start()
    }

    private mutating func next() -> [Effect] {
        guard !pending.isEmpty else {
            inFlight = nil
            return []
        }
        let sequence = nextSequence()
        inFlight = sequence
        return [.sendDump(type: pending.removeFirst(), sequence: sequence)]
    }
}
