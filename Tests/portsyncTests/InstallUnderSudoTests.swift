import Foundation
import Glibc
import Testing
import TestSupport

/// `sudo scripts/install --system` (issue 22 §1): sudo resets PATH, so root has no swift, and a
/// build as root would leave root-owned files in the user's .build. Under sudo the script
/// installs the user's build when it is of the tree's commit, and otherwise says what to run.
/// Each test works in a git checkout of its own holding the install scripts and what they lay
/// out, with a stand-in binary that answers `--version` and `completions` as the real one does.
@Suite(.enabled(if: getuid() == 0, "the sudo path of scripts/install runs as root (CI runs as root)"))
struct InstallUnderSudoTests {
    enum Build { case none, ofCommit(String), ofHead }

    /// Runs `scripts/install --system` as sudo leaves it (root, SUDO_USER, secure_path's PATH
    /// without swift), staged into DESTDIR; returns its exit code, output and the tree.
    func install(build: Build, modifyTree: Bool = false, sudo: Bool = true) throws -> (status: Int32?, output: String, tree: TemporaryDirectory) {
        let tree = TemporaryDirectory()
        let root = UnitFileTests.root
        for folder in ["systemd", "man", "config"] {
            try FileManager.default.copyItem(atPath: "\(root)/\(folder)", toPath: "\(tree.path)/\(folder)")
        }
        for script in ["install", "layout", "build-release"] {
            tree.write("scripts/\(script)", try String(contentsOfFile: "\(root)/scripts/\(script)", encoding: .utf8), mode: 0o755)
        }
        try git(["init", "-q"], in: tree)
        try git(["add", "."], in: tree)
        try git(["-c", "user.name=test", "-c", "user.email=test@invalid", "commit", "-q", "-m", "tree"], in: tree)
        let head = try git(["rev-parse", "--short=12", "HEAD"], in: tree)
        let commit: String? = switch build {
        case .none: nil
        case .ofCommit(let other): other
        case .ofHead: head
        }
        if let commit {
            tree.write(".build/release/portsync", """
                #!/bin/sh
                case "$1" in
                    --version) echo "portsync 0.1.0 (commit \(commit))" ;;
                    completions) echo "# portsync's $2 completions" ;;
                esac
                """, mode: 0o755)
        }
        if modifyTree { tree.write("config/portsync.example.toml", "# changed\n", mode: 0o644) }
        var environment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                           "DESTDIR": "\(tree.path)/stage"]
        if sudo { environment.merge(["SUDO_USER": "someone", "SUDO_UID": "1000"]) { $1 } }
        let child = try ChildProcess(executable: "/bin/bash", arguments: ["\(tree.path)/scripts/install", "--system"],
                                     environment: environment, outputPath: "\(tree.path)/install.log")
        return (child.wait(seconds: 60), child.output, tree)
    }

    @discardableResult
    func git(_ arguments: [String], in tree: TemporaryDirectory) throws -> String {
        let output = "\(tree.path)/../\(URL(fileURLWithPath: tree.path).lastPathComponent).git.log"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(executable: "/usr/bin/git", arguments: ["-C", tree.path] + arguments,
                                     environment: ["PATH": "/usr/bin:/bin", "HOME": tree.path], outputPath: output)
        try #require(child.wait(seconds: 30) == 0, "git \(arguments.joined(separator: " ")): \(child.output)")
        return child.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theUsersBuildOfTheTreesCommitIsInstalled() throws {
        let (status, output, tree) = try install(build: .ofHead)
        #expect(status == 0, "\(output)")
        let installed = FileManager.default.contents(atPath: "\(tree.path)/stage/usr/local/bin/portsync")
        #expect(installed != nil && installed == FileManager.default.contents(atPath: "\(tree.path)/.build/release/portsync"))
        #expect(FileManager.default.fileExists(atPath: "\(tree.path)/stage/etc/systemd/system/portsync.service"))
    }

    @Test(arguments: [(Build.none, false), (Build.ofCommit("0123456789ab"), false), (Build.ofHead, true)])
    func withoutACurrentBuildItSaysWhatToRunAndInstallsNothing(build: Build, modifyTree: Bool) throws {
        let (status, output, tree) = try install(build: build, modifyTree: modifyTree)
        #expect(status == 1, "\(output)")
        #expect(output.contains("\n  scripts/build-release\n  sudo scripts/install --system\n"), "\(output)")
        #expect(!output.contains("command not found"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: "\(tree.path)/stage"), "nothing is installed")
    }

    static let pathHasSwift = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .contains { FileManager.default.isExecutableFile(atPath: "\($0)/swift") }

    /// Root without sudo and without swift on PATH: where the toolchain goes, or --binary.
    @Test(.enabled(if: !pathHasSwift, "swift is on the standard PATH here"))
    func withoutSwiftOnPathItSaysWhereItGoes() throws {
        let (status, output, tree) = try install(build: .none, sudo: false)
        #expect(status == 1, "\(output)")
        #expect(output.hasPrefix("scripts/install: swift is not on PATH") && output.contains("--binary PATH"), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: "\(tree.path)/stage"), "nothing is installed")
    }
}
