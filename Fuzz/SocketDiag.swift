import Glibc
@testable import Sinks

/// ListeningSockets.parse: the kernel's NETLINK_SOCK_DIAG answer (what `ss` reads), read at
/// every drift check and tunnel change.
///
/// Input: the port, the state and the sequence number asked for, whether only that state or a
/// connection's states, then the datagram.
/// Properties: reading never traps; a listener needs a whole 72-byte `inet_diag_msg`, so there
/// are never more listeners than the datagram could hold; each has an address in words.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSocketDiag(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let port = input.uint16()
    let state = input.bool() ? ListeningSockets.tcpListenState : input.byte()
    let sequence = input.uint32()
    let datagram = Array(input.bytes.dropFirst(input.position))
    let states = input.bool() ? [state] : ListeningSockets.tcpConnectionStates
    let (listeners, _) = ListeningSockets.parse(datagram, port: port, states: states, sequence: sequence)
    require(listeners.count <= datagram.count / (16 + 72), "\(listeners.count) listeners from \(datagram.count) bytes")
    require(listeners.allSatisfy { !$0.address.isEmpty }, "a listener without an address: \(listeners)")
    // Only IPv6 sockets are IPv6-only; a listener asked for alone has no peer.
    require(states != [ListeningSockets.tcpListenState] || listeners.allSatisfy { $0.peer == nil }, "a listener with a peer: \(listeners)")
    require(listeners.allSatisfy { !$0.v6Only || $0.address.hasPrefix("[") }, "an IPv4 socket taken as IPv6-only: \(listeners)")
    return 0
}
