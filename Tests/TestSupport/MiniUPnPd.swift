import Foundation
import Glibc

/// Debian's real miniupnpd (2.3.1, nftables backend) in a lab's gateway namespace (or a LAN's
/// router), locked down: no UPnP IGD (no HTTP, no SSDP), PCP and NAT-PMP only on the lab's
/// 10.2.0.1 (and, with `ipv6`, gw0's IPv6 addresses), and mappings allowed only for 10.2.0.2's
/// ports 1024-65535. Its external interface is a veth pair
/// of the gateway namespace's own (`ext0`), so nothing it does reaches past the namespace; the
/// nftables table it fills (`inet filter`, the chains of Debian's nft_init.sh) is made in that
/// namespace first: without it every mapping fails with NO_RESOURCES.
public final class MiniUPnPd {
    public static let executable = "/usr/sbin/miniupnpd"
    public static let nft = "/usr/sbin/nft"
    /// Root for the namespaces, and miniupnpd and nft installed (scripts/test installs them).
    public static var available: Bool {
        NetworkLab.available && FileManager.default.isExecutableFile(atPath: executable) && FileManager.default.isExecutableFile(atPath: nft)
    }

    /// The external address it reports, on `ext0` in the gateway namespace only (which has no
    /// route beyond itself; nothing is ever sent to it). miniupnpd 2.3.1 refuses to map behind
    /// a private or documentation address (198.51.100.0/24 included), hence a public one.
    public static let externalAddress = "5.5.5.1"

    public let lab: NetworkLab
    /// Where it runs: the lab's gateway, or a router of the test's (its LAN).
    public let namespace: String
    public let logPath: String
    private var process: ChildProcess?
    private var starts = 0

    /// `namespace`, `listening` (an address with its prefix, or an interface's name) and `client`
    /// (the one address it maps for): the lab's gateway, 10.2.0.1/24 and 10.2.0.2 unless given.
    /// `ipv6`: PCP over IPv6 too, on the lab's gw0 (`NetworkLab.addIPv6`), its pinholes for the
    /// clients' IPv6 address opened in the `miniupnpd` chain; ext0 gets 2001:db8:5::1.
    public init(lab: NetworkLab, minimumLifetime: Int = 120, namespace: String? = nil, listening: String? = nil,
                client: String? = nil, ipv6: Bool = false) throws {
        self.lab = lab
        self.namespace = namespace ?? lab.gateway
        logPath = "\(lab.directory)/miniupnpd-\(self.namespace).log"
        try lab.ip("-n", self.namespace, "link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
        try lab.ip("-n", self.namespace, "addr", "add", "\(Self.externalAddress)/24", "dev", "ext0")
        if ipv6 { try lab.ip("-n", self.namespace, "addr", "add", "2001:db8:5::1/64", "dev", "ext0", "nodad") }
        try lab.ip("-n", self.namespace, "link", "set", "ext0", "up")
        try lab.ip("-n", self.namespace, "link", "set", "ext1", "up")
        let rules = """
            table inet filter {
                chain forward { type filter hook forward priority 0; policy drop; jump miniupnpd; }
                chain miniupnpd { }
                chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
                chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
                chain prerouting_miniupnpd { }
                chain postrouting_miniupnpd { }
            }

            """
        try rules.write(toFile: "\(lab.directory)/miniupnpd-\(self.namespace).nft", atomically: true, encoding: .utf8)
        _ = try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "exec", self.namespace, Self.nft, "-f", "\(lab.directory)/miniupnpd-\(self.namespace).nft"])
        let configuration = """
            ext_ifname=ext0
            listening_ip=\(listening ?? "\(lab.gatewayAddress)/24")\(ipv6 ? "\nlistening_ip=gw0" : "")
            ipv6_disable=\(ipv6 ? "no" : "yes")
            enable_upnp=no
            enable_natpmp=yes
            secure_mode=yes
            system_uptime=no
            min_lifetime=\(minimumLifetime)
            max_lifetime=86400
            lease_file=\(lab.directory)/miniupnpd-\(self.namespace).leases
            uuid=00000000-0000-4000-8000-000000000001
            allow 1024-65535 \(client ?? lab.clientAddress)/32 1024-65535
            deny 0-65535 0.0.0.0/0 0-65535

            """
        try configuration.write(toFile: "\(lab.directory)/miniupnpd-\(self.namespace).conf", atomically: true, encoding: .utf8)
        try start()
    }

    deinit { process?.stop(grace: 2) }

    /// Starts it (again); it listens before this returns.
    public func start() throws {
        starts += 1
        process = try lab.start(in: namespace, Self.executable,
                                ["-d", "-f", "\(lab.directory)/miniupnpd-\(self.namespace).conf", "-P", "\(lab.directory)/miniupnpd-\(self.namespace).pid"],
                                output: "\(logPath).\(starts)")
        let deadline = Date().addingTimeInterval(10)
        while !log.contains("Listening for NAT-PMP/PCP traffic") && Date() < deadline { usleep(20_000) }
        guard log.contains("Listening for NAT-PMP/PCP traffic") else { throw ChildProcessError(message: "miniupnpd did not start: \(log)") }
    }

    /// Stops it and empties its chains (it leaves its rules behind); a new start has forgotten
    /// every mapping and restarts its epoch, as a rebooted router.
    public func stop() throws {
        process?.stop(grace: 2)
        process = nil
        unlink("\(lab.directory)/miniupnpd-\(namespace).leases")
        for chain in ["miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"] {
            _ = try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "exec", namespace, Self.nft, "flush", "chain", "inet", "filter", chain])
        }
    }

    public var log: String { (1...max(starts, 1)).map { (try? String(contentsOfFile: "\(logPath).\($0)", encoding: .utf8)) ?? "" }.joined() }

    /// The filter rules it made (IPv6 pinholes among them), as `nft list chain` prints them.
    public func filterRules() throws -> String {
        try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "exec", namespace, Self.nft, "list", "chain", "inet", "filter", "miniupnpd"])
    }

    /// The DNAT rules it made, as `nft list chain` prints them.
    public func natRules() throws -> String {
        try NetworkLab.run(NetworkLab.ipCommand!, ["netns", "exec", namespace, Self.nft, "list", "chain", "inet", "filter", "prerouting_miniupnpd"])
    }
}
