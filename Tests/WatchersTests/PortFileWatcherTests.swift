import CLinux
import Domain
import Foundation
import Glibc
import Reactor
import TestSupport
import Testing
@testable import Watchers

typealias Port = Domain.Port

/// Real inotify on a temporary directory, driven through a real loop.
@Suite final class PortFileWatcherTests {
    let log = LogCapture(trace: true)
    let loop: EventLoop
    let root: String
    var seen: [Port?] = []
    /// Watchers live as long as the test.
    var watchers: [PortFileWatcher] = []

    init() throws {
        loop = try EventLoop(logger: log.logger)
        root = makeTemporaryDirectory("watch")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func watcher(_ path: String) throws -> PortFileWatcher {
        let watcher = PortFileWatcher(loop: loop, name: "proton.file", path: path, source: .protonFile) { [unowned self] in
            self.seen.append($0.port)
        }
        try watcher.start()
        watchers.append(watcher)
        return watcher
    }

    /// The way the ProtonVPN app writes: open with O_TRUNC, write, close.
    func truncateAndWrite(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    func settle() throws {
        try runFor(loop, seconds: 0.15)
    }

    /// Runs the loop until `condition` holds (5 s at most) and says whether it did.
    func eventually(_ condition: () -> Bool) throws -> Bool {
        try runUntil(loop, seconds: 5, condition)
    }

    @Test func truncateAndWriteIsReadOnCloseOnly() throws {
        let file = "\(root)/forwarded_port"
        truncateAndWrite(file, "51413")
        let watcher = try watcher(file)
        #expect(seen == [Port(51413)], "an existing file is read when the watch starts")

        // Half-written: truncated and partly written, not yet closed. Nothing may be read.
        let fd = open(file, O_WRONLY | O_TRUNC)
        _ = write(fd, "40", 2)
        try settle()
        #expect(seen == [Port(51413)])
        _ = write(fd, "001", 3)
        close(fd)
        #expect(try eventually { seen == [Port(51413), Port(40001)] })

        truncateAndWrite(file, "")
        #expect(try eventually { seen.last == .some(nil) }, "an empty file means no port")
        truncateAndWrite(file, "40002\n")
        #expect(try eventually { seen.last == Port(40002) })
        #expect(watcher.watchedDirectory == root)
    }

    @Test func renameInDeleteAndRecreate() throws {
        let file = "\(root)/forwarded_port"
        _ = try watcher(file)
        #expect(seen == [nil])
        truncateAndWrite("\(root)/.tmp", "40010")
        rename("\(root)/.tmp", file)
        #expect(try eventually { seen.last == Port(40010) })
        unlink(file)
        #expect(try eventually { seen.last == .some(nil) })
        truncateAndWrite(file, "40011")
        #expect(try eventually { seen.last == Port(40011) })
        rename(file, "\(root)/elsewhere")
        #expect(try eventually { seen.last == .some(nil) }, "moved away is gone too")
    }

    @Test func garbageIsAWarningAndTheLastGoodPortStands() throws {
        let file = "\(root)/forwarded_port"
        truncateAndWrite(file, "51413")
        _ = try watcher(file)
        for (index, garbage) in ["abc", "0", "99999", "12 34", "\u{1}\u{2}"].enumerated() {
            truncateAndWrite(file, garbage)
            #expect(try eventually { log.count("; keeping port 51413") == index + 1 })
        }
        #expect(seen == [Port(51413)])
        #expect(log.count("not a port number: \"abc\"; keeping port 51413") == 1)
        #expect(log.count("port 0 is out of range (1-65535); keeping port 51413") == 1)
        #expect(log.count("not a port number: \"\\x01\\x02\"") == 1)
    }

    @Test func aDirectoryThatDoesNotExistYetIsWaitedFor() throws {
        let file = "\(root)/Proton/VPN/forwarded_port"
        let watcher = try watcher(file)
        #expect(watcher.watchedDirectory == root)
        #expect(log.count("does not exist yet; watching \(root) until it does") == 1)
        mkdir("\(root)/Proton", 0o700)
        #expect(try eventually { watcher.watchedDirectory == "\(root)/Proton" })
        mkdir("\(root)/Proton/VPN", 0o700)
        #expect(try eventually { watcher.watchedDirectory == "\(root)/Proton/VPN" })
        truncateAndWrite(file, "45000")
        #expect(try eventually { seen.last == Port(45000) })

        // The whole tree goes away (logout) and comes back at once, file included.
        try FileManager.default.removeItem(atPath: "\(root)/Proton")
        #expect(try eventually { watcher.watchedDirectory == root })
        try FileManager.default.createDirectory(atPath: "\(root)/Proton/VPN", withIntermediateDirectories: true)
        truncateAndWrite(file, "45001")
        #expect(try eventually { seen.last == Port(45001) }, "a file that was there before the watch is found by the re-scan")
    }

    @Test func aLostEventQueueIsReadAgain() throws {
        let file = "\(root)/forwarded_port"
        truncateAndWrite(file, "51413")
        let watcher = try watcher(file)
        // Without the loop running, more events than the queue holds: it overflows.
        let limit = Int(String(decoding: (try? FileContents.read(atPath: "/proc/sys/fs/inotify/max_queued_events")) ?? [], as: UTF8.self)
            .trimmingSpaces) ?? 16384
        // Identical consecutive events are merged by the kernel: alternate between two names.
        for index in 0...(limit + 100) {
            let fd = open("\(root)/noise\(index % 2)", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            close(fd)
            if index == 0 { truncateAndWrite(file, "40404") }
        }
        truncateAndWrite(file, "40405")
        #expect(try eventually { seen.last == Port(40405) })
        #expect(log.count("inotify queue overflowed; events were lost, reading") == 1)
        #expect(watcher.watchedDirectory == root)
    }

    @Test func gluetunFilesListSeveralPortsAndAnIndexPicksOne() throws {
        let file = "\(root)/forwarded_port"
        truncateAndWrite(file, "40000\n40001")
        var ports: [Port?] = []
        let watcher = PortFileWatcher(loop: loop, name: "gluetun.file", path: file, source: .gluetunFile, portIndex: 1) { ports.append($0.port) }
        try watcher.start()
        #expect(ports == [Port(40001)])
    }
}

@Suite struct PortFileWatcherReactionTests {
    let wd: Int32 = 3

    func event(_ mask: Int32, _ name: String = "forwarded_port", watch: Int32? = nil) -> InotifyEvent {
        InotifyEvent(watch: watch ?? wd, mask: UInt32(mask), name: name)
    }

    func reaction(_ events: [InotifyEvent], next: String? = nil) -> PortFileWatcher.Reaction {
        PortFileWatcher.reaction(to: events, watching: wd, fileName: "forwarded_port", nextDirectory: next)
    }

    @Test func modifyAloneIsNeverRead() {
        #expect(reaction([event(IN_MODIFY), event(IN_MODIFY)]) == .nothing)
        #expect(reaction([event(IN_MODIFY), event(IN_MODIFY), event(IN_CLOSE_WRITE)]) == .read)
    }

    @Test func theLastEventAboutTheFileDecides() {
        #expect(reaction([event(IN_CLOSE_WRITE), event(IN_DELETE)]) == .gone)
        #expect(reaction([event(IN_DELETE), event(IN_CREATE), event(IN_CLOSE_WRITE)]) == .read)
        #expect(reaction([event(IN_MOVED_FROM, ".tmp"), event(IN_MOVED_TO)]) == .read)
        #expect(reaction([event(IN_CLOSE_WRITE, "other")]) == .nothing)
    }

    @Test func theDirectoryGoingAwayOrAnOverflowRearms() {
        #expect(reaction([event(IN_DELETE_SELF, "")]) == .rearm)
        #expect(reaction([event(IN_CLOSE_WRITE), event(IN_Q_OVERFLOW, "", watch: -1)]) == .rearm)
        #expect(reaction([event(IN_IGNORED, "", watch: 99)]) == .nothing, "an old watch's IN_IGNORED is not ours")
    }

    @Test func anAncestorWatchWaitsForTheNextDirectory() {
        #expect(reaction([event(IN_CREATE | IN_ISDIR, "Proton")], next: "Proton") == .rearm)
        #expect(reaction([event(IN_CREATE, "Proton")], next: "Proton") == .nothing, "a file of that name is no directory")
        #expect(reaction([event(IN_CREATE | IN_ISDIR, "Other")], next: "Proton") == .nothing)
    }

    @Test func recordsAreDecodedAndATruncatedOneIsDropped() {
        var bytes: [UInt8] = []
        func append(_ wd: Int32, _ mask: UInt32, _ name: String) {
            let padded = name.isEmpty ? [] : Array(name.utf8) + [UInt8](repeating: 0, count: 16 - name.utf8.count)
            for value in [UInt32(bitPattern: wd), mask, 0, UInt32(padded.count)] {
                bytes += withUnsafeBytes(of: value.littleEndian) { Array($0) }
            }
            bytes += padded
        }
        append(1, UInt32(IN_CLOSE_WRITE), "forwarded_port")
        append(-1, UInt32(IN_Q_OVERFLOW), "")
        append(2, UInt32(IN_CREATE), "x")
        let events = InotifyEvent.parse(bytes + [1, 2, 3])
        #expect(events == [
            InotifyEvent(watch: 1, mask: UInt32(IN_CLOSE_WRITE), name: "forwarded_port"),
            InotifyEvent(watch: -1, mask: UInt32(IN_Q_OVERFLOW)),
            InotifyEvent(watch: 2, mask: UInt32(IN_CREATE), name: "x"),
        ])
        #expect(InotifyEvent.parse(Array(bytes.prefix(20))).count == 0)
    }
}
