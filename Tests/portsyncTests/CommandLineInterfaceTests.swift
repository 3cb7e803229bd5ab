import Testing
@testable import portsync

@Suite struct CommandLineInterfaceTests {
    @Test func commandsFlagsAndValues() throws {
        let parsed = try CommandLineInterface.parse(["run", "--trace", "--config", "/etc/p.toml", "--interface=wg0",
                                                     "--bind-interface", "--set", "natpmp.lease_seconds=120"])
        guard case .invocation(let invocation) = parsed else { Issue.record("not an invocation"); return }
        #expect(invocation.command == .run)
        #expect(invocation.trace)
        #expect(invocation.configFile == "/etc/p.toml")
        #expect(invocation.flags == [
            FlagSetting(keyPath: "natpmp.interface", text: "wg0", origin: "--interface"),
            FlagSetting(keyPath: "qbittorrent.bind_interface", text: "true", origin: "--bind-interface"),
            FlagSetting(keyPath: "natpmp.lease_seconds", text: "120", origin: "--set natpmp.lease_seconds"),
        ])
        guard case .invocation(let once) = try CommandLineInterface.parse(["once", "--json"]) else { return }
        #expect(once.json && once.command == .once)
    }

    @Test func helpAndVersion() throws {
        #expect(try CommandLineInterface.parse([]) == .help(CommandLineInterface.mainHelp))
        #expect(try CommandLineInterface.parse(["--version"]) == .version)
        #expect(try CommandLineInterface.parse(["help", "once"]) == .help(CommandLineInterface.help(for: .once)))
        #expect(try CommandLineInterface.parse(["status", "--help"]) == .help(CommandLineInterface.help(for: .status)))
        #expect(CommandLineInterface.help(for: .run).contains("--qbittorrent-url VALUE"))
        #expect(try CommandLineInterface.parse(["completions", "zsh"]) == .completions(.zsh))
        #expect(CommandLineInterface.mainHelp.contains("  completions print the completion script for bash, zsh or fish"))
        #expect(throws: UsageError(message: "completions takes one shell: bash, zsh, fish")) {
            try CommandLineInterface.parse(["completions", "tcsh"])
        }
    }

    @Test(arguments: [
        (["start"], "unknown command \"start\" (see portsync --help)"),
        (["rn"], "unknown command \"rn\" (did you mean \"run\"?) (see portsync --help)"),
        (["--trace"], "unknown option \"--trace\"; a command comes first (see portsync --help)"),
        (["run", "--tarce"], "unknown option \"--tarce\" for \"run\" (did you mean \"--trace\"?) (see portsync run --help)"),
        (["once", "--trace"], "unknown option \"--trace\" for \"once\" (see portsync once --help)"),
        (["run", "--json"], "unknown option \"--json\" for \"run\" (see portsync run --help)"),
        (["run", "--interface"], "--interface needs a value"),
        (["run", "--trace=yes"], "--trace takes no value"),
        (["run", "extra"], "unexpected argument \"extra\" for \"run\" (see portsync run --help)"),
        (["run", "--set", "lease=5"], "--set takes section.key=value, e.g. --set natpmp.lease_seconds=60"),
        (["run", "--password", "hunter2"], "--password is not accepted: secrets on the command line show in ps and shell history; use password_file, $CREDENTIALS_DIRECTORY or PORTSYNC_QBITTORRENT_PASSWORD"),
    ])
    func usageErrorsAreOneClearLine(arguments: [String], expected: String) {
        #expect(throws: UsageError(message: expected)) { try CommandLineInterface.parse(arguments) }
    }
}
