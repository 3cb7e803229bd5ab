import Domain
import Glibc
import HTTP
import Reactor
import Watchers

/// What the daemon (and `once`) remembers across restarts and what `portsync status` shows: the
/// last port applied, from which source, when, and the health. Stored as JSON, written
/// atomically (temp file, fsync, rename), only when something in it changes.
struct DaemonState: Equatable {
    var port: Port? = nil
    var source: String? = nil
    /// When the clients were last verified on `port` (Unix seconds).
    var appliedAt: Int64? = nil
    var health: Health
    /// Each client's version by its label (`qbittorrent` → "v4.5.2").
    var clientVersions: [String: String] = [:]
    /// Each client's health by its label, in words ("ok", or what is wrong).
    var clientHealth: [String: String] = [:]
    /// Each source by its name (`natpmp`): how it was reached, and what it keeps for the next
    /// run (NAT-PMP's internal port, so that a restart keeps the same mapping).
    var sources: [String: SourceRecord] = [:]
    /// The command hook's last run, when there is a hook.
    var hook: HookRecord? = nil
    /// Whether peers can connect, with its evidence.
    var connectable: ConnectabilityRecord? = nil
    var pid: Int32
    var updatedAt: Int64

    var json: String { jsonValue.serialized + "\n" }

    /// What this state leaves for `source` at its next start: the port last applied and the
    /// source's own keeps.
    func memory(for source: PortObservation.Source) -> SourceMemory {
        SourceMemory(port: port, kept: sources[source.rawValue]?.kept ?? [:])
    }

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "health": .string(health.description), "pid": .number(Double(pid)), "updated_at": .number(Double(updatedAt)),
        ]
        if let port { members["port"] = .number(Double(port.value)) }
        if let source { members["source"] = .string(source) }
        if let appliedAt { members["applied_at"] = .number(Double(appliedAt)) }
        var clients: [String: JSONValue] = [:]
        for label in Set(clientVersions.keys).union(clientHealth.keys) {
            var client: [String: JSONValue] = [:]
            if let version = clientVersions[label] { client["version"] = .string(version) }
            if let health = clientHealth[label] { client["health"] = .string(health) }
            clients[label] = .object(client)
        }
        if !clients.isEmpty { members["clients"] = .object(clients) }
        if !sources.isEmpty { members["sources"] = .object(sources.mapValues(\.jsonValue)) }
        if let hook { members["hook"] = hook.jsonValue }
        if let connectable { members["connectable"] = connectable.jsonValue }
        return .object(members)
    }

    struct ParseError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static func parse(_ bytes: [UInt8]) throws -> DaemonState {
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw ParseError(message: "not JSON (\(error))")
        }
        guard case .object = value, let health = value["health"]?.string else {
            throw ParseError(message: "not a portsync state (no \"health\")")
        }
        var port: Port?
        if let number = try integer("port", in: value, as: UInt16.self) {
            guard let valid = Port(number) else { throw ParseError(message: "port \(number) is out of range") }
            port = valid
        }
        var versions: [String: String] = [:]
        var clientHealth: [String: String] = [:]
        if case .object(let clients)? = value["clients"] {
            for (label, client) in clients {
                versions[label] = client["version"]?.string
                clientHealth[label] = client["health"]?.string
            }
        } else if let version = value["qbittorrent_version"]?.string {
            versions["qbittorrent"] = version  // written by portsync before several clients
        }
        var sources: [String: SourceRecord] = [:]
        if case .object(let records)? = value["sources"] {
            sources = records.compactMapValues(SourceRecord.init)
        } else {
            // Written by portsync before sources were alike: NAT-PMP's own keys.
            var natpmp = SourceRecord(title: "NAT-PMP")
            if let port = try integer("natpmp_internal_port", in: value, as: UInt16.self) { natpmp.kept["internal_port"] = String(port) }
            if let gateway = value["natpmp_gateway"]?.string {
                natpmp.detail = "gateway \(gateway) (\(value["natpmp_gateway_rule"]?.string ?? "rule unknown"))"
            }
            if natpmp.detail != nil || !natpmp.kept.isEmpty { sources["natpmp"] = natpmp }
        }
        return DaemonState(port: port, source: value["source"]?.string, appliedAt: try integer("applied_at", in: value, as: Int64.self),
                           health: Health(text: health), clientVersions: versions, clientHealth: clientHealth,
                           sources: sources,
                           hook: value["hook"].flatMap(HookRecord.init),
                           connectable: value["connectable"].flatMap(ConnectabilityRecord.init),
                           pid: try integer("pid", in: value, as: Int32.self) ?? 0,
                           updatedAt: try integer("updated_at", in: value, as: Int64.self) ?? 0)
    }

    /// The member `key` as a `T`, nil when absent; a number that is not a whole `T` (a pid of
    /// 4294967296, a port of 70000, a fraction) is an error naming it, never a trap.
    private static func integer<T: FixedWidthInteger>(_ key: String, in value: JSONValue, as type: T.Type) throws -> T? {
        guard let member = value[key], member != .null else { return nil }
        guard let number = member.integer, let exact = T(exactly: number) else {
            throw ParseError(message: "\"\(key)\" is not a whole number in range: \(member.excerpt)")
        }
        return exact
    }
}

/// What the state file keeps of one source: where it stands, as values (`status --json`), and
/// what its next run starts from.
struct SourceRecord: Equatable {
    /// "NAT-PMP", for `status`.
    var title: String? = nil
    /// How it was reached: "gateway 10.2.0.1 (the gateway of a route through the tunnel)".
    var detail: String? = nil
    /// `SourceStatus.State.name`: "forwarding", "failing", …
    var state: String? = nil
    /// The port it names, while it forwards one.
    var port: Port? = nil
    /// Why it has no port, and what to do about it.
    var problem: SourceProblem? = nil
    /// The address peers reach the port on, as the gateway last said it on this tunnel.
    var publicAddress: String? = nil
    /// `SourceStatus.kept`, handed back to it at the next start.
    var kept: [String: String] = [:]

    var jsonValue: JSONValue {
        var members: [String: JSONValue] = [:]
        if let title { members["title"] = .string(title) }
        if let detail { members["detail"] = .string(detail) }
        if let state { members["state"] = .string(state) }
        if let port { members["port"] = .number(Double(port.value)) }
        if let problem {
            members["problem"] = .string(problem.message)
            members["fix"] = .string(problem.fix)
        }
        if let publicAddress { members["public_address"] = .string(publicAddress) }
        if !kept.isEmpty { members["kept"] = .object(kept.mapValues { .string($0) }) }
        return .object(members)
    }

    /// nil for anything but an object; members of the wrong type are left out.
    init?(_ value: JSONValue) {
        guard case .object = value else { return nil }
        title = value["title"]?.string
        detail = value["detail"]?.string
        state = value["state"]?.string
        port = value["port"]?.integer.flatMap { Port($0) }
        if let message = value["problem"]?.string { problem = SourceProblem(message, fix: value["fix"]?.string ?? "") }
        publicAddress = value["public_address"]?.string
        if case .object(let kept)? = value["kept"] { self.kept = kept.compactMapValues(\.string) }
    }

    init(title: String? = nil, detail: String? = nil, kept: [String: String] = [:]) {
        self.title = title
        self.detail = detail
        self.kept = kept
    }

    /// What `source` says of itself now, over what was recorded before: its state, port,
    /// problem and public address are now's; how it was reached and what it keeps stand until
    /// it says otherwise.
    func updated(_ source: PortObservation.Source, _ status: SourceStatus) -> SourceRecord {
        var record = self
        record.title = source.title
        record.detail = status.detail ?? detail
        record.state = status.state.name
        if case .forwarding(let port) = status.state { record.port = port } else { record.port = nil }
        record.problem = status.problem
        record.publicAddress = status.publicAddress.map { "\($0)" }
        record.kept.merge(status.kept) { $1 }
        return record
    }
}

/// Reads and writes the state file.
struct StateStore {
    let path: String

    func load() throws -> DaemonState? {
        let bytes: [UInt8]
        do {
            bytes = try FileContents.read(atPath: path, maxBytes: 64 * 1024)
        } catch let error as SystemCallError where error.errno == .noSuchFileOrDirectory {
            return nil
        }
        return try DaemonState.parse(bytes)
    }

    func save(_ state: DaemonState) throws {
        try FileContents.writeAtomically(Array(state.json.utf8), toPath: path, mode: 0o600)
    }

    /// Why the state directory is unsafe, when others may write to it without the sticky bit:
    /// they could put a file of theirs in the state file's place. (The temporary file is safe
    /// either way: it is created exclusively, never through a link.)
    func directoryWarning() -> String? {
        let directory = FileContents.directory(of: path)
        var info = stat()
        guard stat(directory, &info) == 0, info.st_mode & 0o022 != 0, info.st_mode & S_ISVTX == 0 else { return nil }
        let who = info.st_mode & 0o002 != 0 ? "every user" : "its group"
        return "state directory \(directory) can be written by \(who) (mode \(String(info.st_mode & 0o7777, radix: 8))): another user could replace the state file; chmod 700 it"
    }
}

enum WallClock {
    static var now: Int64 { Int64(time(nil)) }

    /// "2026-11-22 16:10:03" in local time.
    static func text(_ seconds: Int64) -> String {
        var value = time_t(seconds)
        var parts = tm()
        localtime_r(&value, &parts)
        func two(_ number: Int32) -> String { number < 10 ? "0\(number)" : "\(number)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }

    /// "3 min ago", "2 h ago", "just now".
    static func age(_ seconds: Int64, now: Int64 = now) -> String {
        let elapsed = max(0, now - seconds)
        switch elapsed {
        case ..<10: return "just now"
        case ..<120: return "\(elapsed) s ago"
        case ..<7200: return "\(elapsed / 60) min ago"
        case ..<172_800: return "\(elapsed / 3600) h ago"
        default: return "\(elapsed / 86_400) days ago"
        }
    }
}
