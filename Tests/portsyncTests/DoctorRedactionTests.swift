import Foundation
import Glibc
import TestSupport
import Testing
@testable import portsync

/// `doctor` quotes what servers answer; a hostile one that echoes the login form back must not
/// get the password onto the screen. The stand-in is a hostile server, which no real client is.
@Suite(.serialized) final class DoctorRedactionTests {
    let directory = TemporaryDirectory()
    var server: ChildProcess?

    deinit { server?.stop(grace: 1) }

    /// Answers `webapiVersion` like qBittorrent, and the login with a 500 that echoes its form.
    func startEchoServer(port: UInt16) throws {
        let script = directory.write("echo.py", """
            import http.server, sys
            class Echo(http.server.BaseHTTPRequestHandler):
                def log_message(self, *args): pass
                def send_header(self, name, value):
                    if name != "Server": super().send_header(name, value)
                def do_GET(self):
                    body = b"2.8.3"
                    self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    reply = b"login failed for " + body
                    self.send_response(500); self.send_header("Content-Length", str(len(reply))); self.end_headers(); self.wfile.write(reply)
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
            """)
        let server = try ChildProcess(executable: "/usr/bin/python3", arguments: [script, "\(port)"], environment: ["PATH": "/usr/bin:/bin"],
                                      outputPath: "\(directory.path)/server.log")
        self.server = server
        try waitUntilListening(port: port, process: server)
    }

    @Test func aPasswordEchoedBackIsNotPrinted() throws {
        let port = freePort()
        try startEchoServer(port: port)
        directory.write("password", "hunter2 s3cret&=\n")
        let (status, output) = try Child.run(["doctor"], environment: [
            "PORTSYNC_SOURCE_STRATEGY": "static", "PORTSYNC_STATIC_PORT": "51413",
            "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(port)", "PORTSYNC_QBITTORRENT_PASSWORD_FILE": "\(directory.path)/password",
            "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json",
        ])
        #expect(status == 1, "\(output)")
        #expect(output.contains("✗ login: qBittorrent rejected \"admin\" and its password (500 login failed for username=admin&password=<redacted>)"),
                "\(output)")
        #expect(!output.contains("hunter2") && !output.contains("s3cret"), "\(output)")
    }
}
