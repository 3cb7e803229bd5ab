import CLinux
import Foundation
import Glibc

/// Network namespaces made by the test and deleted when it ends: a client with `wg0` and a
/// gateway with `gw0`, joined by a veth pair (a stand-in for WireGuard, which this kernel
/// lacks), and optionally a LAN. Nothing they carry leaves them. Needs root (CAP_SYS_ADMIN,
/// CAP_NET_ADMIN).
///
/// The tunnel is laid out as the real tools lay it out (`Style`), command by command.
public final class NetworkLab {
    public static var ipCommand: String? {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static var python: String? {
        ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Root, and iproute2 and python3 installed.
    public static var available: Bool { getuid() == 0 && ipCommand != nil && python != nil }

    /// The gateway's address on its link to the internet (`addInternet`): what the test gateway
    /// answers NAT-PMP's opcode 0 with, and where it forwards from when asked to.
    public static let publicAddress = "198.51.100.7"

    public enum Style: Sendable {
        /// `10.2.0.2 peer 10.2.0.1/32`: an on-link route to the gateway, made with the address.
        case pointToPoint
        /// The main table has no route to the gateway; only traffic from 10.2.0.2 is routed, by
        /// a rule, through table 51820.
        case policyRouting
        /// wg-quick's `cmd_up` with `Address = 10.2.0.2/32`, `AllowedIPs = 0.0.0.0/0` (read in
        /// wireguard-tools' wg-quick): `add_if`, `set_config`, `add_addr` (/32), `set_mtu_up`,
        /// `set_dns`, then `add_default`: the default route in table 51820 and the rules `not
        /// fwmark 51820 table 51820` and `table main suppress_prefixlength 0`. `routeDelay`
        /// stands for the time between link-up and the routes (resolvconf, a slow machine).
        case wgQuick(routeDelay: Double)
        /// OpenVPN with `topology subnet` and `redirect-gateway def1`, as ProtonVPN over OpenVPN
        /// has been seen: 10.96.3.37/16 on the tunnel, the gateway 10.96.0.1 (not the address
        /// with its last byte 1) named by the routes 0.0.0.0/1 and 128.0.0.0/1.
        case openVPN
    }

    public let client: String
    public let gateway: String
    public let directory: String
    public let style: Style
    /// The LAN namespace, once `addLAN()` made it.
    public private(set) var lan: String?
    /// The "internet" namespace, once `addInternet()` made it.
    public private(set) var internet: String?
    /// The routers `addRouter` made, by subnet.
    public private(set) var routers: [Int: String] = [:]
    private nonisolated(unsafe) static var counter = 0
    private var children: [ChildProcess] = []

    /// The tunnel's own address and the gateway's, for this style.
    public var clientAddress: String { if case .openVPN = style { "10.96.3.37" } else { "10.2.0.2" } }
    public var gatewayAddress: String { if case .openVPN = style { "10.96.0.1" } else { "10.2.0.1" } }

    public convenience init(policyRouting: Bool) throws {
        try self.init(style: policyRouting ? .policyRouting : .pointToPoint)
    }

    public init(style: Style = .pointToPoint) throws {
        Self.counter += 1
        let tag = "\(getpid() % 100_000)-\(Self.counter)"
        client = "psync-c\(tag)"
        gateway = "psync-g\(tag)"
        directory = makeTemporaryDirectory("lab")
        self.style = style
        do {
            try ip("netns", "add", client)
            try ip("netns", "add", gateway)
            try ip("-n", client, "link", "set", "lo", "up")
            try ip("-n", gateway, "link", "set", "lo", "up")
            if case .policyRouting = style { try ip("-n", client, "rule", "add", "from", "10.2.0.2", "table", "51820") }
            try tunnelUp(routeDelay: 0)
        } catch {
            cleanUp()
            throw error
        }
    }

    deinit { cleanUp() }

    private func cleanUp() {
        for child in children { child.stop(grace: 3) }
        children.removeAll()
        _ = try? ip("netns", "del", client)
        _ = try? ip("netns", "del", gateway)
        if let lan { _ = try? ip("netns", "del", lan) }
        if let internet { _ = try? ip("netns", "del", internet) }
        for router in routers.values { _ = try? ip("netns", "del", router) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    @discardableResult
    public func ip(_ arguments: String...) throws -> String {
        try Self.run(Self.ipCommand!, Array(arguments))
    }

    /// `ip -n client link set wg0 up|down`.
    public func setTunnel(up: Bool) throws {
        try ip("-n", client, "link", "set", "wg0", up ? "up" : "down")
    }

    /// The tunnel's IPv6 side, as a provider with IPv6 lays it out: fd00:2::2/64 on wg0 and
    /// fd00:2::1/64 on gw0 (no duplicate address detection, so both are usable at once), the
    /// gateway's link-local fe80::1, and the client's IPv6 default route via fe80::1 dev wg0.
    public static let clientIPv6 = "fd00:2::2"
    public static let gatewayLinkLocal = "fe80::1"

    public func addIPv6() throws {
        try ip("-n", gateway, "addr", "add", "fd00:2::1/64", "dev", "gw0", "nodad")
        try ip("-n", gateway, "addr", "add", "\(Self.gatewayLinkLocal)/64", "dev", "gw0", "nodad")
        try ip("-n", client, "addr", "add", "\(Self.clientIPv6)/64", "dev", "wg0", "nodad")
        try ip("-n", client, "-6", "route", "add", "default", "via", Self.gatewayLinkLocal, "dev", "wg0")
    }

    /// Deletes wg0 (and the gateway's end with it), as a VPN that disconnects does: the client
    /// is left with whatever else it has (`addLAN`).
    public func removeTunnel() throws {
        try ip("-n", client, "link", "del", "wg0")
    }

    /// Makes wg0 again after `removeTunnel`, as the style's tool does.
    public func restoreTunnel() throws {
        try tunnelUp(routeDelay: nil)
    }

    /// When a recreate took the old tunnel away and when the route to the gateway was complete
    /// again (Unix seconds).
    public struct Recreation: Sendable {
        public let gone: Double
        public let routed: Double
    }

    /// Deletes wg0 and makes it again, same addresses, as a VPN reconnect does (a new ifindex):
    /// for wg-quick, `wg-quick down` then `wg-quick up` (`routeDelay` overrides the style's).
    @discardableResult
    public func recreateTunnel(routeDelay: Double? = nil) throws -> Recreation {
        if case .wgQuick = style {
            // wg-quick's del_if: the rules first, then the link (its routes go with it).
            try ip("-n", client, "-4", "rule", "delete", "table", "51820")
            try ip("-n", client, "-4", "rule", "delete", "table", "main", "suppress_prefixlength", "0")
        }
        try ip("-n", client, "link", "del", "wg0")
        let gone = Date().timeIntervalSince1970
        return Recreation(gone: gone, routed: try tunnelUp(routeDelay: routeDelay))
    }

    /// Brings the tunnel up in the order its style's tool does. Returns the time the route
    /// to the gateway was complete (Unix seconds).
    @discardableResult
    private func tunnelUp(routeDelay: Double?) throws -> Double {
        // add_if (a veth pair stands in for `ip link add wg0 type wireguard`); set_config
        // configures the peer: here, the gateway's end.
        try ip("link", "add", "wg0", "netns", client, "type", "veth", "peer", "name", "gw0", "netns", gateway)
        try ip("-n", gateway, "link", "set", "gw0", "up")
        if internet != nil { try answerAtOnceForTheInternet() }
        switch style {
        case .pointToPoint:
            try ip("-n", gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0")
            try ip("-n", client, "link", "set", "wg0", "up")
            try ip("-n", client, "addr", "add", "10.2.0.2", "peer", "10.2.0.1/32", "dev", "wg0")
        case .policyRouting:
            try ip("-n", gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0")
            try ip("-n", client, "link", "set", "wg0", "up")
            try ip("-n", client, "addr", "add", "10.2.0.2/32", "dev", "wg0")
            try ip("-n", client, "route", "add", "10.2.0.1/32", "dev", "wg0", "table", "51820")
        case .wgQuick(let configuredDelay):
            try ip("-n", gateway, "addr", "add", "10.2.0.1", "peer", "10.2.0.2/32", "dev", "gw0")
            try ip("-n", client, "-4", "address", "add", "10.2.0.2/32", "dev", "wg0")       // add_addr
            try ip("-n", client, "link", "set", "mtu", "1420", "up", "dev", "wg0")           // set_mtu_up
            let delay = routeDelay ?? configuredDelay                                        // set_dns, …
            if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
            try ip("-n", client, "-4", "route", "add", "0.0.0.0/0", "dev", "wg0", "table", "51820")  // add_default
            try ip("-n", client, "-4", "rule", "add", "not", "fwmark", "51820", "table", "51820")
            let done = Date().timeIntervalSince1970
            try ip("-n", client, "-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
            return done
        case .openVPN:
            try ip("-n", gateway, "addr", "add", "10.96.0.1/16", "dev", "gw0")
            try ip("-n", client, "link", "set", "wg0", "up")
            try ip("-n", client, "addr", "add", "10.96.3.37/16", "dev", "wg0")
            try ip("-n", client, "route", "add", "0.0.0.0/1", "via", "10.96.0.1", "dev", "wg0")
            try ip("-n", client, "route", "add", "128.0.0.0/1", "via", "10.96.0.1", "dev", "wg0")
        }
        return Date().timeIntervalSince1970
    }

    /// A desktop's LAN: `lan0` (192.168.77.2/24) in the client with the default route of the
    /// main table via 192.168.77.1, the router in a third namespace. The router also holds the
    /// gateway's address (on its `lo`), so that a request for the gateway that leaves through
    /// the LAN arrives somewhere a test can see it (`startDecoy`).
    public func addLAN() throws {
        let name = client.replacingOccurrences(of: "psync-c", with: "psync-l")
        try ip("netns", "add", name)
        lan = name
        try ip("-n", name, "link", "set", "lo", "up")
        try ip("link", "add", "lan0", "netns", client, "type", "veth", "peer", "name", "lan1", "netns", name)
        try ip("-n", client, "addr", "add", "192.168.77.2/24", "dev", "lan0")
        try ip("-n", client, "link", "set", "lan0", "up")
        try ip("-n", name, "addr", "add", "192.168.77.1/24", "dev", "lan1")
        try ip("-n", name, "addr", "add", "\(gatewayAddress)/32", "dev", "lo")
        try ip("-n", name, "link", "set", "lan1", "up")
        try ip("-n", client, "route", "add", "default", "via", "192.168.77.1", "dev", "lan0")
        for key in ["all", "default", "lan1"] {
            _ = try? Self.run(Self.ipCommand!, ["netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.conf.\(key).rp_filter=0"])
        }
    }

    /// Another router on another LAN, as a laptop that moved to another network meets: a
    /// namespace with 192.168.`subnet`.1 on `lan1` and the client's `lan<subnet>` with .2
    /// (`useRouter` moves the default route to it). Returns the router's namespace.
    @discardableResult
    public func addRouter(subnet: Int) throws -> String {
        let name = client.replacingOccurrences(of: "psync-c", with: "psync-r\(subnet)-")
        try ip("netns", "add", name)
        routers[subnet] = name
        try ip("-n", name, "link", "set", "lo", "up")
        try ip("link", "add", "lan\(subnet)", "netns", client, "type", "veth", "peer", "name", "lan1", "netns", name)
        try ip("-n", client, "addr", "add", "192.168.\(subnet).2/24", "dev", "lan\(subnet)")
        try ip("-n", client, "link", "set", "lan\(subnet)", "up")
        try ip("-n", name, "addr", "add", "192.168.\(subnet).1/24", "dev", "lan1")
        try ip("-n", name, "link", "set", "lan1", "up")
        return name
    }

    /// The client's default route goes to the router `addRouter(subnet:)` made.
    public func useRouter(subnet: Int) throws {
        try ip("-n", client, "route", "replace", "default", "via", "192.168.\(subnet).1", "dev", "lan\(subnet)")
    }

    /// The internet beyond the VPN server: a namespace holding `address` (a TEST-NET address),
    /// reached only through the gateway, which forwards between the tunnel and it. A client
    /// whose default route is the tunnel (wg-quick) reaches it through the tunnel alone.
    public func addInternet(address: String = "198.51.100.10") throws {
        let name = client.replacingOccurrences(of: "psync-c", with: "psync-i")
        try ip("netns", "add", name)
        internet = name
        try ip("-n", name, "link", "set", "lo", "up")
        try ip("link", "add", "inet0", "netns", gateway, "type", "veth", "peer", "name", "inet1", "netns", name)
        try ip("-n", gateway, "addr", "add", "198.51.100.1/24", "dev", "inet0")
        try ip("-n", gateway, "addr", "add", "\(Self.publicAddress)/32", "dev", "inet0")
        try ip("-n", gateway, "link", "set", "inet0", "up")
        try ip("-n", name, "addr", "add", "\(address)/24", "dev", "inet1")
        try ip("-n", name, "link", "set", "inet1", "up")
        try ip("-n", name, "route", "add", "\(clientAddress)/32", "via", "198.51.100.1")
        // The tunnel's /32 and its route `default dev wg0` ask for every address on the link, as
        // WireGuard needs no ARP: the gateway answers for the internet's (proxy ARP, on every
        // gw0 to come too) and forwards.
        for setting in ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.proxy_arp=1"] {
            _ = try Self.run(Self.ipCommand!, ["netns", "exec", gateway, "sysctl", "-q", "-w", setting])
        }
        try answerAtOnceForTheInternet()
    }

    /// The kernel delays a proxy ARP answer by up to 0.8 s (`proxy_delay`); WireGuard has no ARP
    /// at all, so the stand-in answers at once, on each new gw0.
    private func answerAtOnceForTheInternet() throws {
        _ = try Self.run(Self.ipCommand!, ["netns", "exec", gateway, "sysctl", "-q", "-w", "net.ipv4.neigh.gw0.proxy_delay=0"])
    }

    /// Whether a TCP connection from the gateway's side to 10.2.0.2:`port` is accepted: what a
    /// peer on the internet would see.
    public func acceptsFromGateway(port: UInt16) throws -> Bool {
        try reachFromGateway(port: port) == .accepted
    }

    /// What a TCP connection from the gateway's side to the client's tunnel address meets.
    public enum Reach: Equatable, Sendable {
        case accepted
        /// Reset: the path works and nothing takes the connection.
        case refused
        /// No answer within 2 s, or another error: the path does not work (yet).
        case unanswered
    }

    public func reachFromGateway(port: UInt16) throws -> Reach {
        let script = "import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('\(clientAddress)', \(port)))\n    print('accepted')\nexcept ConnectionRefusedError:\n    print('refused')\nexcept OSError as e:\n    print('unanswered', e)\n"
        let answer = try Self.run(Self.ipCommand!, ["netns", "exec", gateway, Self.python!, "-c", script])
        return answer.hasPrefix("accepted") ? .accepted : answer.hasPrefix("refused") ? .refused : .unanswered
    }

    /// A peer on the gateway's side that dials the client's tunnel address and keeps the
    /// connection open for `seconds` (or until stopped); its output says "connected" once it is.
    public func holdConnectionFromGateway(port: UInt16, seconds: Int = 30) throws -> ChildProcess {
        let script = "import socket, sys, time\ns = socket.create_connection(('\(clientAddress)', \(port)), timeout=5)\nprint('connected', flush=True)\ns.settimeout(\(seconds))\ntry:\n    print('closed' if s.recv(1) == b'' else 'data', flush=True)\nexcept socket.timeout:\n    pass\n"
        return try start(in: gateway, Self.python!, ["-c", script], output: "\(directory)/peer-\(port)-\(UInt32.random(in: 0...UInt32.max)).out")
    }

    /// Runs `body` on this thread inside the client namespace: processes it starts and sockets
    /// it opens live there. The thread's namespace is restored afterwards, whatever happens.
    public func inClient<T>(_ body: () throws -> T) throws -> T {
        try inNetworkNamespace(client, body)
    }

    /// The same inside another of the lab's namespaces (the gateway, the LAN, the internet).
    public func inside<T>(_ namespace: String, _ body: () throws -> T) throws -> T {
        try inNetworkNamespace(namespace, body)
    }

    /// Starts `executable` inside `namespace` (via `ip netns exec`); it is stopped with the lab.
    public func start(in namespace: String, _ executable: String, _ arguments: [String], environment: [String: String] = [:],
                      output: String) throws -> ChildProcess {
        let child = try ChildProcess(executable: Self.ipCommand!, arguments: ["netns", "exec", namespace, executable] + arguments,
                                     environment: environment.isEmpty ? ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"] : environment,
                                     outputPath: output)
        children.append(child)
        return child
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let output = "/tmp/portsync-lab-cmd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(output) }
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"],
                                     outputPath: output)
        let status = child.wait(seconds: 20)
        guard status == 0 else {
            throw ChildProcessError(message: "\(executable) \(arguments.joined(separator: " ")) exited with \(status.map(String.init) ?? "nothing"): \(child.output)")
        }
        return child.output
    }
}

/// The test NAT-PMP gateway (Tests/Fixtures/natpmp_gateway.py) inside a lab's gateway namespace.
public final class NATPMPGateway {
    public let lab: NetworkLab
    public let controlPath: String
    public let logPath: String
    private var changePort = 0
    private var resetEpoch = 0
    private var control: [String: Any] = [:]

    /// `namespace`: where it runs (default: the lab's gateway), `address` where it listens
    /// (default: the gateway's 10.2.0.1); `name` tells two apart.
    public init(lab: NetworkLab, script: String, namespace: String? = nil, address: String? = nil, name: String = "gateway") throws {
        self.lab = lab
        controlPath = "\(lab.directory)/\(name)-control.json"
        logPath = "\(lab.directory)/\(name).log"
        try set(mode: "normal")
        _ = try lab.start(in: namespace ?? lab.gateway, NetworkLab.python!,
                          [script, "--address", address ?? lab.gatewayAddress, "--control", controlPath, "--log", logPath,
                           "--namespace", namespace ?? lab.gateway],
                          output: "\(lab.directory)/\(name).out")
        let deadline = Date().addingTimeInterval(10)
        while !log.contains("\"ready\"") && Date() < deadline { usleep(20_000) }
        guard log.contains("\"ready\"") else {
            throw ChildProcessError(message: "the NAT-PMP gateway did not start: \((try? String(contentsOfFile: "\(lab.directory)/\(name).out", encoding: .utf8)) ?? "")")
        }
    }

    public func set(mode: String, error: Int = 2, strict: Bool? = nil, portBase: Int? = nil) throws {
        control["mode"] = mode
        control["error"] = error
        if let strict { control["strict"] = strict }
        if let portBase { control["port_base"] = portBase }
        try write()
    }

    /// Answers requests of another version (PCP) with Unsupported Version, as RFC 6886 says.
    public func set(answerVersions: Bool) throws {
        control["answer_versions"] = answerVersions
        try write()
    }

    /// Forwards each granted mapping from `NetworkLab.publicAddress` to the client, as a DNAT in
    /// the gateway's namespace, until the mapping is deleted, lapses, or is forgotten.
    public func set(forward: Bool) throws {
        control["forward"] = forward
        try write()
    }

    public func changePorts() throws {
        changePort += 1
        control["change_port"] = changePort
        try write()
    }

    /// Moves the gateway's epoch on by `seconds` on top of real time, for a client whose clock
    /// the test moves (an epoch that lags the client's time reads as a gateway that restarted).
    public func set(epochOffset seconds: Int) throws {
        control["epoch_offset"] = seconds
        try write()
    }

    public func resetEpochNow() throws {
        resetEpoch += 1
        control["reset_epoch"] = resetEpoch
        try write()
    }

    private func write() throws {
        let data = try JSONSerialization.data(withJSONObject: control)
        try data.write(to: URL(fileURLWithPath: controlPath + ".tmp"))
        rename(controlPath + ".tmp", controlPath)
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The mapping requests the gateway received, in order.
    public var requests: [[String: Any]] {
        entries.filter { $0["op"] != nil && $0["op"] as? String != "address" }
    }

    /// The forwards it removed (`set(forward:)`), in order: each with its forwards ("tcp 40000")
    /// and why: "deleted", "expired", "new ports", "epoch reset" or "forwarding off".
    public var unforwarded: [(forwards: [String], why: String)] {
        entries.compactMap { entry in
            guard let forwards = entry["unforwarded"] as? [String], let why = entry["why"] as? String else { return nil }
            return (forwards, why)
        }
    }

    /// The external-address requests (opcode 0) it received, in order.
    public var addressRequests: [[String: Any]] {
        entries.filter { $0["op"] as? String == "address" }
    }

    private var entries: [[String: Any]] {
        log.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}

/// The stand-in Gluetun control server (Tests/Fixtures/gluetun_server.py) on 127.0.0.1.
public final class FakeGluetun {
    public let port: UInt16
    public let directory: String
    private let process: ChildProcess
    private var control: [String: Any] = ["version": "3.41", "ports": [Int](), "auth": "none", "mode": "normal"]

    public init(script: String) throws {
        directory = makeTemporaryDirectory("gluetun")
        port = freePort()
        let data = try JSONSerialization.data(withJSONObject: control)
        try data.write(to: URL(fileURLWithPath: "\(directory)/control.json"))
        process = try ChildProcess(executable: NetworkLab.python!,
                                   arguments: [script, "--port", "\(port)", "--control", "\(directory)/control.json", "--log", "\(directory)/log"],
                                   environment: ["PATH": "/usr/bin:/bin"], outputPath: "\(directory)/output")
        let deadline = Date().addingTimeInterval(10)
        while !log.contains("\"ready\"") && Date() < deadline { usleep(20_000) }
        guard log.contains("\"ready\"") else { throw ChildProcessError(message: "the fake Gluetun did not start: \(process.output)") }
    }

    deinit {
        process.stop(grace: 2)
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public func set(_ values: [String: Any]) throws {
        control.merge(values) { $1 }
        let data = try JSONSerialization.data(withJSONObject: control)
        try data.write(to: URL(fileURLWithPath: "\(directory)/control.json.tmp"))
        rename("\(directory)/control.json.tmp", "\(directory)/control.json")
    }

    public var log: String { (try? String(contentsOfFile: "\(directory)/log", encoding: .utf8)) ?? "" }

    public var requests: [[String: Any]] {
        log.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
            .filter { $0["path"] != nil }
    }
}
