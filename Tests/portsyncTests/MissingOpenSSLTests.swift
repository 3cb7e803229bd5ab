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

    @Test(arguments: ["run", "once", "doctor"])
    func anHTTPSURLWithoutOpenSSLStopsTheStart(command: String) throws {
        let directory = TemporaryDirectory()
        let output = "\(directory.path)/output"
        let child = try ChildProcess(executable: "/usr/bin/unshare",
                                     arguments: ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                                 #"mount --bind /dev/null "$1" && exec "$0" "$2""#,
                                                 portsyncBinary, systemLibSSL!, command],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": directory.path,
                                                   "PORTSYNC_QBITTORRENT_URL": "https://nas.test:8080",
                                                   "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json"],
                                     outputPath: output)
        #expect(child.wait(seconds: 10) == 2)
        let text = child.output
        #expect(text.hasPrefix("portsync: https needs OpenSSL 3, which is not installed ("), "\(text)")
        #expect(text.hasSuffix("): install the package libssl3\n") && text.filter { $0 == "\n" }.count == 1, "\(text)")
    }
}
