import Glibc
import TestSupport
import Testing

/// The client's side of a namespace-lab daemon suite: a real qbittorrent-nox in the lab's client
/// namespace (`QBittorrentInstance` writes its locked-down profile before it starts), the folder
/// that holds its password and portsync's files, and the portsync daemons a test starts beside
/// it, all stopped when the suite's instance goes, also after a failed test.
final class LabClient {
    let lab: NetworkLab
    let qbittorrent: QBittorrentInstance
    let directory: TemporaryDirectory
    private var daemons: [Child] = []

    /// `directory`: one the suite made before the lab, for what it needs first (certificates).
    init(in lab: NetworkLab, directory: TemporaryDirectory = TemporaryDirectory(), torrentPort: UInt16? = nil, interface: String = "lo") throws {
        self.lab = lab
        self.directory = directory
        qbittorrent = try lab.inClient { try QBittorrentInstance(torrentPort: torrentPort, interface: interface) }
        directory.write("password", QBittorrentInstance.password)
    }

    deinit {
        for daemon in daemons { daemon.process.stop(grace: 2) }
        qbittorrent.stop()
    }

    /// portsync's environment for this qBittorrent (its URL, user and password file, the state in
    /// `directory`) with `values`.
    func environment(_ values: [String: String]) -> [String: String] {
        daemonEnvironment(qbittorrent, in: directory, values)
    }

    /// portsync with `arguments` in the client namespace; `names`: the resolv.conf and hosts it
    /// sees (`Child.isolated(names:)`).
    func start(_ arguments: [String], environment: [String: String], names: (resolvConf: String, hosts: String)? = nil) throws -> Child {
        let daemon = try lab.inClient { try Child(arguments, environment: environment, names: names) }
        daemons.append(daemon)
        return daemon
    }

    /// The port qBittorrent says it listens on; nil while it does not answer.
    var listenPort: Int? { try? lab.inClient { try qbittorrent.listenPort() } }

    /// SIGTERM, and a clean exit within `seconds`.
    func stop(_ daemon: Child, seconds: Double = 3, sourceLocation: SourceLocation = #_sourceLocation) {
        daemon.signal(SIGTERM)
        #expect(daemon.wait(seconds: seconds) == 0, "\(daemon.output)", sourceLocation: sourceLocation)
    }
}
