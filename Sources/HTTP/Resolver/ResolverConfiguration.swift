import Reactor

/// Where names are looked up: a hosts file first, then the name servers of a resolv.conf (or
/// those given instead), with its timeout and attempts. Tests point both paths at their own files.
public struct ResolverConfiguration: Equatable, Sendable {
    public var hostsPath: String
    public var resolvConfPath: String
    /// How long one name server has to answer before the next is asked; nil: resolv.conf's
    /// `options timeout:` (5 s by default).
    public var timeout: Duration?
    /// The name servers asked instead of resolv.conf's (its options still count); empty:
    /// resolv.conf's.
    public var nameServers: [SocketAddress]

    public init(hostsPath: String = "/etc/hosts", resolvConfPath: String = "/etc/resolv.conf", timeout: Duration? = nil,
                nameServers: [SocketAddress] = []) {
        self.hostsPath = hostsPath
        self.resolvConfPath = resolvConfPath
        self.timeout = timeout
        self.nameServers = nameServers
    }

    public static let system = ResolverConfiguration()

    /// The addresses of `name` in a hosts file's text, in file order; empty if it is not there.
    static func addresses(of name: String, inHosts text: String, port: UInt16) -> [SocketAddress] {
        let wanted = name.lowercased()
        var found: [SocketAddress] = []
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.prefix { $0 != "#" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields.dropFirst().contains(where: { $0.lowercased() == wanted }),
                  let address = SocketAddress(numericHost: String(fields[0]), port: port), !found.contains(address) else { continue }
            found.append(address)
        }
        return found
    }

    /// What resolv.conf says: its name servers (at most 3, as glibc; 127.0.0.1 when none),
    /// `options timeout:`, `attempts:` and `ndots:`, and the search domains (`search` or
    /// `domain`, the last line wins).
    struct NameServers: Equatable, Sendable {
        var servers: [SocketAddress]
        var timeout: Duration
        var attempts: Int
        var search: [String] = []
        var ndots = 1

        /// The names to ask for `name`, as glibc orders them: with fewer dots than `ndots`,
        /// the search domains first; a trailing dot asks for the name alone.
        func candidates(for name: String) -> [String] {
            if name.hasSuffix(".") { return [String(name.dropLast())] }
            let searched = search.map { "\(name).\($0)" }
            return name.filter { $0 == "." }.count >= ndots ? [name] + searched : searched + [name]
        }
    }

    static func nameServers(inResolvConf text: String) -> NameServers {
        var result = NameServers(servers: [], timeout: .seconds(5), attempts: 2)
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.prefix { $0 != "#" && $0 != ";" }.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = fields.first else { continue }
            if keyword == "nameserver", fields.count >= 2, result.servers.count < 3,
               let server = SocketAddress(numericHost: String(fields[1]), port: 53) {
                result.servers.append(server)
            } else if keyword == "search" || keyword == "domain" {
                result.search = fields.dropFirst().map { String($0).hasSuffix(".") ? String($0.dropLast()) : String($0) }
            } else if keyword == "options" {
                for option in fields.dropFirst() {
                    if option.hasPrefix("timeout:"), let seconds = Int(option.dropFirst(8)), seconds > 0 {
                        result.timeout = .seconds(min(seconds, 30))
                    } else if option.hasPrefix("attempts:"), let count = Int(option.dropFirst(9)), count > 0 {
                        result.attempts = min(count, 5)
                    } else if option.hasPrefix("ndots:"), let count = Int(option.dropFirst(6)), count >= 0 {
                        result.ndots = min(count, 15)
                    }
                }
            }
        }
        if result.servers.isEmpty { result.servers = [.v4(IPv4Address(127, 0, 0, 1), port: 53)] }
        return result
    }
}
