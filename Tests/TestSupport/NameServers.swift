import CLinux
import Foundation
import Glibc
import Reactor

/// A loopback address of its own for each test's name server (port 53 is fixed by resolv.conf):
/// 127.53.x.y, bound only by root.
public func nameServerAddress() -> String {
    "127.53.\(UInt8.random(in: 1...254)).\(UInt8.random(in: 1...254))"
}

/// Debian's dnsmasq as a name server on a loopback address (or one of a lab's namespace), port
/// 53: no upstream, no hosts file, answering only the records the test gives. Stopped by its PID.
public final class DNSMasq {
    public static let executable = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// dnsmasq is installed and port 53 can be bound.
    public static var available: Bool { executable != nil && getuid() == 0 }

    public let address: String
    public let directory: String
    private var process: ChildProcess?

    /// `records`: name → addresses (IPv4 or IPv6). `address`: where it listens (it must exist
    /// in the namespace it is started in).
    public init(records: [String: [String]], address: String = nameServerAddress()) throws {
        self.address = address
        directory = makeTemporaryDirectory("dns")
        let answers = records.flatMap { name, addresses in addresses.map { "--address=/\(name)/\($0)" } }
        let child = try ChildProcess(executable: Self.executable!,
                                     arguments: ["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                                                 "--listen-address=\(address)", "--bind-interfaces", "--port=53",
                                                 "--pid-file=\(directory)/dnsmasq.pid", "--log-facility=\(directory)/dnsmasq.log",
                                                 "--log-queries"] + answers,
                                     environment: ["PATH": "/usr/sbin:/usr/bin:/bin"], outputPath: "\(directory)/output")
        process = child
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && child.isRunning && !log.contains("started") { usleep(10_000) }
        guard child.isRunning && log.contains("started") else {
            throw ChildProcessError(message: "dnsmasq did not start: \(child.output) \(log)")
        }
    }

    deinit {
        process?.stop(grace: 2)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// What dnsmasq logged (its queries).
    public var log: String {
        (try? String(contentsOfFile: "\(directory)/dnsmasq.log", encoding: .utf8)) ?? ""
    }

    /// The queries it logged, as "query[A] name from address".
    public var queries: [String] {
        log.split(separator: "\n").compactMap { line in line.range(of: "query[").map { String(line[$0.lowerBound...]) } }
    }
}

/// A name server that never answers: a UDP socket bound to a loopback address, port 53, that
/// nobody reads. Closed on deinit.
public final class SilentNameServer {
    public let address: String
    private let fd: Int32

    /// `address`: where it listens, in the namespace it is made in.
    public init(address: String = nameServerAddress()) throws {
        self.address = address
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = UInt16(53).bigEndian
        raw.sin_addr = in_addr(s_addr: inet_addr(address))
        let bound = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw ChildProcessError(message: "bind \(address):53: errno \(errno)")
        }
    }

    deinit { close(fd) }
}

/// A name server in the loop under test that answers each query with the datagrams the test
/// makes of it (none, one, several, hostile ones): a UDP socket on a loopback address, port 53.
/// With `streamAnswers`, it also listens on TCP port 53 there and answers each query read off a
/// connection (after its two-byte length) with the message made of it. The queries are recorded.
public final class ScriptedNameServer {
    public let address: String
    public private(set) var queries: [[UInt8]] = []
    public private(set) var streamQueries: [[UInt8]] = []
    private let loop: EventLoop
    private let fd: Int32
    private var registration: RegistrationID?
    private let answers: ([UInt8]) -> [[UInt8]]
    private let streamAnswers: (([UInt8]) -> [UInt8])?
    private var listener: Int32 = -1
    private var listenerRegistration: RegistrationID?
    private var streams: [Int32: (registration: RegistrationID, input: [UInt8])] = [:]

    /// `address`: where it listens, in the namespace it is made in.
    public init(loop: EventLoop, address: String = nameServerAddress(), answers: @escaping (_ query: [UInt8]) -> [[UInt8]],
                streamAnswers: ((_ query: [UInt8]) -> [UInt8])? = nil) throws {
        self.address = address
        self.loop = loop
        self.answers = answers
        self.streamAnswers = streamAnswers
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        guard let local = SocketAddress(numericHost: address, port: 53), local.withSockAddr({ bind(fd, $0, $1) }) == 0 else {
            close(fd)
            throw ChildProcessError(message: "bind \(address):53: errno \(errno)")
        }
        registration = try loop.register(FileDescriptor(rawValue: fd), interest: .readable, name: "scripted.dns") { [unowned self] _ in
            self.answerAll()
        }
        guard streamAnswers != nil else { return }
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC, 0)
        guard local.withSockAddr({ bind(listener, $0, $1) }) == 0, listen(listener, 8) == 0 else {
            throw ChildProcessError(message: "bind \(address):53 over TCP: errno \(errno)")
        }
        listenerRegistration = try loop.register(FileDescriptor(rawValue: listener), interest: .readable, name: "scripted.dns.tcp") { [unowned self] _ in
            self.acceptAll()
        }
    }

    deinit {
        if let registration { loop.deregister(registration) }
        close(fd)
        for (stream, entry) in streams {
            loop.deregister(entry.registration)
            close(stream)
        }
        if let listenerRegistration { loop.deregister(listenerRegistration) }
        if listener >= 0 { close(listener) }
    }

    private func acceptAll() {
        while case let stream = accept4(listener, nil, nil, CLINUX_SOCK_NONBLOCK | CLINUX_SOCK_CLOEXEC), stream >= 0 {
            guard let id = try? loop.register(FileDescriptor(rawValue: stream), interest: .readable, name: "scripted.dns.stream",
                                              handler: { [unowned self] _ in self.readStream(stream) }) else {
                close(stream)
                continue
            }
            streams[stream] = (id, [])
        }
    }

    private func readStream(_ stream: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(stream, &buffer, buffer.count, 0)
        guard count != 0, !(count < 0 && errno != EAGAIN) else {
            if let entry = streams.removeValue(forKey: stream) { loop.deregister(entry.registration) }
            close(stream)
            return
        }
        guard count > 0, var entry = streams[stream] else { return }
        entry.input += buffer[0..<count]
        while entry.input.count >= 2, case let length = Int(entry.input[0]) << 8 | Int(entry.input[1]), entry.input.count >= 2 + length {
            let query = Array(entry.input[2..<2 + length])
            entry.input.removeFirst(2 + length)
            streamQueries.append(query)
            let answer = streamAnswers!(query)
            _ = send(stream, [UInt8(answer.count >> 8), UInt8(answer.count & 0xFF)] + answer, answer.count + 2, 0)
        }
        streams[stream] = entry
    }

    private func answerAll() {
        var buffer = [UInt8](repeating: 0, count: 1500)
        var peer = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        while true {
            let count = withUnsafeMutablePointer(to: &peer) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
            }
            guard count > 0 else { return }
            let query = Array(buffer[0..<count])
            queries.append(query)
            for answer in answers(query) {
                _ = withUnsafePointer(to: &peer) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, answer, answer.count, 0, $0, length) }
                }
            }
        }
    }
}
