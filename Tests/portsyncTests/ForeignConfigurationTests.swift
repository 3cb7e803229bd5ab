import Foundation
import Reactor
import Testing
@testable import portsync

/// The configurations of qb-port-sync and qbouncer: recognised in one message, translated by
/// `portsync config --from`, every key mapped or named, no password copied.
@Suite struct ForeignConfigurationTests {
    static let fixtures = "\(UnitFileTests.root)/Tests/Fixtures"

    /// The translation written to a file and loaded by portsync as its own configuration.
    func loadTranslation(of name: String) throws -> (text: String, configuration: Configuration) {
        let directory = TemporaryDirectory()
        let foreign = directory.write(name, try String(contentsOfFile: "\(Self.fixtures)/\(name)", encoding: .utf8))
        let text = try ForeignConfiguration.convert(path: foreign)
        directory.write("qbittorrent-password", "hunter2\n", mode: 0o600)
        let file = directory.write("config.toml", text)
        return (text, try loader(file: file).load().configuration)
    }

    @Test func qbPortSyncsConfigurationBecomesPortsyncs() throws {
        let (text, configuration) = try loadTranslation(of: "qb-port-sync.toml")
        #expect(configuration.source.strategy == .auto)
        #expect(configuration.qbittorrent.url.description == "http://127.0.0.1:8080")
        #expect(configuration.qbittorrent.username == "admin")
        #expect(configuration.proton.portFile.hasSuffix("/run/forwarded_port") && configuration.proton.portFile.hasPrefix("/tmp/"),
                "the relative path as qb-port-sync read it, from its file's directory")
        #expect(configuration.qbittorrent.passwordFile.hasSuffix("/qbittorrent-password"))
        #expect(configuration.natpmp.zeroInternalPort)
        #expect(configuration.natpmp.gateway == nil, "an empty gateway: found from the tunnel")
        for key in ["qbittorrent.password: not copied", "portmap.protocol: no equivalent", "portmap.refresh_secs: not carried over",
                    "portmap.autodiscover_gateway: no equivalent needed"] {
            #expect(text.contains("# - \(key)"), "\(text)")
        }
        #expect(!text.contains("hunter2"), "the password is never copied")
    }

    @Test func qbouncersConfigurationBecomesPortsyncs() throws {
        let (text, configuration) = try loadTranslation(of: "qbouncer.toml")
        #expect(configuration.source.strategy == .natpmp)
        #expect(configuration.natpmp.interface == "wg0")
        #expect(configuration.natpmp.gateway?.description == "10.2.0.1")
        #expect(configuration.natpmp.leaseSeconds == 120 && configuration.natpmp.renewSeconds == 60)
        #expect(configuration.qbittorrent.url.description == "http://localhost:8080")
        #expect(configuration.qbittorrent.username == "admin" && configuration.qbittorrent.bindInterface)
        #expect(configuration.daemon.logLevel == .info)
        for key in ["wireguard.health_check_host", "wireguard.health_check_interval", "service.state_file", "service.max_consecutive_failures",
                    "service.failure_backoff_base", "service.failure_backoff_max", "killswitch.enabled", "killswitch.user",
                    "qbittorrent.password: not copied"] {
            #expect(text.contains("# - \(key)"), "\(key) in \(text)")
        }
        #expect(!text.contains("hunter2"))
    }

    @Test func qbouncersDefaultPortAndHTTPSMakeTheURL() throws {
        let directory = TemporaryDirectory()
        let plain = directory.write("plain.toml", "[wireguard]\ninterface = \"wg1\"\n")
        #expect(try ForeignConfiguration.convert(path: plain).contains("url = \"http://localhost\""))
        let tls = directory.write("tls.toml", "[qbittorrent]\nhost = \"qbt.lan\"\nport = 8443\nuse_https = true\nverify_ssl = false\n")
        let text = try ForeignConfiguration.convert(path: tls)
        #expect(text.contains("url = \"https://qbt.lan:8443\"") && text.contains("tls_verify = false"), "\(text)")
    }

    @Test func portsyncGivenSuchAFileSaysWhatItIsInOneMessage() {
        #expect(loadError("[qbittorrent]\nbase_url = \"http://127.0.0.1:8080\"\n[portmap]\nrefresh_secs = 300\n")
            == "config.toml: this is a qb-port-sync configuration ([qbittorrent] base_url, [protonvpn], [portmap]), not portsync's: `portsync config --from config.toml` prints the equivalent")
        #expect(loadError("[wireguard]\ninterface = \"wg0\"\n")?.contains("this is a qbouncer configuration") == true)
        #expect(throws: ConfigurationError.self) { try ForeignConfiguration.convert(path: "\(UnitFileTests.root)/config/portsync.example.toml") }
    }

    @Test func aPasswordInTheFileSaysWhereItGoes() {
        #expect(loadError("[qbittorrent]\npassword = \"hunter2\"\n") == "config.toml:2: a secret is not read from the configuration file, which more than its owner may read: put it alone in a file (chmod 600) and set password_file, or use $CREDENTIALS_DIRECTORY or PORTSYNC_QBITTORRENT_PASSWORD")
        #expect(loadError("[qbittorrent.tv]\nurl = \"http://127.0.0.1:8081\"\napi_key = \"qbt_x\"\n") == "config.toml:3: a secret is not read from the configuration file, which more than its owner may read: put it alone in a file (chmod 600) and set api_key_file, or use $CREDENTIALS_DIRECTORY")
    }

    @Test func configFromPrintsItAndFailsClearlyOnAnythingElse() throws {
        let (status, output) = try Child.run(["config", "--from", "\(Self.fixtures)/qbouncer.toml"])
        #expect(status == 0 && output.hasPrefix("# portsync's equivalent of qbouncer's ") && output.contains("\n[natpmp]\ninterface = \"wg0\"\n"), "\(output)")
        let (refused, message) = try Child.run(["config", "--from", "/nonexistent/qb.toml"])
        #expect(refused == 2 && message == "portsync: --from: cannot read /nonexistent/qb.toml: open: No such file or directory (errno 2)\n", "\(message)")
    }

    /// qSticky's compose recipe, as its README writes it, with its secrets.
    static let qStickyEnvironment = [
        "QBITTORRENT_HOST": "localhost", "QBITTORRENT_HTTPS": "false", "QBITTORRENT_PORT": "8080", "QBITTORRENT_USER": "admin",
        "QBITTORRENT_PASS": "hunter2-qb", "GLUETUN_AUTH_TYPE": "apikey", "GLUETUN_APIKEY": "hunter2-gluetun", "LOG_LEVEL": "INFO",
        "CHECK_INTERVAL": "20", "HEALTH_FILE": "/tmp/health/status.json",
    ]

    /// The printed variables, with each secret given as the notes say, loaded as portsync's own.
    @Test func qStickysEnvironmentBecomesPortsyncs() throws {
        let text = try ForeignEnvironment.convert(Self.qStickyEnvironment)
        #expect(!text.contains("hunter2"), "a secret's value is never printed")
        var variables: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            try #require(parts.count == 2, "\(line)")
            variables[parts[0]] = parts[1]
        }
        #expect(text.contains("# - QBITTORRENT_PASS: a secret, not printed: give its value to PORTSYNC_QBITTORRENT_PASSWORD"))
        #expect(text.contains("# - GLUETUN_APIKEY: a secret, not printed: give its value to PORTSYNC_GLUETUN_API_KEY"))
        #expect(text.contains("# - HEALTH_FILE: no equivalent"))
        #expect(text.contains("# - GLUETUN_HOST: unset: qSticky's default, gluetun"))
        variables["PORTSYNC_QBITTORRENT_PASSWORD"] = "hunter2-qb"
        variables["PORTSYNC_GLUETUN_API_KEY"] = "hunter2-gluetun"
        let loaded = try loader(environment: variables).load()
        let configuration = loaded.configuration
        #expect(configuration.source.strategy == .gluetun)
        #expect(configuration.qbittorrent.url.description == "http://localhost:8080" && configuration.qbittorrent.username == "admin")
        #expect(configuration.gluetun.url.description == "http://gluetun:8000" && configuration.gluetun.pollSeconds == 20)
        #expect(configuration.daemon.logLevel == .info)
        #expect(loaded.credentials.qbittorrentPassword?.value == "hunter2-qb")
        #expect(loaded.credentials.gluetunAPIKey?.value == "hunter2-gluetun")
    }

    @Test func qStickysHTTPSBasicAuthAndBadValuesAreEachNamed() throws {
        let text = try ForeignEnvironment.convert([
            "QBITTORRENT_HOST": "fd00::5", "QBITTORRENT_PORT": "99999", "QBITTORRENT_HTTPS": "yes", "QBITTORRENT_VERIFY_SSL": "off",
            "GLUETUN_HOST": "127.0.0.1", "GLUETUN_PORT": "8001", "GLUETUN_AUTH_TYPE": "basic", "GLUETUN_USERNAME": "qsticky",
            "GLUETUN_PASSWORD": "hunter2", "GLUETUN_APIKEY": "unused", "LOG_LEVEL": "loud",
        ])
        #expect(text.contains("\nPORTSYNC_QBITTORRENT_URL=https://[fd00::5]:8080\n"), "a port out of range: qSticky's default")
        #expect(text.contains("# - QBITTORRENT_PORT: \"99999\" is not a port"))
        #expect(text.contains("\nPORTSYNC_QBITTORRENT_TLS_VERIFY=false\n"))
        #expect(text.contains("\nPORTSYNC_GLUETUN_URL=http://127.0.0.1:8001\nPORTSYNC_GLUETUN_USERNAME=qsticky\n"))
        #expect(text.contains("# - GLUETUN_PASSWORD: a secret, not printed: give its value to PORTSYNC_GLUETUN_PASSWORD"))
        #expect(text.contains("# - GLUETUN_APIKEY: not used: GLUETUN_AUTH_TYPE is basic"))
        #expect(text.contains("# - QBITTORRENT_PASS: unset: qSticky tried adminadmin"))
        #expect(text.contains("# - LOG_LEVEL: \"loud\" is not a log level"))
        #expect(!text.contains("hunter2"))
    }

    @Test func portsyncSaysOnceThatItDoesNotReadThem() throws {
        let warnings = try loader(environment: ["QBITTORRENT_PASS": "hunter2", "GLUETUN_APIKEY": "k", "LOG_LEVEL": "INFO"]).load().warnings
        #expect(warnings.filter { $0.contains("qSticky") } == [
            "the environment holds qSticky's variables (QBITTORRENT_PASS, GLUETUN_APIKEY, LOG_LEVEL), which portsync does not read: `portsync config --from-env` prints the PORTSYNC_* equivalent",
        ])
        #expect(try loader(environment: ["LOG_LEVEL": "INFO", "CHECK_INTERVAL": "30", "GLUETUN_HTTP_CONTROL_SERVER_PORT": "8000"]).load()
            .warnings.allSatisfy { !$0.contains("qSticky") }, "names too common, or Gluetun's own, alone say nothing")
    }

    @Test func configFromEnvPrintsItAndSaysWhenThereIsNothing() throws {
        let (status, output) = try Child.run(["config", "--from-env"], environment: Self.qStickyEnvironment)
        #expect(status == 0 && output.hasPrefix("# portsync's equivalent of qSticky's environment\nPORTSYNC_SOURCE_STRATEGY=gluetun\n"), "\(output)")
        #expect(!output.contains("hunter2"))
        let (refused, message) = try Child.run(["config", "--from-env"])
        #expect(refused == 2 && message.hasPrefix("portsync: --from-env: the environment holds none of qSticky's"), "\(message)")
    }
}
