import Domain
import HTTP
import Reactor
import Sinks
import Testing
@testable import portsync

/// `[notify]`: the keys reach `NotifySettings`, the token comes from a file, a credential or
/// the environment (never the configuration file), the preset follows the URL when not given,
/// and every mistake is one line naming the key.
@Suite struct NotifyConfigurationTests {
    @Test func theNotifySectionMakesTheNotifiersSettingsWithItsTokenFromAFile() throws {
        let directory = TemporaryDirectory()
        let tokenFile = directory.write("ntfy-token", "tk_from_the_file\n")
        let file = directory.write("config.toml", """
            [notify]
            url = "https://ntfy.example.net/portsync-alerts"
            preset = "ntfy"
            events = ["port-changed", "connectability-lost", "port-changed"]
            token_file = "\(tokenFile)"
            tls_fingerprint = "\(String(repeating: "AB:", count: 31))AB"
            """)
        let loaded = try loader(file: file).load()
        let notify = try #require(SyncPlan(loaded).notify)
        #expect(notify.url == (try HTTPURL(parsing: "https://ntfy.example.net/portsync-alerts")))
        #expect(notify.preset == .ntfy && notify.events == [.portChanged, .connectabilityLost])
        #expect(notify.token?.value == "tk_from_the_file" && notify.token?.origin == "file \(tokenFile)")
        #expect(notify.tls.verification == .fingerprint([UInt8](repeating: 0xAB, count: 32)))
        #expect(loaded.configuration.usesHTTPS, "OpenSSL is needed for an https webhook")
        let printed = ConfigurationPrinter.render(loaded)
        #expect(printed.contains("[notify]") && printed.contains(#"events = ["port-changed", "connectability-lost"]"#))
        #expect(printed.contains("# notify token: set (file \(tokenFile))") && !printed.contains("tk_from_the_file"))
    }

    @Test func withoutAURLThereIsNoNotifierAndConfigPrintsNoSection() throws {
        let loaded = try loader().load()
        #expect(SyncPlan(loaded).notify == nil)
        #expect(!ConfigurationPrinter.render(loaded).contains("[notify]"))
        #expect(loaded.configuration.notify.summary == nil)
    }

    @Test func thePresetFollowsTheURLAndTheStartLineSaysSo() throws {
        let loaded = try loader(environment: ["PORTSYNC_NOTIFY_URL": "https://discord.com/api/webhooks/123/AbC-token"]).load()
        #expect(SyncPlan(loaded).notify?.preset == .discord)
        #expect(loaded.configuration.notify.summary == "notifications to https://discord.com (discord, as the URL says)",
                "the start line names the host, not the path with the webhook's token")
        let gotify = try loader(environment: ["PORTSYNC_NOTIFY_URL": "https://push.example.net", "PORTSYNC_NOTIFY_PRESET": "gotify",
                                              "PORTSYNC_NOTIFY_TOKEN": "app-token"]).load()
        #expect(SyncPlan(gotify).notify?.preset == .gotify && SyncPlan(gotify).notify?.token?.value == "app-token")
        #expect(gotify.configuration.notify.summary == "notifications to https://push.example.net (gotify)")
        let generic = try loader(environment: ["PORTSYNC_NOTIFY_URL": "http://127.0.0.1:9000/hook"]).load()
        #expect(SyncPlan(generic).notify?.preset == .json)
    }

    @Test func theTokenComesFromSystemdsCredentials() throws {
        let directory = TemporaryDirectory()
        directory.write("credentials/notify-token", "from-systemd")
        let loaded = try loader(environment: ["PORTSYNC_NOTIFY_URL": "https://push.example.net", "PORTSYNC_NOTIFY_PRESET": "gotify",
                                              "CREDENTIALS_DIRECTORY": "\(directory.path)/credentials"]).load()
        #expect(SyncPlan(loaded).notify?.token?.value == "from-systemd")
    }

    @Test func eachMistakeIsOneLineNamingTheKey() {
        #expect(loadError("[notify]\nurl = \"ftp://ntfy.sh/x\"\n") == #"config.toml:2: url URL "ftp://ntfy.sh/x" scheme must be http or https"#)
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh/x\"\npreset = \"slack\"\n")
            == #"config.toml:3: preset "slack" is not a preset (auto, json, ntfy, gotify or discord)"#)
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh/x\"\nevents = [\"port-change\"]\n")
            == #"config.toml:3: events "port-change" is not an event (port-changed, client-failing, connectability-lost or connectability-recovered)"#)
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh/x\"\nevents = []\n")
            == "config.toml:3: events is empty: leave it out to send every event, or leave url empty to send none")
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh\"\n")
            == "config.toml:2: [notify] url: ntfy needs the topic in the URL, e.g. https://ntfy.sh/your-topic")
        #expect(loadError("[notify]\nurl = \"https://push.example.net\"\npreset = \"gotify\"\n")
            == "config.toml:2: [notify] url: gotify needs the application's token: set token_file (or the credential notify-token, or PORTSYNC_NOTIFY_TOKEN)")
        #expect(loadError("[notify]\nurl = \"https://discord.com/api/webhooks/123\"\n")
            == "config.toml:2: [notify] url: the Discord webhook needs its token: at the end of the URL, or in token_file")
        #expect(loadError("[notify]\npreset = \"ntfy\"\n") == "config.toml:2: [notify] has preset but no url")
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh/x\"\ntoken = \"tk_in_the_file\"\n")?
            .hasPrefix("config.toml:3: a secret is not read from the configuration file") == true)
        #expect(loadError("[notify]\nurl = \"https://ntfy.sh/x\"\nca_file = \"/etc/ca.pem\"\ntls_verify = false\n")
            == "config.toml:4: set only one of [notify].ca_file, tls_fingerprint and tls_verify = false")
    }

    @Test func anUncheckedCertificateIsWarnedAboutWithoutThePath() throws {
        let loaded = try loader(environment: ["PORTSYNC_NOTIFY_URL": "https://discord.com/api/webhooks/123/AbC-token",
                                              "PORTSYNC_NOTIFY_TLS_VERIFY": "false"]).load()
        let warning = loaded.warnings.first { $0.hasPrefix("[notify]") }
        #expect(warning?.contains("https://discord.com is not checked") == true && warning?.contains("AbC-token") == false, "\(loaded.warnings)")
    }
}
