import CLinux
import Domain
import Glibc
import Reactor

/// Watches a forwarded-port file (the ProtonVPN app's, or Gluetun's) through inotify on its
/// directory, never on the file itself: the file is truncated and rewritten, replaced by a
/// rename, deleted and recreated, and its directory may not exist yet. Until it does, the
/// nearest existing ancestor is watched and the watch walks down as directories appear.
///
/// The file is read on close-after-write and on rename-in, never on a bare modify (it may be
/// half-written then); one read serves a whole batch of events. Deletion means "no port";
/// garbage is reported as a warning naming the content and the last good value stands.
public final class PortFileWatcher: PortSource {
    /// What a batch of events asks for.
    public enum Reaction: Equatable, Sendable {
        case nothing
        case read
        case gone
        /// The watched directory went away, a missing directory appeared, or events were lost:
        /// watch again from the top, then read.
        case rearm
    }

    public let name: String
    public let path: String
    public let source: PortObservation.Source
    /// Which of several ports the file lists (Gluetun can forward several): 0 = the first.
    public let portIndex: Int
    /// What to do while the file names no port ("connect with port forwarding on").
    public let advice: String
    public var onObservation: ((PortObservation) -> Void)?
    public var onStatusChange: (() -> Void)?
    public var identity: PortObservation.Source { source }

    private let loop: EventLoop
    private var state = SourceStatus.State.starting
    private let directory: String
    private let fileName: String
    private var inotify: Registration?
    private var watch: (descriptor: Int32, directory: String)?
    private var lastReported: Port??
    /// Every port of the last report (a Gluetun file can list several).
    private var lastPorts: [Port] = []
    private var retryTimer: Timer!
    /// A read that failed for want of a resource (no free fd, no memory, a permission) is tried
    /// again, 1 s after the first failure and doubling to 30 s, until it works or an event
    /// reads the file anyway: no change is lost to a moment's shortage.
    private var readRetryTimer: Timer!
    private var failedReads = 0

    public init(loop: EventLoop, name: String, path: String, source: PortObservation.Source, portIndex: Int = 0,
                advice: String = PortFileSettings.defaultAdvice, handler: ((PortObservation) -> Void)? = nil) {
        self.loop = loop
        self.name = name
        self.path = path
        self.source = source
        self.portIndex = portIndex
        self.advice = advice
        onObservation = handler
        let slash = path.lastIndex(of: "/") ?? path.startIndex
        directory = slash == path.startIndex ? "/" : String(path[..<slash])
        fileName = String(path[path.index(after: slash)...])
        retryTimer = loop.makeTimer(name: name) { [unowned self] in self.retry() }
        readRetryTimer = loop.makeTimer(name: "\(name).read") { [unowned self] in self.readFile() }
    }

    deinit { stop() }

    public func start() throws {
        let fd = FileDescriptor(rawValue: try systemCall("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) })
        inotify = try Registration(loop: loop, owning: fd, interest: .readable, name: name,
                                   onFailure: .disable { [unowned self] _ in self.inotifyFailed() }) { [unowned self] _ in
            try self.drain()
        }
        arm()
    }

    public func stop(final: Bool) {
        stop()
    }

    public func clientsVerified(_ port: Port) {}

    public var status: SourceStatus {
        var status = SourceStatus()
        status.state = state
        status.detail = path
        return status
    }

    public func stop() {
        retryTimer.cancel()
        readRetryTimer.cancel()
        inotify?.cancel()
        inotify = nil
        watch = nil
    }

    /// Reading inotify failed and the loop disabled it: start over with a new one in 30 s.
    private func inotifyFailed() {
        stop()
        loop.logger.warning(name, "watching \(directory) again in 30 s")
        retryTimer.schedule(after: .seconds(30))
    }

    private func retry() {
        guard inotify == nil else { return arm() }
        do {
            try start()
        } catch {
            loop.logger.error(name, "\(error); trying again in 30 s")
            retryTimer.schedule(after: .seconds(30))
        }
    }

    /// The directory watched right now: the file's own, or the nearest existing ancestor.
    public var watchedDirectory: String? { watch?.directory }

    // MARK: Watching

    private static let fileEvents = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE)
        | UInt32(IN_DELETE_SELF | IN_MOVE_SELF) | UInt32(IN_ONLYDIR)
    private static let ancestorEvents = UInt32(IN_CREATE | IN_MOVED_TO) | UInt32(IN_DELETE_SELF | IN_MOVE_SELF) | UInt32(IN_ONLYDIR)

    /// Watches the deepest existing directory on the way to the file, then reads the file (it
    /// may exist already: entries made before the watch produce no event).
    private func arm() {
        guard let inotify = inotify?.fd else { return }
        if let old = watch {
            // The watch may be gone with its directory; EINVAL then says so and is fine.
            inotify_rm_watch(inotify.rawValue, old.descriptor)
            watch = nil
        }
        for _ in 0..<64 {
            var candidate = directory
            while !Self.isDirectory(candidate) { candidate = Self.parent(of: candidate) }
            let atTarget = candidate == directory
            let descriptor: Int32
            do {
                descriptor = try systemCall("inotify_add_watch \(candidate)") {
                    inotify_add_watch(inotify.rawValue, candidate, atTarget ? Self.fileEvents : Self.ancestorEvents)
                }
            } catch {
                if error.errno == .noSuchFileOrDirectory || error.errno == .notDirectory { continue }  // it vanished between stat and watch
                loop.logger.error(name, "\(error); trying again in 30 s")
                retryTimer.schedule(after: .seconds(30))
                return
            }
            watch = (descriptor, candidate)
            if atTarget {
                loop.logger.debug(name, "watching \(directory) for \(fileName)")
                readFile()
                return
            }
            // The next directory may have appeared between the stat and the watch.
            if Self.isDirectory(Self.child(of: candidate, toward: directory)) {
                inotify_rm_watch(inotify.rawValue, descriptor)
                continue
            }
            loop.logger.info(name, "\(directory) does not exist yet; watching \(candidate) until it does")
            set(.unavailable(SourceProblem("\(path) does not exist", fix: advice))) { report(nil, why: "no file") }
            return
        }
        loop.logger.error(name, "\(directory) keeps changing; trying again in 30 s")
        retryTimer.schedule(after: .seconds(30))
    }

    private func drain() throws {
        guard let inotify = inotify?.fd else { return }
        var events: [InotifyEvent] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while case .done(let count) = try buffer.withUnsafeMutableBytes({ try inotify.read(into: $0) }), count > 0 {
            events += InotifyEvent.parse(Array(buffer[0..<count]))
        }
        guard !events.isEmpty, let watch else { return }
        for event in events { loop.logger.trace(name, "inotify \(event.description)") }
        let next = watch.directory == directory ? nil : Self.child(of: watch.directory, toward: directory)
        switch Self.reaction(to: events, watching: watch.descriptor, fileName: fileName, nextDirectory: next.map(Self.lastComponent)) {
        case .nothing: break
        case .read: readFile()
        case .gone:
            set(.unavailable(SourceProblem("\(path) does not exist", fix: advice))) { report(nil, why: "\(fileName) was removed") }
        case .rearm:
            if events.contains(where: { $0.has(UInt32(IN_Q_OVERFLOW)) }) {
                loop.logger.warning(name, "inotify queue overflowed; events were lost, reading \(path) again")
            }
            arm()
        }
    }

    /// What a batch of events calls for; the last event about the file decides between read
    /// and gone. `nextDirectory`: when an ancestor is watched, the name that leads down.
    public static func reaction(to events: [InotifyEvent], watching descriptor: Int32, fileName: String,
                                nextDirectory: String?) -> Reaction {
        var reaction = Reaction.nothing
        for event in events {
            if event.has(UInt32(IN_Q_OVERFLOW)) { return .rearm }
            guard event.watch == descriptor else { continue }  // IN_IGNORED of an old watch
            if event.has(UInt32(IN_DELETE_SELF | IN_MOVE_SELF)) || event.has(UInt32(IN_IGNORED)) { return .rearm }
            if let nextDirectory {
                if event.name == nextDirectory && event.has(UInt32(IN_ISDIR)) && event.has(UInt32(IN_CREATE | IN_MOVED_TO)) {
                    return .rearm
                }
                continue
            }
            guard event.name == fileName else { continue }
            if event.has(UInt32(IN_CLOSE_WRITE | IN_MOVED_TO)) {
                reaction = .read
            } else if event.has(UInt32(IN_DELETE | IN_MOVED_FROM)) {
                reaction = .gone
            }
        }
        return reaction
    }

    // MARK: Reading

    private func readFile() {
        readRetryTimer.cancel()
        let reading = PortFile.read(atPath: path, portIndex: portIndex)
        if case .unreadable(let error) = reading {
            let delay = Duration.seconds(min(1 << min(failedReads, 5), 30))
            // Said once per run of failures; each retry is in the trace.
            let message = "cannot read \(path): \(error); keeping port \(lastKnownText), reading again in \(delay.limitText)"
            if failedReads == 0 { loop.logger.warning(name, message) } else { loop.logger.trace(name, message) }
            set(Self.state(of: reading, path: path, portIndex: portIndex, advice: advice)) { false }
            failedReads += 1
            readRetryTimer.schedule(after: delay)
            return
        }
        failedReads = 0
        loop.logger.trace(name, "read \(path): \(reading)")
        set(Self.state(of: reading, path: path, portIndex: portIndex, advice: advice)) {
            switch reading {
            case .missing:
                return report(nil, why: "no file")
            case .notARegularFile(let error):
                loop.logger.warning(name, "\(error); keeping port \(lastKnownText)")
            case .unreadable:
                break
            case .empty:
                return report(nil, why: "\(fileName) is empty")
            case .garbage(let error):
                loop.logger.warning(name, "\(path): \(error); keeping port \(lastKnownText)")
            case .noPortAtIndex(let count):
                loop.logger.warning(name, "\(path) lists \(count) port(s); port_index \(portIndex) is not among them")
                return report(nil, why: "no port at index \(portIndex)")
            case .port(let port, let all):
                return report(port, ports: all, why: "")
            }
            return false
        }
    }

    /// Where a source that last read `reading` stands. A file that is there and names no port
    /// answered "none": failing, not waiting.
    static func state(of reading: PortFile.Reading, path: String, portIndex: Int, advice: String) -> SourceStatus.State {
        switch reading {
        case .missing: .unavailable(SourceProblem("\(path) does not exist", fix: advice))
        case .notARegularFile(let error): .failing(SourceProblem(error, fix: "point the setting at the file the VPN writes"))
        case .unreadable(let error): .failing(SourceProblem("cannot read \(path): \(error)", fix: "check what writes this file, and its permissions"))
        case .empty: .failing(SourceProblem("no forwarded port right now: \(path) is empty", fix: advice))
        case .garbage(let error): .failing(SourceProblem("\(path): \(error)", fix: "check what writes this file"))
        case .noPortAtIndex(let count):
            .misconfigured(SourceProblem("\(path) lists \(count) port(s); port_index \(portIndex) is not among them", fix: "set port_index below \(count)"))
        case .port(let port, _): .forwarding(port)
        }
    }

    /// Takes `next` as the state, then runs `thenReport`; a changed state that its report
    /// (true when it made an observation) did not carry is said by `onStatusChange`. The
    /// observation comes first: whoever hears of the state then knows the port too.
    private func set(_ next: SourceStatus.State, thenReport: () -> Bool) {
        let changed = next != state
        state = next
        if !thenReport() && changed { onStatusChange?() }
    }

    private var lastKnownText: String {
        switch lastReported {
        case .some(.some(let port)): port.description
        default: "(none)"
        }
    }

    /// Makes an observation unless it would repeat the last; true when it did.
    @discardableResult
    private func report(_ port: Port?, ports: [Port] = [], why: String) -> Bool {
        if let lastReported, lastReported == port, ports == lastPorts { return false }
        lastReported = .some(port)
        lastPorts = ports
        if let port {
            loop.logger.debug(name, "forwarded port \(port) in \(path)")
        } else {
            loop.logger.info(name, "no forwarded port: \(why)")
        }
        onObservation?(PortObservation(source: source, port: port, time: loop.now, ports: ports.isEmpty ? nil : ports))
        return true
    }

    // MARK: Paths

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The directory one level below `ancestor` on the way to `target`.
    static func child(of ancestor: String, toward target: String) -> String {
        let prefix = ancestor == "/" ? "/" : ancestor + "/"
        let rest = target.dropFirst(prefix.count)
        return prefix + (rest.split(separator: "/").first.map(String.init) ?? "")
    }

    static func lastComponent(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
