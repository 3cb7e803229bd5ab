import Foundation
import HTTP
import Reactor
import Testing
@testable import portsync

@Suite struct ConfigurationLoaderTests {
    @Test func withNothingTheDefaultsFitTheProtonDesktopApp() throws {
        let loaded = try loader().load()
        let configuration = loaded.configuration
        #expect(configuration.file == nil)
        #expect(configuration.source.strategy == .auto)
        #expect(configuration.proton.portFile == "/run/user/1000/Proton/VPN/forwarded_port")
        #expect(configuration.natpmp.interface == "proton0")
        #expect(configuration.natpmp.gateway == nil, "derived: proton0's 10.2.0.2 gives 10.2.0.1")
        #expect(configuration.natpmp.leaseSeconds == 60 && configuration.natpmp.renewSeconds == 45)
        #expect(configuration.qbittorrent.url.description == "http://127.0.0.1:8080")
        #expect(configuration.daemon.stateFile == "/nonexistent-home/.local/state/portsync/state.json")
        #expect(loaded.credentials == Credentials())
    }

    @Test func defaultPathsFollowTheEnvironment() {
        #expect(Configuration.defaultProtonPortFile(environment: [:], userID: 1000) == "/run/user/1000/Proton/VPN/forwarded_port")
        #expect(Configuration.defaultProtonPortFile(environment: [:], userID: 0) == "/run/Proton/VPN/forwarded_port")
        #expect(Configuration.defaultStateFile(environment: ["STATE_DIRECTORY": "/var/lib/portsync:/var/lib/other"]) == "/var/lib/portsync/state.json")
        #expect(Configuration.defaultStateFile(environment: ["XDG_STATE_HOME": "/s", "HOME": "/h"]) == "/s/portsync/state.json")
    }

    @Test func aFullFileIsApplied() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", """
            [source]
            strategy = "natpmp"
            [proton]
            port_file = "ports/forwarded_port"
            [natpmp]
            interface = "wg0"
            gateway = "10.2.0.1"
            lease_seconds = 120
            renew_seconds = 60
            [qbittorrent]
            url = "http://127.0.0.1:8081"
            username = "me"
            bind_interface = true
            disable_upnp = false
            check_seconds = 60
            [daemon]
            log_level = "debug"
            metrics_listen = "127.0.0.1:9834"
            """)
        let configuration = try loader(file: file).load().configuration
        #expect(configuration.source.strategy == .natpmp)
        #expect(configuration.proton.portFile == "\(directory.path)/ports/forwarded_port", "relative to the file's directory")
        #expect(configuration.natpmp.interface == "wg0")
        #expect(configuration.natpmp.gateway == IPv4Address(10, 2, 0, 1))
        #expect(configuration.natpmp.leaseSeconds == 120)
        #expect(configuration.qbittorrent.url.port == 8081)
        #expect(configuration.qbittorrent.username == "me")
        #expect(configuration.qbittorrent.bindInterface)
        #expect(!configuration.qbittorrent.disableUPnP)
        #expect(configuration.daemon.logLevel == .debug)
        #expect(configuration.daemon.metricsListen == .v4(IPv4Address(127, 0, 0, 1), port: 9834))
        #expect(configuration.origins["natpmp.gateway"] == "\(file):7")
    }

    @Test func theShippedExampleDocumentsEveryKeyAndLoads() throws {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/portsync.example.toml").standardized.path
        let text = try String(contentsOfFile: example, encoding: .utf8)
        // Sections used only when present are documented commented out.
        for key in ConfigurationKey.all {
            #expect(text.contains("\n[\(key.section)]") || text.contains("\n#[\(key.section)]"), "section [\(key.section)] is documented")
            #expect(text.contains("\n\(key.name) = ") || text.contains("\n#\(key.name) = "), "\(key.path) is documented")
        }
        let fromExample = try loader(file: example).load().configuration
        var defaults = try loader().load().configuration
        defaults.file = fromExample.file
        defaults.origins = fromExample.origins
        defaults.presentSections = fromExample.presentSections
        #expect(fromExample.clients.map(\.label) == ["qbittorrent"])
        #expect(fromExample == defaults, "the example shows the defaults")
    }

    @Test(arguments: [
        ("[natpmp]\nprot = 5351\n", "config.toml:2: unknown key \"prot\" in [natpmp]"),
        ("[natpmp]\ninterfce = \"wg0\"\n", "config.toml:2: unknown key \"interfce\" in [natpmp] (did you mean \"interface\"?)"),
        ("[qbittorrent]\ninterface = \"wg0\"\n", "config.toml:2: unknown key \"interface\" in [qbittorrent] (it belongs in [natpmp])"),
        ("[natpmq]\n", "config.toml:1: unknown table [natpmq] (did you mean [natpmp]?)"),
        ("log_level = \"info\"\n", "config.toml:1: key \"log_level\" is outside any table (it belongs in [daemon])"),
        ("[natpmp]\nlease_seconds = \"60\"\n", "config.toml:2: lease_seconds must be a whole number, not a string"),
        ("[natpmp]\nlease_seconds = 0\n", "config.toml:2: lease_seconds 0 is out of range (2 to 86400 seconds)"),
        ("[natpmp]\ngateway = \"10.2.0\"\n", "config.toml:2: gateway \"10.2.0\" is not an IPv4 address"),
        ("[natpmp]\ninterface = \"a very long name\"\n", "config.toml:2: interface \"a very long name\" is longer than 15 bytes, the kernel's limit"),
        ("[qbittorrent]\nurl = \"127.0.0.1:8080\"\n", "config.toml:2: url URL \"127.0.0.1:8080\" has no scheme (expected http:// or https://)"),
        ("[qbittorrent]\nurl = \"http://127.0.0.1:8080/\\r\\nX-Injected: 1\"\n", "config.toml:2: url URL \"http://127.0.0.1:8080/\\r\\nX-Injected: 1\" holds a space, a control character or a non-ASCII character"),
        ("[qbittorrent]\nurl = \"http://admin:hunter2@127.0.0.1:8080\"\n", "config.toml:2: url URL \"http://admin:***@127.0.0.1:8080\" must not carry credentials; use the password or API key settings"),
        ("[qbittorrent]\nurl = \"http://admin:hunter 2@127.0.0.1\"\n", "config.toml:2: url URL \"http://admin:***@127.0.0.1\" holds a space, a control character or a non-ASCII character"),
        ("[qbittorrent]\nurl = \"admin:hunter2@127.0.0.1:8080\"\n", "config.toml:2: url URL \"admin:***@127.0.0.1:8080\" has no scheme (expected http:// or https://)"),
        ("[gluetun]\nurl = \"http://h:80:80\"\n", "config.toml:2: url URL \"http://h:80:80\" has more than one port"),
        ("[qbittorrent]\nurl = \"https://[fd00::5:8080\"\n", "config.toml:2: url URL \"https://[fd00::5:8080\" has an unclosed IPv6 bracket"),
        ("[qbittorrent]\ntls_fingerprint = \"AB:CD\"\n", "config.toml:2: tls_fingerprint \"AB:CD\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
        ("[qbittorrent]\nca_file = \"/ca.pem\"\ntls_verify = false\n", "config.toml:3: set only one of [qbittorrent].ca_file, tls_fingerprint and tls_verify = false"),
        ("[qbittorrent]\nbind_interface = \"yes\"\n", "config.toml:2: bind_interface must be true or false, not a string"),
        ("[daemon]\nlog_level = \"loud\"\n", "config.toml:2: log_level \"loud\" is not a log level (error, warning, notice, info or debug)"),
        ("[daemon]\nmetrics_listen = \"localhost:9834\"\n", "config.toml:2: metrics_listen \"localhost\" is not a numeric IP address"),
        ("[daemon]\nmetrics_listen = \"127.0.0.1:0\"\n", "config.toml:2: metrics_listen \"127.0.0.1:0\" has a bad port (1-65535)"),
        ("[daemon]\nmetrics_listen = \"127.0.0.1:+80\"\n", "config.toml:2: metrics_listen \"127.0.0.1:+80\" has a bad port (1-65535)"),
        ("[daemon]\nmetrics_listen = \"+9834\"\n", "config.toml:2: metrics_listen \"+9834\" is not address:port (e.g. 127.0.0.1:9834)"),
        ("[source]\nstrategy = \"upnp\"\n", "config.toml:2: strategy \"upnp\" is not a strategy (auto, file, natpmp, gluetun, static, perfectprivacy, command, pia, pcp or privatevpn)"),
        ("[natpmp]\nlease_seconds = 60\nrenew_seconds = 60\n", "config.toml:3: renew_seconds (60) must be shorter than lease_seconds (60), or the mapping lapses between renewals"),
        ("[proton]\nport_file = \"~/forwarded_port\"\n", "config.toml:2: port_file \"~/forwarded_port\": ~ is not expanded; write the full path"),
    ])
    func eachKindOfValueErrorNamesItsLine(text: String, expected: String) {
        #expect(loadError(text) == expected)
    }

    @Test func httpsURLsLoadWithHowTheirCertificateIsChecked() throws {
        let directory = TemporaryDirectory()
        let fingerprint = String(repeating: "ab:", count: 31) + "ab"
        let file = directory.write("config.toml", """
            [qbittorrent]
            url = "https://[fd00::5]:8443/qbt/"
            ca_file = "ca.pem"
            [gluetun]
            url = "https://gluetun.lan"
            tls_fingerprint = "\(fingerprint)"

            """)
        let loaded = try loader(file: file).load()
        #expect(loaded.configuration.qbittorrent.url.description == "https://[fd00::5]:8443/qbt")
        #expect(loaded.configuration.qbittorrent.tls.options == TLSOptions(verification: .chain(caFile: "\(directory.path)/ca.pem")))
        #expect(loaded.configuration.gluetun.tls.options == TLSOptions(verification: .fingerprint([UInt8](repeating: 0xAB, count: 32))))
        #expect(loaded.warnings.isEmpty)
        let unchecked = directory.write("unchecked.toml", "[qbittorrent]\nurl = \"https://nas.lan:8080\"\ntls_verify = false\n")
        #expect(try loader(file: unchecked).load().warnings
            == ["[qbittorrent].tls_verify = false: the certificate of https://nas.lan:8080 is not checked; anyone on the path can read the password (set ca_file or tls_fingerprint instead)"])
    }

    @Test func environmentOverridesTheFileAndFlagsOverrideBoth() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "[natpmp]\ninterface = \"wg0\"\ngateway = \"10.2.0.1\"\n[qbittorrent]\nurl = \"http://127.0.0.1:1\"\n")
        let configuration = try loader(
            file: file,
            environment: ["PORTSYNC_NATPMP_INTERFACE": "wg1", "PORTSYNC_NATPMP_GATEWAY": "10.9.0.1",
                          "PORTSYNC_QBITTORRENT_CHECK_SECONDS": "30", "PORTSYNC_QBITTORRENT_BIND_INTERFACE": "yes"],
            flags: [FlagSetting(keyPath: "natpmp.interface", text: "wg2", origin: "--interface")]
        ).load().configuration
        #expect(configuration.natpmp.interface == "wg2")
        #expect(configuration.origins["natpmp.interface"] == "--interface")
        #expect(configuration.natpmp.gateway == IPv4Address(10, 9, 0, 1))
        #expect(configuration.origins["natpmp.gateway"] == "PORTSYNC_NATPMP_GATEWAY")
        #expect(configuration.qbittorrent.url.port == 1)
        #expect(configuration.qbittorrent.checkSeconds == 30)
        #expect(configuration.qbittorrent.bindInterface)
    }

    @Test(arguments: [
        (["PORTSYNC_QBITORRENT_URL": "http://x"], "PORTSYNC_QBITORRENT_URL: unknown setting (did you mean \"PORTSYNC_QBITTORRENT_URL\"?)"),
        (["PORTSYNC_NATPMP_LEASE_SECONDS": "sixty"], "PORTSYNC_NATPMP_LEASE_SECONDS: \"sixty\" is not a whole number"),
        (["PORTSYNC_QBITTORRENT_DISABLE_UPNP": "maybe"], "PORTSYNC_QBITTORRENT_DISABLE_UPNP: \"maybe\" is not true or false"),
        (["PORTSYNC_CONFIG": "/nonexistent/config.toml"], "PORTSYNC_CONFIG: /nonexistent/config.toml: no such file"),
        (["PORTSYNC_QBITTORRENT_PASSWORD": ""], "PORTSYNC_QBITTORRENT_PASSWORD: is set but empty"),
    ])
    func environmentErrorsNameTheVariable(environment: [String: String], expected: String) {
        #expect(throws: ConfigurationError.self) { try loader(environment: environment).load() }
        do { _ = try loader(environment: environment).load() } catch { #expect(error.description == expected) }
    }

    @Test func theFileIsFoundInTheSearchPath() throws {
        let home = TemporaryDirectory()
        home.write(".config/portsync/config.toml", "[natpmp]\ninterface = \"fromhome\"\n")
        #expect(try loader(home: home.path).load().configuration.natpmp.interface == "fromhome")
        let xdg = TemporaryDirectory()
        xdg.write("portsync/config.toml", "[natpmp]\ninterface = \"fromxdg\"\n")
        let configuration = try loader(environment: ["XDG_CONFIG_HOME": xdg.path], home: home.path).load().configuration
        #expect(configuration.natpmp.interface == "fromxdg")
        #expect(configuration.file == "\(xdg.path)/portsync/config.toml")
        #expect(throws: ConfigurationError("--config", "/nonexistent.toml: no such file")) {
            try loader(file: "/nonexistent.toml").load()
        }
    }

    @Test func secretsComeFromFileCredentialsDirectoryOrEnvironmentInThatOrder() throws {
        let directory = TemporaryDirectory()
        let passwordFile = directory.write("password", "from-file\n")
        directory.write("credentials/qbittorrent-password", "from-credentials\r\n")
        directory.write("credentials/qbittorrent-api-key", "qbt_0123456789012345678901234567")
        let environment = ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials", "PORTSYNC_QBITTORRENT_PASSWORD": "from-env"]

        let explicit = try loader(environment: environment,
                                  flags: [FlagSetting(keyPath: "qbittorrent.password_file", text: passwordFile, origin: "--password-file")]).load()
        #expect(explicit.credentials.qbittorrentPassword?.value == "from-file")
        #expect(explicit.credentials.qbittorrentPassword?.origin == "file \(passwordFile)")

        let credentials = try loader(environment: environment).load().credentials
        #expect(credentials.qbittorrentPassword?.value == "from-credentials")
        #expect(credentials.qbittorrentAPIKey?.value == "qbt_0123456789012345678901234567")

        let fromEnvironment = try loader(environment: ["PORTSYNC_QBITTORRENT_PASSWORD": "from-env"]).load()
        #expect(fromEnvironment.credentials.qbittorrentPassword?.value == "from-env")
    }

    @Test func secretFileProblemsAreClearAndNeverShowTheSecret() throws {
        let directory = TemporaryDirectory()
        let empty = directory.write("empty", "\n")
        let twoLines = directory.write("two", "hunter2\nhunter3\n")
        let open = directory.write("open", "hunter2\n", mode: 0o644)
        func attempt(_ path: String) throws -> LoadedConfiguration {
            try loader(flags: [FlagSetting(keyPath: "qbittorrent.password_file", text: path, origin: "--password-file")]).load()
        }
        #expect(throws: ConfigurationError("--password-file", "secret file \(empty) is empty")) { try attempt(empty) }
        #expect(throws: ConfigurationError("--password-file", "secret file \(twoLines) holds more than one line")) { try attempt(twoLines) }
        #expect(throws: ConfigurationError("--password-file", "cannot read secret file /nonexistent: open: No such file or directory (errno 2)")) {
            try attempt("/nonexistent")
        }
        let loaded = try attempt(open)
        #expect(loaded.warnings == ["secret file \(open) is readable by every user (mode 644); chmod 600 it"])
        let secret = try #require(loaded.credentials.qbittorrentPassword)
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        let printed = ConfigurationPrinter.render(loaded)
        #expect(!printed.contains("hunter2"))
        #expect(printed.contains("# qBittorrent password: set (file \(open))"))
    }

    /// 0640 with a group of portsync's own is how a service is given a secret; with a group
    /// portsync is not in, that group reads the password for nothing. Root only: chown to a
    /// group the process is not in.
    @Test func aSecretReadableByAGroupPortsyncIsNotInIsWarnedAbout() throws {
        guard getuid() == 0 else { return print("skipped: needs root to give a file to another group") }
        let directory = TemporaryDirectory()
        let ours = directory.write("ours", "hunter2\n", mode: 0o640)
        let theirs = directory.write("theirs", "hunter2\n", mode: 0o640)
        let stranger = (40_000...60_000).map { gid_t($0) }.first { !ProcessEnvironment.groups.contains($0) }!
        #expect(chown(theirs, 0, stranger) == 0)
        func warnings(_ path: String) throws -> [String] {
            try loader(flags: [FlagSetting(keyPath: "qbittorrent.password_file", text: path, origin: "--password-file")]).load().warnings
        }
        #expect(try warnings(ours) == [])
        #expect(try warnings(theirs) == ["secret file \(theirs) is readable by group \(stranger) (mode 640), which portsync does not run in; chmod 600 it, or chgrp it to a group of portsync's"])
        let credentials = directory.path + "/credentials"
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: false)
        let credential = directory.write("credentials/qbittorrent-password", "hunter2\n", mode: 0o640)
        #expect(chown(credential, 0, stranger) == 0)
        #expect(try loader(environment: ["CREDENTIALS_DIRECTORY": credentials]).load().warnings == [], "systemd's credentials are its business")
    }

    @Test(arguments: [("127.0.0.1:9834", false), ("127.4.5.6:9834", false), ("[::1]:9834", false),
                      ("0.0.0.0:9834", true), ("10.0.0.5:9834", true), ("[::]:9834", true)])
    func metricsBeyondThisMachineAreWarnedAbout(listen: String, warned: Bool) throws {
        let loaded = try loader(flags: [FlagSetting(keyPath: "daemon.metrics_listen", text: listen, origin: "--metrics-listen")]).load()
        #expect(loaded.warnings.contains { $0.hasPrefix("metrics_listen \(listen) is reachable from other machines") } == warned, "\(loaded.warnings)")
    }

    @Test func rootThroughSudoIsToldWhereTheDesktopAppsFileIs() throws {
        func warnings(_ environment: [String: String], userID: UInt32 = 0, flags: [FlagSetting] = []) throws -> [String] {
            try ConfigurationLoader(environment: environment, userID: userID, workingDirectory: "/", explicitFile: nil, flags: flags).load().warnings
        }
        #expect(try warnings(["SUDO_UID": "1000"]) == ["running as root through sudo: the ProtonVPN app of user 1000 writes /run/user/1000/Proton/VPN/forwarded_port, not /run/Proton/VPN/forwarded_port; the desktop setup runs as that user (systemctl --user enable --now portsync), not as root"])
        #expect(try warnings([:]) == [], "root without sudo: a system setup")
        #expect(try warnings(["SUDO_UID": "1000"], userID: 1000) == [])
        #expect(try warnings(["SUDO_UID": "1000"], flags: [FlagSetting(keyPath: "proton.port_file", text: "/run/x/forwarded_port", origin: "--port-file")]) == [],
                "a port file chosen on purpose")
        #expect(try warnings(["SUDO_UID": "1000"], flags: [FlagSetting(keyPath: "source.strategy", text: "natpmp", origin: "--strategy")]) == [])
    }

    @Test func aByteOrderMarkAtTheStartIsAccepted() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "\u{FEFF}[natpmp]\ninterface = \"wg0\"\n")
        #expect(try loader(file: file).load().configuration.natpmp.interface == "wg0")
        #expect(loadError("[natpmp]\ninterface = \"wg0\"\n\u{FEFF}") != nil, "only at the start")
    }

    @Test func everySecretSourceGetsTheSameCheckAndNoneShowsTheSecret() throws {
        let directory = TemporaryDirectory()
        for variable in ConfigurationLoader.secretVariables {
            for (value, problem) in [("k\r\n\r\n\r\n", "holds more than one line"), ("hunter2\nX-Injected: 1", "holds more than one line"),
                                     ("hunter2\r", "holds more than one line"), ("hunter\u{1B}2", "holds a control character"),
                                     ("", "is set but empty")] {
                #expect(throws: ConfigurationError(variable, problem)) { try loader(environment: [variable: value]).load() }
            }
        }
        let control = directory.write("credentials/qbittorrent-api-key", "hunter\u{7F}2\n")
        #expect(throws: ConfigurationError("$CREDENTIALS_DIRECTORY", "secret file \(control) holds a control character")) {
            try loader(environment: ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials"]).load()
        }
        let tab = try loader(environment: ["PORTSYNC_GLUETUN_API_KEY": "a\tb"]).load()
        #expect(tab.credentials.gluetunAPIKey?.value == "a\tb")
    }

    @Test func theRenderedConfigurationIsValidTOMLThatLoadsBackTheSame() throws {
        let directory = TemporaryDirectory()
        let original = try loader(environment: ["PORTSYNC_NATPMP_GATEWAY": "10.2.0.1", "PORTSYNC_DAEMON_METRICS_LISTEN": "9834",
                                                "PORTSYNC_QBITTORRENT_USERNAME": "we\"ird\\name"]).load()
        let file = directory.write("rendered.toml", ConfigurationPrinter.render(original))
        var reloaded = try loader(file: file).load().configuration
        reloaded.file = nil
        reloaded.origins = original.configuration.origins
        #expect(reloaded == original.configuration)
    }
}
