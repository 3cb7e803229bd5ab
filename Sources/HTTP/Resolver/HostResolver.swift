import Glibc
import Reactor

/// Resolves host names in the loop, never blocking it: the hosts file first, then the name
/// servers of resolv.conf (or the configuration's own) over UDP (`NameLookup`), one connected
/// socket per server asked, with its search domains; an answer too big for UDP over TCP to the
/// same server, non-blocking like every connection. A lookup given a `LookupRoute` sends every
/// query through it alone, with no search domain (a LAN's would be asked through a tunnel). A
/// dead name server costs its timeout, during which the loop serves everything else. One lookup
/// at a time; a new one replaces the old.
final class HostResolver {
    typealias Completion = (Result<[SocketAddress], NameLookup.Failure>) -> Void

    let name: String
    let configuration: ResolverConfiguration
    private let loop: EventLoop
    private var runner: MachineRunner<NameLookup>?
    private var socket: Registration?
    /// The TCP connection for truncated answers, and what it brought that is not a whole
    /// message yet (each comes after its two-byte length).
    private var stream: TCPConnection?
    private var streamInput: [UInt8] = []
    private var completion: Completion?
    /// The way out of the lookup in progress, if it has one.
    private var route: LookupRoute?

    init(loop: EventLoop, name: String, configuration: ResolverConfiguration = .system) {
        self.loop = loop
        self.name = name
        self.configuration = configuration
    }

    deinit { cancel() }

    var isResolving: Bool { completion != nil }

    /// Looks `host` up, through `route` alone when given; `completion` runs once, from the loop
    /// (at once when the hosts file has it, or no name server can be asked through the route),
    /// unless `cancel()` comes first.
    func resolve(_ host: String, port: UInt16, through route: LookupRoute? = nil, completion: @escaping Completion) {
        cancel()
        let hosts = (try? FileContents.read(atPath: configuration.hostsPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let listed = ResolverConfiguration.addresses(of: host, inHosts: hosts, port: port)
        if !listed.isEmpty {
            loop.logger.debug(name, "\(host) is in \(configuration.hostsPath): \(listed.map(\.hostText).joined(separator: ", "))")
            return completion(.success(listed))
        }
        // A missing resolv.conf means 127.0.0.1, as for glibc.
        let text = (try? FileContents.read(atPath: configuration.resolvConfPath)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        var servers = ResolverConfiguration.nameServers(inResolvConf: text)
        if let timeout = configuration.timeout { servers.timeout = timeout }
        if !configuration.nameServers.isEmpty { servers.servers = configuration.nameServers }
        if let route {
            servers.search = []
            let reachable = servers.servers.filter { if case .v4(let address, _) = $0 { !address.isLoopback } else { false } }
            guard !reachable.isEmpty else {
                let named = servers.servers.map(\.hostText).joined(separator: ", ")
                let origin = configuration.nameServers.isEmpty ? "\(configuration.resolvConfPath) names" : "the name servers are"
                return completion(.failure(NameLookup.Failure(description: "no name server to ask through \(route.interface): \(origin) \(named), "
                    + "on this machine or IPv6, which a query through the tunnel cannot reach")))
            }
            servers.servers = reachable
        }
        self.route = route
        self.completion = completion
        let runner = MachineRunner(loop: loop, name: "\(name).timer",
                                   machine: NameLookup(names: servers.candidates(for: host), port: port, nameServers: servers,
                                                       drawID: { UInt16.random(in: 0...UInt16.max) }),
                                   deadlineInput: .deadlineReached)
        self.runner = runner
        runner.perform = { [unowned self] effect in self.perform(effect) }
        runner.send(.start)
    }

    /// Forgets the lookup in progress: its completion never runs.
    func cancel() {
        runner?.stop()
        runner = nil
        completion = nil
        closeSocket()
    }

    private func perform(_ effect: NameLookup.Effect) {
        switch effect {
        case .ask(let server, let queries):
            closeSocket()
            loop.logger.trace(name, "→ \(server.hostText): A and AAAA \(runner?.machine.name ?? "")\(route.map { " through \($0.interface)" } ?? "")")
            do {
                let fd = try Socket(family: server.family, kind: .datagram, name: "socket(SOCK_DGRAM)") { [route] socket in
                    if let route {
                        // IP_UNICAST_IF takes the index in network byte order; it needs no privilege.
                        try socket.setOption(Int32(IPPROTO_IP), IP_UNICAST_IF, Int32(bitPattern: UInt32(bitPattern: route.index).bigEndian),
                                             name: "IP_UNICAST_IF")
                        try socket.bind(to: SocketAddress.v4(route.address, port: 0), name: "bind \(route.address)")
                    }
                    try socket.connect(to: server, name: "connect \(server)")
                }.fd
                socket = try Registration(loop: loop, owning: fd, interest: .readable, name: name) { [unowned self] _ in self.drain() }
                for query in queries { _ = try Socket(fd).send(query) }
            } catch {
                // No route to this server (an IPv6 one without IPv6), a firewall's drop: the next one.
                loop.logger.debug(name, "\(server.hostText): \(error)")
                runner?.send(.sendFailed("\(error)"))
            }
        case .askOverTCP(let server, let query):
            loop.logger.debug(name, "\(server.hostText) truncated its answer: asking again over TCP")
            if stream == nil {
                let fresh = TCPConnection(loop: loop, name: "\(name).tcp") { [unowned self] event in self.handle(event) }
                stream = fresh
                streamInput = []
                do {
                    try fresh.connect(to: server, from: route.map { .v4($0.address, port: 0) }, device: route?.interface,
                                      timeout: runner?.machine.nameServers.timeout ?? .seconds(5))
                } catch {
                    loop.logger.debug(name, "\(server.hostText) over TCP: \(error)")
                    return closeStream(reporting: true)
                }
            }
            stream?.send([UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query)
        case .finished(let result):
            closeSocket()
            runner?.stop()
            let completion = self.completion
            self.completion = nil
            if let route {
                completion?(result.mapError { NameLookup.Failure(description: "\($0), asked through \(route.interface)") })
            } else {
                completion?(result)
            }
        }
    }

    /// Datagrams read per wakeup, at most, as `TCPConnection` caps its reads: a flood cannot
    /// hold the loop; level-triggered epoll reports the rest at the next wakeup.
    static let datagramsPerWakeup = 16

    private func drain() {
        guard let fd = socket?.fd else { return }
        // The largest datagram: a server may ignore the payload size offered.
        var buffer = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<Self.datagramsPerWakeup where socket?.fd == fd {
            do {
                guard case .done(let count) = try buffer.withUnsafeMutableBytes({ try fd.read(into: $0) }) else { return }
                runner?.send(.answerReceived(Array(buffer[0..<count])))
            } catch let error as SystemCallError where error.errno == .connectionRefused {
                runner?.send(.refused)
                return
            } catch {
                loop.logger.debug(name, "recv: \(error)")
                runner?.send(.sendFailed("\(error)"))
                return
            }
        }
    }

    private func handle(_ event: TCPConnection.Event) {
        switch event {
        case .connected:
            break
        case .received(let bytes):
            streamInput += bytes
            while streamInput.count >= 2 {
                let length = Int(streamInput[0]) << 8 | Int(streamInput[1])
                guard streamInput.count >= 2 + length else { return }
                let message = Array(streamInput[2..<2 + length])
                streamInput.removeFirst(2 + length)
                runner?.send(.answerReceived(message))
                guard stream != nil else { return }  // the lookup ended with it
            }
        case .closed(let error):
            if let error { loop.logger.debug(name, "TCP: \(error)") }
            stream = nil
            runner?.send(.streamFailed)
        }
    }

    /// Closes the UDP socket and the TCP connection.
    private func closeSocket() {
        socket?.cancel()
        socket = nil
        closeStream(reporting: false)
    }

    private func closeStream(reporting: Bool) {
        stream?.close()
        stream = nil
        streamInput = []
        if reporting { runner?.send(.streamFailed) }
    }
}
