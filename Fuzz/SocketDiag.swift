import Glibc
@testable import Sinks

/// ListeningSockets.parse: the kernel's NETLINK_SOCK_DIAG answer (what `ss` reads), read at
/// every drift check and tunnel change.
///
/// Input: the port, the state and the sequence number asked for, then the datagram.
/// Properties: reading never traps; a listener needs a whole 72-byte `inet_diag_msg`, so there
/// are never more listeners than the datagram could hold; each has an address in words.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSocketDiag(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let port = input.uint16()
    let state = input.bool() ? ListeningSockets.tcpListenState : input.byte()
    let sequence = input.uint32()
    let datagram = Array(input.bytes.dropFirst(input.position))
    let (listeners, _) = ListeningSockets.parse(datagram, port: port, state: state, sequence: sequence)
    require(listeners.count <= datagram.count / (16 + 72), "\(listeners.count) listeners from \(datagram.count) bytes")
    require(listeners.allSatisfy { !$0.address.isEmpty }, "a listener without an address: \(listeners)")
    return 0
}
