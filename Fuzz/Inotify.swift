import CLinux
import Glibc
@testable import Watchers

/// InotifyEvent.parse (the records of one read from an inotify fd) and what the port-file
/// watcher makes of them (PortFileWatcher.reaction).
///
/// Properties: the records, written out again, parse back equal, and no name holds a NUL; a
/// lost queue (IN_Q_OVERFLOW) always means watching again; events of other watches change
/// nothing; the file is read only after a close-after-write or a rename onto it, and given up
/// only after a delete or a rename away.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInotify(_ data: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let events = InotifyEvent.parse(FuzzInput(data, count).bytes)
    require(events.allSatisfy { !$0.name.contains("\0") }, "a name holds a NUL")
    let written = events.flatMap(record)
    require(InotifyEvent.parse(written) == events, "the records, written out again, parse differently")

    let descriptor = events.first?.watch ?? 1
    let fileName = "forwarded_port"
    for next in [nil, "VPN"] as [String?] {
        let reaction = PortFileWatcher.reaction(to: events, watching: descriptor, fileName: fileName, nextDirectory: next)
        let overflow = events.contains { $0.has(UInt32(IN_Q_OVERFLOW)) }
        require(!overflow || reaction == .rearm, "a lost queue gave \(reaction)")
        let own = events.filter { $0.watch == descriptor || $0.has(UInt32(IN_Q_OVERFLOW)) }
        require(PortFileWatcher.reaction(to: own, watching: descriptor, fileName: fileName, nextDirectory: next) == reaction,
                "events of other watches changed the reaction")
        let aboutFile = own.filter { $0.name == fileName && next == nil }
        switch reaction {
        case .read:
            require(aboutFile.contains { $0.has(UInt32(IN_CLOSE_WRITE | IN_MOVED_TO)) }, "read with no write or rename onto the file")
        case .gone:
            require(aboutFile.contains { $0.has(UInt32(IN_DELETE | IN_MOVED_FROM)) }, "gone with no delete or rename away")
        case .nothing, .rearm:
            break
        }
    }
    return 0
}

/// `struct inotify_event` for `event`, its name NUL-padded to a multiple of 4 as the kernel does.
func record(_ event: InotifyEvent) -> [UInt8] {
    var name = Array(event.name.utf8)
    if !name.isEmpty { name += [UInt8](repeating: 0, count: 4 - name.count % 4) }
    return [UInt32(bitPattern: event.watch), event.mask, event.cookie, UInt32(name.count)].flatMap(littleEndian) + name
}

func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
