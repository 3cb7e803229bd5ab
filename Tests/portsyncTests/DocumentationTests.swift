import Foundation
import Glibc
import TestSupport
import Testing
@testable import portsync

/// The man pages and the shell completions against the tables they describe: a key, a flag or
/// a command added without its documentation fails here, and so does a default that changed.
@Suite struct DocumentationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    static func page(_ name: String) throws -> String {
        try String(contentsOfFile: "\(root)/man/\(name)", encoding: .utf8)
    }

    /// `section.key` → the default the page gives, from its `.B key = value` items.
    static func documentedKeys() throws -> [String: String] {
        var keys: [String: String] = [:]
        var section: String?
        for line in try page("portsync.toml.5").split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(".SH [") {
                section = String(line.dropFirst(5).dropLast())
            } else if line.hasPrefix(".SH ") {
                section = nil
            } else if let section, line.hasPrefix(".B "), let equals = line.range(of: " = ") {
                let name = line[line.index(line.startIndex, offsetBy: 3)..<equals.lowerBound]
                keys["\(section).\(name)"] = String(line[equals.upperBound...]).replacing("\\(dq", with: "\"").replacing("\\-", with: "-")
            }
        }
        return keys
    }

    @Test func everyKeyIsInPortsyncTomlFiveWithItsDefault() throws {
        let documented = try Self.documentedKeys()
        let table = Set(ConfigurationKey.all.map(\.path))
        #expect(table.subtracting(documented.keys).sorted() == [], "keys without documentation in man/portsync.toml.5")
        #expect(Set(documented.keys).subtracting(table).sorted() == [], "documented keys that do not exist")
        let defaults = try loader(withTestDefaults: false).load().configuration
        for key in ConfigurationKey.all {
            // "$XDG_RUNTIME_DIR/…" depends on the machine; "(unset)" is no value at all.
            guard let page = documented[key.path], !page.contains("$"), !page.hasPrefix("(") else { continue }
            #expect(page == key.renderedValue(in: defaults), "\(key.path): the page says \(page)")
        }
    }

    @Test func everyCommandAndFlagIsInPortsyncOne() throws {
        let page = try Self.page("portsync.1").replacing("\\-", with: "-")
        for command in Command.allCases {
            #expect(page.contains(".BR \(command.rawValue) ") || page.contains(".B \(command.rawValue)\n"), "command \(command.rawValue)")
        }
        let flags = Command.allCases.flatMap { $0.ownFlags.map(\.flag) } + ConfigurationKey.all.compactMap(\.flag) + ["--config", "--set"]
        for flag in Set(flags).sorted() where !page.contains(" \(flag)") {
            Issue.record("option \(flag) is not in man/portsync.1")
        }
        for code in [ExitCode.success, .transientFailure, .usageOrConfiguration, .unsupported] {
            #expect(page.contains(".TP\n.B \(code.rawValue)\n"), "exit code \(code.rawValue)")
        }
    }

    /// The footer names the release, read from the tree (`man ./man/portsync.1`) as installed.
    @Test(arguments: ["portsync.1", "portsync.toml.5"])
    func theTitleLineNamesTheRelease(name: String) throws {
        let title = try #require(try Self.page(name).split(separator: "\n").first)
        #expect(title.contains("\"\(CommandLineInterface.version)\""), "\(name): \(title)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/man"), "man-db is not installed"),
          arguments: ["portsync.1", "portsync.toml.5"])
    func manRendersThePageWithoutAWarning(name: String) throws {
        let (status, output) = try run("/usr/bin/man", ["--warnings", "-E", "UTF-8", "-l", "\(Self.root)/man/\(name)"],
                                        environment: ["MANWIDTH": "80", "LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"])
        #expect(status == 0)
        #expect(!output.contains("warning:") && !output.contains("troff:"), "\(output.prefix(2000))")
        #expect(output.contains(name == "portsync.1" ? "EXIT STATUS" : "[qbittorrent]"))
    }

    /// bash's own completion machinery, fed the words a user typed.
    @Test func bashCompletesCommandsOptionsKeysAndValues() throws {
        let directory = TemporaryDirectory()
        let script = directory.write("portsync.bash", Completions.script(for: .bash))
        func complete(_ words: [String]) throws -> [String] {
            let quoted = words.map { "'\($0)'" }.joined(separator: " ")
            let program = "source '\(script)'; COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); _portsync; printf '%s\\n' \"${COMPREPLY[@]}\""
            let (status, output) = try run("/bin/bash", ["-c", program], environment: ["PATH": "/usr/bin:/bin"])
            #expect(status == 0, "\(output)")
            return output.split(separator: "\n").map(String.init)
        }
        #expect(try complete(["portsync", ""]).starts(with: ["run", "once", "doctor", "status", "history", "config", "completions", "help"]))
        #expect(try complete(["portsync", "run", "--set", "natpmp.le"]) == ["natpmp.lease_seconds="])
        #expect(try complete(["portsync", "once", "--js"]) == ["--json"])
        #expect(try complete(["portsync", "run", "--js"]) == [], "--json is not run's")
        #expect(try complete(["portsync", "run", "--strategy", "n"]) == ["natpmp"])
        #expect(try complete(["portsync", "doctor", "--qbit"]) == ["--qbittorrent-url"])
        #expect(try complete(["portsync", "completions", "f"]) == ["fish"])
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/fish"), "fish is not installed"))
    func fishCompletesKeys() throws {
        let directory = TemporaryDirectory()
        let script = directory.write("portsync.fish", Completions.script(for: .fish))
        let (syntax, errors) = try run("/usr/bin/fish", ["--no-execute", script], environment: ["PATH": "/usr/bin:/bin"])
        #expect(syntax == 0, "\(errors)")
        let (status, output) = try run("/usr/bin/fish", ["--no-config", "-c", "source '\(script)'; complete -C 'portsync run --set natpmp.le'"],
                                        environment: ["PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"])
        #expect(status == 0)
        #expect(output.split(separator: "\n").map { $0.split(separator: "\t").first.map(String.init) ?? "" } == ["natpmp.lease_seconds="], "\(output)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/zsh"), "zsh is not installed"))
    func zshReadsItsScript() throws {
        let directory = TemporaryDirectory()
        let script = directory.write("_portsync", Completions.script(for: .zsh))
        let (status, output) = try run("/usr/bin/zsh", ["-n", script], environment: ["PATH": "/usr/bin:/bin"])
        #expect(status == 0, "\(output)")
        #expect(try String(contentsOfFile: script, encoding: .utf8).contains("natpmp.lease_seconds="))
    }

    /// Runs a program to its end; its status and everything it printed.
    func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> (Int32?, String) {
        let directory = TemporaryDirectory()
        let child = try ChildProcess(executable: executable, arguments: arguments, environment: environment,
                                     outputPath: "\(directory.path)/output")
        let status = child.wait(seconds: 20)
        return (status, child.output)
    }
}
