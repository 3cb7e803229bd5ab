import Foundation
import Glibc
import TestSupport
import Testing

/// Where Debian keeps libssl.so.3.
let systemLibSSL = ["/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/aarch64-linux-gnu/libssl.so.3"]
    .first { FileManager.default.fileExists(atPath: $0) }

/// portsync with an https URL on a system without OpenSSL 3: a mount namespace where
/// libssl.so.3 is an empty file. One line naming the package, exit 2, before anything starts.
@Suite(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") && systemLibSSL != nil,
                "needs root, unshare and libssl.so.3 to hide"))
struct MissingOpenSSLTests {

    /// Every https client counts, not only `[qbittorrent]` and `[gluetun]`: one list of servers.
    static let configurations = [
        "[qbittorrent]\nurl = \"https://nas.test:8080\"\n",
        "[transmission]\nurl = \"https://nas.test:9091\"\n",
        "[deluge]\nurl = \"https://nas.test:8112\"\n",
        "[qbittorrent]\nurl = \"http://127.0.0.1:8080\"\n[qbittorrent.movies]\nurl = \"https://nas.test:8081\"\n",
    ]

    @Test(arguments: ["run", "once", "doctor"], configurations)
    func anHTTPSURLWithoutOpenSSLStopsTheStart(command: String, configuration: String) throws {
        let directory = TemporaryDirectory()
        let output = "\(directory.path)/output"
        directory.write("portsync.toml", configuration)
        let child = try ChildProcess(executable: "/usr/bin/unshare",
                                     arguments: ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                                 #"mount --bind /dev/null "$1" && exec "$0" "$2" --config "$3""#,
                                                 portsyncBinary, systemLibSSL!, command, "\(directory.path)/portsync.toml"],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path,
                                                   "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json"],
                                     outputPath: output)
        #expect(child.wait(seconds: 10) == 2)
        let text = child.output
        #expect(text.hasPrefix("portsync: https needs OpenSSL 3, which is not installed ("), "\(text)")
        #expect(text.hasSuffix("): install the package libssl3\n") && text.filter { $0 == "\n" }.count == 1, "\(text)")
    }
}
