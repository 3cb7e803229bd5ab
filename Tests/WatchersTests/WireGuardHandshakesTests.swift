import CLinux
import Glibc
import Reactor
import Testing
@testable import Watchers

/// The WireGuard handshakes as generic netlink answers them, laid out as the kernel's uapi
/// (`linux/wireguard.h`, `linux/genetlink.h`) says; and a real read on this machine, whose
/// kernel has no WireGuard (or whose `lo` is not WireGuard's).
@Suite struct WireGuardHandshakesTests {
    static func nested(_ type: UInt16, _ value: [UInt8]) -> [UInt8] { Netlink.attribute(type | 0x8000, value) }

    @Test func theRequestsAreGenericNetlinksOwn() {
        let family = WireGuardHandshakes.familyRequest(sequence: 1)
        #expect(Netlink.u16(family, 4) == 0x10 && Array(family[16..<20]) == [3, 1, 0, 0], "CTRL_CMD_GETFAMILY to the controller")
        #expect(Array(family[20...]) == Netlink.attribute(2, Array("wireguard".utf8) + [0]))
        let device = WireGuardHandshakes.deviceRequest(family: 27, interface: "wg0", sequence: 2)
        #expect(Netlink.u16(device, 4) == 27 && Netlink.u16(device, 6) == UInt16(NLM_F_REQUEST | NLM_F_DUMP))
        #expect(Array(device[16..<20]) == [0, 1, 0, 0] && Array(device[20...]) == Netlink.attribute(2, Array("wg0".utf8) + [0]))
    }

    @Test func theFamilyAndEachPeersHandshakeAreRead() {
        let family = Netlink.message(type: 0x10, flags: 0, sequence: 1, body: [1, 2, 0, 0] + Netlink.attribute(2, Array("wireguard\0".utf8))
            + Netlink.attribute(1, Netlink.littleEndian(UInt16(27))))
        guard case .value(27) = WireGuardHandshakes.familyAnswer(family, sequence: 1) else { Issue.record("no family id"); return }
        func timespec(_ seconds: Int64) -> [UInt8] { Netlink.littleEndian(seconds) + Netlink.littleEndian(Int64(123)) }
        let peer1 = Self.nested(0, Netlink.attribute(1, [UInt8](repeating: 7, count: 32)) + Netlink.attribute(6, timespec(1_765_000_000)))
        let peer2 = Self.nested(1, Netlink.attribute(1, [UInt8](repeating: 8, count: 32)) + Netlink.attribute(6, timespec(0)))
        let device = Netlink.message(type: 27, flags: UInt16(NLM_F_MULTI), sequence: 2,
                                     body: [0, 1, 0, 0] + Netlink.attribute(2, Array("wg0\0".utf8)) + Self.nested(8, peer1 + peer2))
        let done = Netlink.message(type: UInt16(NLMSG_DONE), flags: UInt16(NLM_F_MULTI), sequence: 2, body: [0, 0, 0, 0])
        guard case .value(let first) = WireGuardHandshakes.deviceAnswer(device, family: 27, sequence: 2) else { Issue.record("refused"); return }
        #expect(first.handshakes == [1_765_000_000, nil] && !first.done, "a peer that never shook hands has 0 s")
        guard case .value(let last) = WireGuardHandshakes.deviceAnswer(done, family: 27, sequence: 2) else { Issue.record("refused"); return }
        #expect(last.handshakes.isEmpty && last.done)
    }

    @Test(arguments: [(ENOENT, WireGuardHandshakes.Reading.notWireGuard), (ENODEV, .notWireGuard), (EPERM, .notPermitted)])
    func refusalsAreNamed(code: Int32, reading: WireGuardHandshakes.Reading) {
        let error = Netlink.message(type: UInt16(NLMSG_ERROR), flags: 0, sequence: 1, body: Netlink.littleEndian(-code) + [UInt8](repeating: 0, count: 16))
        guard case .stop(let got) = WireGuardHandshakes.familyAnswer(error, sequence: 1) else { Issue.record("taken as an answer"); return }
        #expect(got == reading)
    }

    @Test func aRealReadOfAnInterfaceThatIsNotWireGuard() {
        #expect(WireGuardHandshakes.read(interface: "lo") == .notWireGuard)
    }
}
