import Foundation
import Glibc

/// Debian's nginx as a TLS reverse proxy on 127.0.0.1 and ::1, started by the test with a private prefix
/// and configuration (pid, logs and temporary files in its own directory), forwarding a
/// sub-path to a loopback backend. Stopped by its PID.
public final class NginxProxy {
    public static let executable = ["/usr/sbin/nginx", "/usr/bin/nginx"].first { FileManager.default.isExecutableFile(atPath: $0) }
    public static var available: Bool { executable != nil }

    /// The settings of the `location` block, as docs/how-it-works.md recommends them.
    public static let recommended = [
        "proxy_set_header Host $proxy_host;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        #"proxy_cookie_path / "/qbt/; Secure";"#,
    ]

    public let port: UInt16
    public let directory: String
    private var process: ChildProcess?

    /// Forwards `https://127.0.0.1:port/<location>/` to `http://127.0.0.1:backendPort/` with
    /// `locationSettings` in the location block; `stripsPath: false` passes `/<location>/…` on (a
    /// `proxy_pass` without its trailing slash).
    public init(backendPort: UInt16, certificate: String, key: String, location: String = "qbt",
                locationSettings: [String] = recommended, stripsPath: Bool = true) throws {
        directory = makeTemporaryDirectory("nginx")
        port = freePort()
        let configuration = """
            worker_processes 1;
            pid \(directory)/nginx.pid;
            error_log \(directory)/error.log info;
            \(getuid() == 0 ? "user root;" : "")
            events { worker_connections 64; }
            http {
                access_log \(directory)/access.log;
                client_body_temp_path \(directory)/body;
                proxy_temp_path \(directory)/proxy;
                fastcgi_temp_path \(directory)/fastcgi;
                uwsgi_temp_path \(directory)/uwsgi;
                scgi_temp_path \(directory)/scgi;
                server {
                    listen 127.0.0.1:\(port) ssl;
                    listen [::1]:\(port) ssl;
                    ssl_certificate \(certificate);
                    ssl_certificate_key \(key);
                    location /\(location)/ {
                        proxy_pass http://127.0.0.1:\(backendPort)\(stripsPath ? "/" : "");
                        proxy_http_version 1.1;
                        \(locationSettings.joined(separator: "\n                "))
                    }
                }
            }

            """
        try configuration.write(toFile: "\(directory)/nginx.conf", atomically: true, encoding: .utf8)
        let child = try ChildProcess(executable: Self.executable!,
                                     arguments: ["-p", directory, "-c", "\(directory)/nginx.conf", "-e", "\(directory)/error.log",
                                                 "-g", "daemon off;"],
                                     environment: ["PATH": "/usr/sbin:/usr/bin:/bin"], outputPath: "\(directory)/output")
        process = child
        do {
            try waitUntilListening(port: port, process: child)
        } catch {
            throw ChildProcessError(message: "nginx did not start: \(child.output) \(errorLog)")
        }
    }

    deinit {
        process?.stop(grace: 5)
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var errorLog: String { (try? String(contentsOfFile: "\(directory)/error.log", encoding: .utf8)) ?? "" }
}
