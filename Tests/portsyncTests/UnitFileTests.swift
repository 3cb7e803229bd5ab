import Foundation
import Testing
import TestSupport
@testable import portsync

enum SystemdTools {
    static let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The shipped units, checked by systemd's own tools, and the install script.
@Suite(.enabled(if: SystemdTools.analyze != nil, "systemd-analyze is not installed (./scripts/test installs it as root)"))
struct UnitFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    /// The unit, with ExecStart pointing at the binary just built (verify checks it exists).
    func staged(_ unit: String, as name: String, in directory: TemporaryDirectory) throws -> String {
        let text = try String(contentsOfFile: "\(Self.root)/systemd/\(unit)", encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/portsync", with: portsyncBinary)
            .replacingOccurrences(of: "%h/.local/bin/portsync", with: portsyncBinary)
        return directory.write(name, text, mode: 0o644)
    }

    /// `verify` looks up the units' Documentation= man pages: the ones in man/, as installed.
    func analyze(_ arguments: [String], runtime: String? = nil) throws -> (Int32?, String) {
        let directory = TemporaryDirectory()
        for (page, section) in [("portsync.1", "1"), ("portsync.toml.5", "5")] {
            let text = try String(contentsOfFile: "\(Self.root)/man/\(page)", encoding: .utf8)
            try FileManager.default.createDirectory(atPath: "\(directory.path)/man/man\(section)", withIntermediateDirectories: true)
            directory.write("man/man\(section)/\(page)", text, mode: 0o644)
        }
        var environment = ["PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "", "MANPATH": "\(directory.path)/man"]
        if let runtime { environment["XDG_RUNTIME_DIR"] = runtime }
        let child = try ChildProcess(executable: SystemdTools.analyze!, arguments: arguments, environment: environment,
                                     outputPath: "\(directory.path)/output")
        let status = child.wait(seconds: 60)
        return (status, child.output)
    }

    @Test func theSystemUnitVerifiesCleanAndScoresAtMostTwo() throws {
        let directory = TemporaryDirectory()
        let unit = try staged("portsync-system.service", as: "portsync.service", in: directory)
        let (status, output) = try analyze(["verify", unit])
        #expect(status == 0 && output.isEmpty, "\(output)")
        let (_, report) = try analyze(["security", "--offline=true", "--no-pager", unit])
        let line = try #require(report.split(separator: "\n").first { $0.contains("Overall exposure level") })
        // "→ Overall exposure level for portsync.service: 1.5 OK :-)"
        let afterName = try #require(line.split(separator: ".service: ", maxSplits: 1).last)
        let score = try #require(Double(afterName.split(separator: " ").first ?? ""))
        #expect(score <= 2.0, "\(line)")
    }

    @Test func theUserUnitVerifiesClean() throws {
        let directory = TemporaryDirectory()
        let unit = try staged("portsync.service", as: "portsync.service", in: directory)
        try FileManager.default.createDirectory(atPath: "\(directory.path)/runtime", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let (status, output) = try analyze(["verify", "--user", unit], runtime: "\(directory.path)/runtime")
        #expect(status == 0 && output.isEmpty, "\(output)")
    }

    @Test(arguments: ["--user", "--system"])
    func theInstallScriptPutsEverythingInPlace(mode: String) throws {
        let stage = TemporaryDirectory()
        let output = "\(stage.path)/install.log"
        let child = try ChildProcess(executable: "/bin/bash",
                                     arguments: ["\(Self.root)/scripts/install", mode, "--binary", portsyncBinary],
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": "/home/someone", "DESTDIR": "\(stage.path)/root"],
                                     outputPath: output)
        #expect(child.wait(seconds: 30) == 0, "\(child.output)")
        let expected = mode == "--user"
            ? ["/home/someone/.local/bin/portsync", "/home/someone/.config/systemd/user/portsync.service", "/home/someone/.config/portsync/config.toml",
               "/home/someone/.local/share/man/man1/portsync.1.gz", "/home/someone/.local/share/man/man5/portsync.toml.5.gz",
               "/home/someone/.local/share/bash-completion/completions/portsync", "/home/someone/.local/share/fish/vendor_completions.d/portsync.fish"]
            : ["/usr/local/bin/portsync", "/etc/systemd/system/portsync.service", "/etc/portsync/config.toml",
               "/usr/local/share/man/man1/portsync.1.gz", "/usr/local/share/bash-completion/completions/portsync",
               "/usr/local/share/zsh/vendor-completions/_portsync", "/usr/local/share/doc/portsync/portsync.example.toml"]
        for path in expected {
            #expect(FileManager.default.fileExists(atPath: "\(stage.path)/root\(path)"), "\(path)")
        }
        #expect(FileManager.default.isExecutableFile(atPath: "\(stage.path)/root\(expected[0])"))
        let unit = try String(contentsOfFile: "\(stage.path)/root\(expected[1])", encoding: .utf8)
        #expect(unit.contains("\nExecStart=\(expected[0]) run"), "the unit starts the installed binary")
    }
}
