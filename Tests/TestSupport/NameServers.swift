import CLinux
import Foundation
import Glibc

/// A loopback address of its own for each test's name server (port 53 is fixed by resolv.conf):
/// 127.53.x.y, bound only by root.
public func nameServerAddress() -> String {
    "127.53.\(UInt8.random(in: 1...254)).\(UInt8.random(in: 1...254))"
}

/// Debian's dnsmasq as a name server on a loopback address, port 53: no upstream, no hosts file,
/// answering only the records the test gives. Stopped by its PID.
public final class DNSMasq {
    public static let executable = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// dnsmasq is installed and port 53 can be bound.
    public static var available: Bool { executable != nil && getuid() == 0 }

    public let address = nameServerAddress()
    public let directory: String
    private var process: ChildProcess?

    /// `records`: name → addresses (IPv4 or IPv6).
    public init(records: [String: [String]]) throws {
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
}

/// A name server that never answers: a UDP socket bound to a loopback address, port 53, that
/// nobody reads. Closed on deinit.
public final class SilentNameServer {
    public let address = nameServerAddress()
    private let fd: Int32

    public init() throws {
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
