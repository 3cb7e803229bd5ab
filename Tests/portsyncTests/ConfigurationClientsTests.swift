import Domain
import Reactor
import Sinks
import Testing
@testable import portsync

/// `[transmission]`, `[deluge]` and named clients (`[qbittorrent.movies]`): which clients a
/// configuration asks for, their keys, secrets and errors.
@Suite struct ConfigurationClientsTests {
    func labels(_ text: String, environment: [String: String] = [:]) throws -> [String] {
        let directory = TemporaryDirectory()
        let loaded = try loader(file: directory.write("config.toml", text), environment: environment).load()
        return SyncPlan(loaded).sinks.map(\.label)
    }

    @Test func todaysFilesStillMeanOneQBittorrent() throws {
        #expect(try labels("") == ["qbittorrent"])
        #expect(try labels("[natpmp]\ninterface = \"wg0\"\n") == ["qbittorrent"])
        #expect(try labels("[qbittorrent]\nurl = \"http://127.0.0.1:8081\"\n") == ["qbittorrent"])
    }

    @Test func clientSectionsAreUsedOnlyWhenPresent() throws {
        #expect(try labels("[transmission]\n") == ["transmission"], "an empty table counts; no phantom qBittorrent")
        #expect(try labels("[deluge]\n[qbittorrent]\n") == ["qbittorrent", "deluge"])
        #expect(try labels("", environment: ["PORTSYNC_TRANSMISSION_URL": "http://127.0.0.1:9092"]) == ["transmission"])
        #expect(try labels("[qbittorrent.tv]\n") == ["qbittorrent.tv"])
        #expect(try labels("[qbittorrent]\n[qbittorrent.tv]\n[transmission.seedbox]\n[deluge]\n")
                    == ["qbittorrent", "deluge", "qbittorrent.tv", "transmission.seedbox"])
    }

    @Test func namedSectionsHaveTheKeysOfTheirKindAndTheirOwnSecrets() throws {
        let directory = TemporaryDirectory()
        let tv = directory.write("tv-password", "tv-secret\n", mode: 0o600)
        let deluge = directory.write("deluge-password", "deluge-secret\n", mode: 0o600)
        directory.write("credentials/transmission-password", "from-credentials\n")
        let file = directory.write("config.toml", """
            [qbittorrent]
            username = "main"
            [qbittorrent.tv]
            url = "http://127.0.0.1:8082"
            password_file = "tv-password"
            check_seconds = 30
            [transmission]
            url = "http://127.0.0.1:9092"
            username = "rpc"
            [deluge.box]
            password_file = "\(deluge)"
            reannounce = false
            """)
        let loaded = try loader(file: file, environment: ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials",
                                                          "PORTSYNC_QBITTORRENT_PASSWORD": "main-secret"]).load()
        let sinks = SyncPlan(loaded).sinks
        #expect(sinks.map(\.label) == ["qbittorrent", "transmission", "qbittorrent.tv", "deluge.box"])
        let main = try #require(sinks[0] as? QBittorrentSettings)
        #expect(main.url.port == 8080 && main.authentication == .password(username: "main", password: Secret(value: "main-secret", origin: "PORTSYNC_QBITTORRENT_PASSWORD")))
        let second = try #require(sinks[2] as? QBittorrentSettings)
        #expect(second.url.port == 8082 && second.checkInterval == .seconds(30))
        #expect(second.authentication == .password(username: "admin", password: Secret(value: "tv-secret", origin: "file \(tv)")),
                "a named section starts from the defaults, not from [qbittorrent]")
        let transmission = try #require(sinks[1] as? TransmissionSettings)
        #expect(transmission.client.url.port == 9092 && transmission.client.username == "rpc")
        #expect(transmission.client.password?.value == "from-credentials")
        let box = try #require(sinks[3] as? DelugeSettings)
        #expect(box.client.url.port == 8112 && box.client.password?.value == "deluge-secret" && !box.client.reannounce)
        #expect(loaded.configuration.clientSections.first { $0.name != nil }?.origins["qbittorrent.url"] == "\(file):4")

        let printed = ConfigurationPrinter.render(loaded)
        #expect(printed.contains("[qbittorrent.tv]\nurl = \"http://127.0.0.1:8082\""))
        #expect(printed.contains("[deluge.box]\nurl = \"http://127.0.0.1:8112\""))
        #expect(!printed.contains("[deluge]\n"))
        #expect(printed.contains("# qbittorrent.tv password: set (file \(tv))"))
        #expect(!printed.contains("secret"))
        let reloaded = try loader(file: directory.write("printed.toml", printed),
                                  environment: ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials"]).load()
        #expect(SyncPlan(reloaded).sinks.map(\.label) == sinks.map(\.label))
        #expect(reloaded.configuration.clientSections.map(\.values) == loaded.configuration.clientSections.map(\.values))
    }

    @Test(arguments: [
        ("[qbitorrent.tv]\n", "config.toml:1: unknown table [qbitorrent.tv] (did you mean [qbittorrent.tv]?)"),
        ("[transmision]\n", "config.toml:1: unknown table [transmision] (did you mean [transmission]?)"),
        ("[natpmp.wg1]\n", "config.toml:1: [natpmp] has no named instances; only [qbittorrent.NAME], [transmission.NAME], [deluge.NAME] do"),
        ("[qbittorrent.tv]\nbind = true\n", "config.toml:2: unknown key \"bind\" in [qbittorrent.tv]"),
        ("[deluge.box]\nbind_interface = true\n", "config.toml:2: unknown key \"bind_interface\" in [deluge.box] (it belongs in [qbittorrent])"),
        ("[transmission.a]\ncheck_seconds = 1\n", "config.toml:2: check_seconds 1 is out of range (10 to 86400 seconds)"),
        ("[deluge.box]\nurl = \"https://nas.lan/deluge/\"\ntls_verify = false\ntls_fingerprint = \"\(String(repeating: "ab", count: 32))\"\n",
         "config.toml:3: set only one of [deluge.box].ca_file, tls_fingerprint and tls_verify = false"),
    ])
    func mistakesAreOneLineWithFileAndLine(text: String, expected: String) {
        #expect(loadError(text) == expected)
    }

    @Test func portIndexPerClientNeedsGluetunAndPrintsAsACommentWhenUnset() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", "[source]\nstrategy = \"gluetun\"\n[qbittorrent]\n[qbittorrent.tv]\nport_index = 1\n[deluge]\nport_index = 2\n")
        let loaded = try loader(file: file).load()
        #expect(SyncPlan(loaded).sinks.map(\.portIndex) == [nil, 2, 1])
        let printed = ConfigurationPrinter.render(loaded)
        #expect(printed.contains("[qbittorrent]\n") && printed.contains("# port_index: not set\n"))
        let reloaded = try loader(file: directory.write("printed.toml", printed)).load()
        #expect(SyncPlan(reloaded).sinks.map(\.portIndex) == [nil, 2, 1])
        #expect(loadError("[qbittorrent.tv]\nport_index = 1\n")
                    == "config.toml:2: port_index in [qbittorrent.tv] needs a [source] strategy that forwards several ports (gluetun, perfectprivacy or command)")
        #expect(loadError("[source]\nstrategy = \"gluetun\"\n[transmission]\nport_index = 16\n") == "config.toml:4: port_index 16 is out of range (0 to 15)")
    }

    @Test func passwordsStayOutOfFlagsAndNamedSectionsOutOfTheEnvironment() throws {
        #expect(throws: ConfigurationError("PORTSYNC_QBITTORRENT_TV_URL", "unknown setting (did you mean \"PORTSYNC_QBITTORRENT_URL\"?)")) {
            try loader(environment: ["PORTSYNC_QBITTORRENT_TV_URL": "http://127.0.0.1:1"]).load()
        }
        let fromEnvironment = try loader(environment: ["PORTSYNC_DELUGE_PASSWORD": "env-secret"]).load()
        #expect(fromEnvironment.credentials["deluge", .password] == nil, "no [deluge]: not read")
        let withDeluge = try loader(environment: ["PORTSYNC_DELUGE_PASSWORD": "env-secret", "PORTSYNC_DELUGE_CHECK_SECONDS": "60"]).load()
        #expect(withDeluge.credentials["deluge", .password]?.value == "env-secret")
    }
}
