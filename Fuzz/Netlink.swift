import CLinux
import Glibc
import Reactor
@testable import Watchers

/// NetlinkMessage.parse (one or more rtnetlink datagrams: dumps and events) and LinkTracker,
/// fed what was parsed, once for each interface named in it.
///
/// Properties: the messages, written out again, parse back equal; names hold no NUL; a
/// tracker says "usable" only with the interface present, up, running (or lower-up) and an
/// IPv4 address seen on its current index and not removed since; an interface removed or
/// forgotten (`reset`) is not usable.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetlink(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let messages = NetlinkMessage.parse(FuzzInput(data, count).bytes)
    let written = messages.flatMap(datagram)
    require(NetlinkMessage.parse(written) == messages, "the messages, written out again, parse differently")

    var names: [String] = []
    for case .link(_, let name, _, _) in messages where !names.contains(name) && names.count < 4 {
        require(!name.contains("\0"), "interface name with a NUL")
        names.append(name)
    }
    for name in names {
        var tracker = LinkTracker(interface: name)
        var index: Int32?
        var flags: UInt32 = 0
        var seen: [Int32: [IPv4Address]] = [:]
        for message in messages {
            tracker.apply(message)
            switch message {
            case .link(let linkIndex, let linkName, let linkFlags, let removed) where linkName == name:
                index = removed ? nil : linkIndex
                flags = linkFlags
                if removed { require(!isUsable(tracker), "usable after RTM_DELLINK") }
            case .link(let linkIndex, _, _, _) where linkIndex == index:
                index = nil
            case .address(let addressIndex, let address, let removed):
                seen[addressIndex, default: []].removeAll { $0 == address }
                if !removed { seen[addressIndex, default: []].append(address) }
            default:
                break
            }
            if case .usable(let address) = tracker.state {
                require(index != nil, "usable with no interface")
                require(flags & UInt32(IFF_UP) != 0 && flags & (UInt32(IFF_RUNNING) | CLINUX_IFF_LOWER_UP) != 0,
                        "usable with flags \(flags)")
                require(seen[index!]?.contains(address) == true, "usable with \(address), not an address of index \(index!)")
            }
        }
        tracker.reset()
        require(!isUsable(tracker), "usable after reset")
    }
    return 0
}

func isUsable(_ tracker: LinkTracker) -> Bool {
    if case .usable = tracker.state { return true }
    return false
}

/// One netlink message for `message`, as the kernel would send it.
func datagram(_ message: NetlinkMessage) -> [UInt8] {
    func header(_ type: Int32, flags: Int32 = 0, sequence: UInt32 = 0, body: [UInt8]) -> [UInt8] {
        var bytes = littleEndian(UInt32(16 + body.count)) + littleEndian16(UInt16(type)) + littleEndian16(UInt16(flags))
        bytes += littleEndian(sequence) + littleEndian(0) + body
        return bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
    func attribute(_ type: Int32, _ value: [UInt8]) -> [UInt8] {
        let bytes = littleEndian16(UInt16(4 + value.count)) + littleEndian16(UInt16(type)) + value
        return bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
    switch message {
    case .link(let index, let name, let flags, let removed):
        let info = [UInt8(AF_UNSPEC), 0] + littleEndian16(0) + littleEndian(UInt32(bitPattern: index)) + littleEndian(flags) + littleEndian(0)
        return header(Int32(removed ? RTM_DELLINK : RTM_NEWLINK), body: info + attribute(Int32(IFLA_IFNAME), Array(name.utf8) + [0]))
    case .address(let index, let address, let removed):
        let info = [UInt8(AF_INET), 32, 0, 0] + littleEndian(UInt32(bitPattern: index))
        return header(Int32(removed ? RTM_DELADDR : RTM_NEWADDR), body: info + attribute(Int32(IFA_LOCAL), address.octets))
    case .done(let sequence, let interrupted):
        return header(Int32(NLMSG_DONE), flags: interrupted ? Int32(NLM_F_DUMP_INTR) : 0, sequence: sequence, body: littleEndian(0))
    case .error(let code):
        return header(Int32(NLMSG_ERROR), body: littleEndian(UInt32(bitPattern: code)) + [UInt8](repeating: 0, count: 16))
    case .overrun:
        return header(Int32(NLMSG_OVERRUN), body: [])
    }
}

func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }

func littleEndian16(_ value: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: value), UInt8(value >> 8)] }
