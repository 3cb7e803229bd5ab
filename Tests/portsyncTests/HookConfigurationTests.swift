import Reactor
import Sinks
import Testing
@testable import portsync

/// `[hook]` and `[qbittorrent].reannounce`: what is accepted, and one line with file:line for
/// what is not.
@Suite struct HookConfigurationTests {
    @Test func aHookSectionAddsTheHookToTheClients() throws {
        let directory = TemporaryDirectory()
        let file = directory.write("config.toml", """
            [qbittorrent]
            reannounce = false
            [hook]
            command = [
                "/usr/local/bin/open-port",  # the program
                "--tcp",
            ]
            timeout_seconds = 5
            """)
        let loaded = try loader(file: file).load()
        #expect(loaded.configuration.hook.command == ["/usr/local/bin/open-port", "--tcp"])
        #expect(loaded.configuration.hook.timeoutSeconds == 5)
        #expect(loaded.configuration.qbittorrent.reannounce == false)
        let plan = SyncPlan(loaded)
        #expect(plan.sinks.map(\.label) == ["qbittorrent", "hook"])
        let hook = try #require(plan.sinks.last as? HookSettings)
        #expect(hook.timeout == .seconds(5) && hook.command.count == 2)
        #expect((plan.sinks.first as? QBittorrentSettings)?.reannounce == false)
        #expect(ConfigurationPrinter.render(loaded).contains(#"command = ["/usr/local/bin/open-port", "--tcp"]"#))
    }

    @Test func withoutAHookSectionThereIsNoHookAndReannounceIsOn() throws {
        let loaded = try loader().load()
        #expect(SyncPlan(loaded).sinks.map(\.label) == ["qbittorrent"])
        #expect((SyncPlan(loaded).sinks.first as? QBittorrentSettings)?.reannounce == true)
        #expect(!ConfigurationPrinter.render(loaded).contains("[hook]"), "no [hook] with an empty command, which would not load")
    }

    @Test func aBareNameIsLookedUpOnPATHAndTheEnvironmentTakesAnArray() throws {
        let loaded = try loader(environment: ["PORTSYNC_HOOK_COMMAND": #"["logger", "-t", "portsync"]"#]).load()
        #expect(loaded.configuration.hook.command == ["logger", "-t", "portsync"])
        #expect(throws: ConfigurationError("PORTSYNC_HOOK_COMMAND", #""logger" is not an array of strings like ["/usr/bin/logger", "-t", "portsync"]"#)) {
            try loader(environment: ["PORTSYNC_HOOK_COMMAND": "logger"]).load()
        }
    }

    @Test func badCommandsAreOneLineWithFileAndLine() {
        #expect(loadError("[hook]\ncommand = \"/usr/bin/logger -t portsync\"\n")
            == "config.toml:2: command must be an array of strings (the program and its arguments, no shell), not a string")
        #expect(loadError("[hook]\ncommand = []\n") == "config.toml:2: command is empty: name the program to run")
        #expect(loadError("[hook]\n\ncommand = [\"bin/open-port\"]\n")
            == "config.toml:3: command \"bin/open-port\": the program must be an absolute path or a name found on PATH")
        #expect(loadError("[hook]\ncommand = [\"/bin/true\", 3]\n")?.hasPrefix("config.toml:2: ") == true)
        #expect(loadError("[hook]\ntimeout_seconds = 0\n") == "config.toml:2: timeout_seconds 0 is out of range (1 to 3600 seconds)")
        #expect(loadError("[hook]\ntimeout_seconds = 10\n") == "config.toml:2: [hook] has timeout_seconds but no command")
        #expect(loadError("[qbittorrent]\nreannounce = \"no\"\n") == "config.toml:2: reannounce must be true or false, not a string")
    }
}
