import Domain
import Reactor
import Testing
import Watchers

@Suite struct PerfectPrivacyPortsTests {
    /// Perfect Privacy's FAQ, and Gluetun's own test case: 10.0.203.88 → 12904, 22904, 32904.
    @Test(arguments: [
        (IPv4Address(10, 0, 203, 88), [12904, 22904, 32904]),
        (IPv4Address(10, 2, 0, 2), [10002, 20002, 30002]),
        (IPv4Address(10, 2, 1, 7), [10263, 20263, 30263]),
        (IPv4Address(10, 0, 255, 255), [14095, 24095, 34095]),
        (IPv4Address(10, 0, 240, 0), [10000, 20000, 30000]),
    ])
    func theLastTwelveBitsOfTheAddressNameThePorts(address: IPv4Address, ports: [Int]) {
        #expect(PerfectPrivacyPorts.ports(for: address) == ports.map { Port($0)! })
    }
}
