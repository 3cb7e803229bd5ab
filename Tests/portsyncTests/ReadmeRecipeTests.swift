import Foundation
import Testing
import TestSupport
@testable import portsync

/// The README's recipes, as written: every configuration block is accepted by the built
/// binary, every portsync command and option it shows exists, each password step leaves the
/// password where portsync reads it (the system service's as its unit passes it), the units
/// the recipes install verify, and the completion commands work in a fresh home. The Gluetun
/// recipe is run whole by scripts/test-container.
@Suite struct ReadmeRecipeTests {
    struct Block {
        let language: String
        let text: String
        /// The heading the block is under.
        let section: String
    }

    static let readme = (try? String(contentsOfFile: "\(DocumentationTests.root)/README.md", encoding: .utf8)) ?? ""

    static let blocks: [Block] = {
        var blocks: [Block] = []
        var section = ""
        var open: (language: String, lines: [String])?
        for line in readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if var block = open {
                if line == "```" {
                    blocks.append(Block(language: block.language, text: block.lines.map { $0 + "\n" }.joined(), section: section))
                    open = nil
                } else {
                    block.lines.append(line)
                    open = block
                }
            } else if line.hasPrefix("```") {
                open = (String(line.dropFirst(3)), [])
            } else if line.hasPrefix("#") {
                section = String(line.drop { $0 == "#" }.dropFirst())
            }
        }
        return blocks
    }()

    /// The shell lines of the blocks under `section`, without their comments.
    static func commands(in section: String) -> [String] {
        blocks.filter { $0.language == "sh" && $0.section == section }
            .flatMap { $0.text.split(separator: "\n").map { withoutComment(String($0)) } }
    }

    static func withoutComment(_ line: String) -> String {
        let code = line.range(of: " #").map { String(line[..<$0.lowerBound]) } ?? line
        return code.trimmingCharacters(in: .whitespaces)
    }

    /// The one line of `section` that writes a password from stdin.
    static func passwordStep(in section: String) throws -> String {
        let steps = commands(in: section).filter { $0.contains("install -Dm600 /dev/stdin ") }
        #expect(steps.count == 1, "\(section): one password step, not \(steps)")
        return try #require(steps.first)
    }

    /// The configuration blocks of `section` (Gluetun's own config.toml is not portsync's).
    static func configuration(in section: String) -> String {
        blocks.filter { $0.language == "toml" && $0.section == section && !$0.text.contains("[[roles]]") }.map(\.text).joined(separator: "\n")
    }

    /// Runs `script` with bash, stdin from `input`; its status and output.
    static func bash(_ script: String, input: String = "/dev/null", environment: [String: String]) throws -> (Int32?, String) {
        let directory = TemporaryDirectory()
        let child = try ChildProcess(executable: "/bin/bash", arguments: ["-euo", "pipefail", "-c", "exec <'\(input)'\n" + script],
                                     environment: environment, outputPath: "\(directory.path)/output")
        let status = child.wait(seconds: 30)
        return (status, child.output)
    }

    @Test func everyConfigurationBlockIsAccepted() throws {
        let configurations = Self.blocks.filter { $0.language == "toml" && !$0.text.contains("[[roles]]") }
        #expect(configurations.count >= 4, "the recipes' configuration blocks: \(configurations.count)")
        #expect(Self.blocks.filter { $0.language == "toml" && $0.text.contains("[[roles]]") }.count == 1,
                "one Gluetun role, which scripts/test-container hands the Gluetun stand-in")
        for block in configurations {
            let directory = TemporaryDirectory()
            let file = directory.write("config.toml", block.text)
            // A relative *_file is next to the configuration: there, as its recipe's password step leaves it.
            for line in block.text.split(separator: "\n") {
                let parts = Self.withoutComment(String(line)).split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2, parts[0].hasSuffix("_file"), parts[1].hasPrefix("\""), !parts[1].hasPrefix("\"/") {
                    directory.write(String(parts[1].dropFirst().dropLast()), "a-test-secret\n")
                }
            }
            let (status, output) = try Child.run(["config", "--config", file], environment: ["HOME": directory.path, "XDG_RUNTIME_DIR": directory.path])
            #expect(status == 0 && !output.contains("warning"), "\(block.section):\n\(block.text)\(output)")
        }
    }

    @Test func everyPortsyncCommandAndOptionExists() throws {
        var lines = Self.blocks.filter { $0.language == "sh" }.flatMap { $0.text.split(separator: "\n").map { Self.withoutComment(String($0)) } }
        lines += Self.readme.matches(of: /`((?:sudo )?portsync [^`]+)`/).map { String($0.output.1) }
        var help: [String: String] = [:]
        var checked = 0
        for line in lines {
            for segment in line.split(whereSeparator: { "|;()".contains($0) }).flatMap({ $0.split(separator: "&&") }) {
                var words = segment.split(separator: " ").map(String.init)
                if words.first == "sudo" { words.removeFirst() }
                if words.starts(with: ["swift", "run"]), let product = words.firstIndex(of: "portsync") { words.removeFirst(product) }
                guard let program = words.first else { continue }
                if program.hasPrefix("scripts/") || program.hasPrefix("./scripts/") {
                    let script = "\(DocumentationTests.root)/\(program.replacingOccurrences(of: "./", with: ""))"
                    #expect(FileManager.default.isExecutableFile(atPath: script), "\(line): no \(program)")
                    let text = (try? String(contentsOfFile: script, encoding: .utf8)) ?? ""
                    for option in words.dropFirst() where option.hasPrefix("--") {
                        #expect(text.contains("\(option))"), "\(line): \(program) has no \(option)")
                    }
                    checked += 1
                    continue
                }
                guard program == "portsync" || program.hasSuffix("/portsync"), words.count > 1 else { continue }
                let command = words[1]
                if command == "completions" {
                    let (status, output) = try Child.run(["completions", words.count > 2 ? words[2] : ""])
                    #expect(status == 0, "\(line): \(output)")
                } else {
                    if help[command] == nil {
                        let (status, output) = try Child.run([command, "--help"])
                        #expect(status == 0, "\(line): portsync has no command \(command): \(output)")
                        help[command] = output
                    }
                    for option in words.dropFirst(2) where option.hasPrefix("--") {
                        let name = String(option.split(separator: "=").first ?? "")
                        #expect(help[command]!.contains("  \(name) ") || help[command]!.contains("  \(name)["), "\(line): portsync \(command) has no \(name)")
                    }
                }
                checked += 1
            }
        }
        #expect(checked >= 15, "commands checked: \(checked)")
    }

    @Test func theDesktopPasswordIsWhereTheConfigurationSaysAndUnwarned() throws {
        let section = "The ProtonVPN app on the desktop"
        let home = TemporaryDirectory()
        let password = home.write("typed", "a-test-password\n")
        let (status, output) = try Self.bash(try Self.passwordStep(in: section), input: password, environment: ["HOME": home.path, "PATH": "/usr/bin:/bin"])
        #expect(status == 0, "\(output)")
        // scripts/install --user puts the configuration there; the recipe sets its key.
        #expect(Self.commands(in: section).contains("scripts/install --user"))
        home.write(".config/portsync/config.toml", Self.configuration(in: section))
        let (configStatus, config) = try Child.run(["config"], environment: ["HOME": home.path, "XDG_RUNTIME_DIR": home.path])
        #expect(configStatus == 0 && !config.contains("warning"), "\(config)")
        #expect(config.contains("# qBittorrent password: set (file \(home.path)/.config/portsync/qbittorrent-password)"), "\(config)")
        #expect(!config.contains("a-test-password"))
    }

    /// What systemd does with the unit's LoadCredential=, done by hand: the file the recipe
    /// writes, copied to $CREDENTIALS_DIRECTORY under the credential's id.
    @Test func theSystemPasswordReachesTheServiceAsItsUnitPassesIt() throws {
        let section = "WireGuard with NAT-PMP"
        #expect(Self.commands(in: section).contains("sudo scripts/install --system"))
        let step = try Self.passwordStep(in: section)
        let target = try #require(step.split(separator: " ").last.map(String.init))
        let directory = TemporaryDirectory()
        let units = "\(directory.path)/units"
        try FileManager.default.createDirectory(atPath: units, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(DocumentationTests.root)/systemd/portsync-system.service", toPath: "\(units)/portsync.service")
        let credentials = try #require(ServiceCredentials.find(unit: "portsync.service", searchPath: [units]))
        #expect(credentials.path(of: "qbittorrent-password") == target, "the unit reads what the recipe writes: \(credentials.sources)")

        let written = "\(directory.path)/root\(target)"
        let password = directory.write("typed", "a-test-password\n")
        let asRoot = step.replacingOccurrences(of: "sudo ", with: "").replacingOccurrences(of: target, with: written)
        let (status, output) = try Self.bash(asRoot, input: password, environment: ["PATH": "/usr/bin:/bin"])
        #expect(status == 0, "\(output)")
        try FileManager.default.createDirectory(atPath: "\(directory.path)/credentials", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: written, toPath: "\(directory.path)/credentials/qbittorrent-password")
        let file = directory.write("config.toml", Self.configuration(in: section))
        let (configStatus, config) = try Child.run(["config", "--config", file], environment: ["CREDENTIALS_DIRECTORY": "\(directory.path)/credentials"])
        #expect(configStatus == 0 && !config.contains("warning"), "\(config)")
        #expect(config.contains("# qBittorrent password: set (file \(directory.path)/credentials/qbittorrent-password)"), "\(config)")
    }

    @Test(.enabled(if: SystemdTools.analyze != nil, "systemd-analyze is not installed (./scripts/test installs it as root)"))
    func theUnitsTheRecipesInstallVerify() throws {
        let units = UnitFileTests()
        for (section, command, unit) in [("The ProtonVPN app on the desktop", "scripts/install --user", "portsync.service"),
                                         ("WireGuard with NAT-PMP", "sudo scripts/install --system", "portsync-system.service")] {
            #expect(Self.commands(in: section).contains(command), "\(section): \(command)")
            let directory = TemporaryDirectory()
            let staged = try units.staged(unit, as: "portsync.service", in: directory)
            var arguments = ["verify", staged]
            var runtime: String?
            if unit == "portsync.service" {
                runtime = "\(directory.path)/runtime"
                try FileManager.default.createDirectory(atPath: runtime!, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                arguments.insert("--user", at: 1)
            }
            let (status, output) = try units.analyze(arguments, runtime: runtime)
            #expect(status == 0 && output.isEmpty, "\(unit): \(output)")
        }
    }

    /// The completion commands in a fresh home, with the binary the tests built for
    /// `.build/release/portsync` (the `swift build -c release` line is what made it here).
    @Test func theCompletionCommandsWorkInAFreshHome() throws {
        let home = TemporaryDirectory()
        let lines = Self.commands(in: "Installing").filter { !$0.hasPrefix("scripts/package") && !$0.hasPrefix("sudo ") }
        #expect(lines.first == "swift build -c release", "\(lines)")
        let script = lines.dropFirst().map { $0.replacingOccurrences(of: ".build/release/portsync", with: portsyncBinary) }.joined(separator: "\n")
        let (status, output) = try Self.bash(script, environment: ["HOME": home.path, "PATH": "/usr/bin:/bin"])
        #expect(status == 0, "\(output)")
        let installed = ["bash": ".local/share/bash-completion/completions/portsync", "zsh": ".local/share/zsh/vendor-completions/_portsync",
                         "fish": ".local/share/fish/vendor_completions.d/portsync.fish"]
        for (shell, path) in installed {
            #expect(try String(contentsOfFile: "\(home.path)/\(path)", encoding: .utf8) == Completions.script(for: Completions.Shell(rawValue: shell)!), "\(shell)")
        }
        // portsync on PATH, as after installing it.
        try FileManager.default.createDirectory(atPath: "\(home.path)/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(home.path)/bin/portsync", withDestinationPath: portsyncBinary)
        let environment = ["HOME": home.path, "PATH": "\(home.path)/bin:/usr/bin:/bin"]
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/fish") {
            let (_, fish) = try Self.bash("fish -c \"complete -C 'portsync run --set natpmp.le'\"", environment: environment)
            #expect(fish.hasPrefix("natpmp.lease_seconds="), "fish: \(fish)")
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/zsh") {
            let fpath = try #require(Self.readme.firstMatch(of: /`(fpath\+=\([^`]+\))`/)?.output.1)
            let (_, zsh) = try Self.bash("zsh -f -c '\(fpath); autoload -U compinit; compinit -u; print ${_comps[portsync]}'", environment: environment)
            #expect(zsh == "_portsync\n", "zsh: \(zsh)")
        }
        if FileManager.default.fileExists(atPath: "/usr/share/bash-completion/bash_completion") {
            let (_, bash) = try Self.bash("source /usr/share/bash-completion/bash_completion; _completion_loader portsync; complete -p portsync",
                                          environment: environment)
            #expect(bash.contains("_portsync"), "bash: \(bash)")
        }
    }
}
