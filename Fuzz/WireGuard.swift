import Glibc
import Reactor
@testable import Watchers

/// WireGuardHandshakes' answers: the generic netlink controller's (the family's id) and
/// `WG_CMD_GET_DEVICE`'s dump (each peer's last handshake), read at every connectability look.
///
/// Input: which answer, the family id and sequence asked for, then the datagram.
/// Properties: reading never traps; a dump names no more peers than its bytes could hold (each
/// is at least a 4-byte nested attribute), and no handshake at 0 s (that is "none yet").
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWireGuard(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    var input = FuzzInput(data, count)
    let device = input.bool()
    let family = input.uint16()
    let sequence = input.uint32()
    let datagram = Array(input.bytes.dropFirst(input.position))
    if device {
        if case .value(let part) = WireGuardHandshakes.deviceAnswer(datagram, family: family, sequence: sequence) {
            require(part.handshakes.count <= datagram.count / 4, "\(part.handshakes.count) peers from \(datagram.count) bytes")
            require(!part.handshakes.contains(0), "a handshake at 0 s: \(part.handshakes)")
        }
    } else if case .value(let id) = WireGuardHandshakes.familyAnswer(datagram, sequence: sequence) {
        require(datagram.count >= 16 + 4 + 6, "a family id \(id) from \(datagram.count) bytes")
    }
    return 0
}
