import Foundation
import HTTP
import TestSupport
@testable import portsync

/// A directory under /tmp, removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() {
        path = makeTemporaryDirectory("test")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    func write(_ name: String, _ contents: String, mode: Int = 0o600) -> String {
        let file = "\(path)/\(name)"
        try! FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: file, contents: Data(contents.utf8), attributes: [.posixPermissions: mode])
        return file
    }
}

/// What every portsync a test runs gets unless the test says otherwise: `auto` never asks the
/// router of the machine running the tests (only the lab's, in its namespaces, when a test
/// turns it back on).
let testDefaults = ["PORTSYNC_SOURCE_AUTO_ROUTER": "false"]

/// A loader with a clean environment: nothing from the machine running the tests leaks in.
/// `withTestDefaults`: false for the product's own defaults, unchanged (`testDefaults`).
func loader(file: String? = nil, environment: [String: String] = [:], flags: [FlagSetting] = [],
            home: String = "/nonexistent-home", withTestDefaults: Bool = true) -> ConfigurationLoader {
    var variables = ["HOME": home, "XDG_RUNTIME_DIR": "/run/user/1000"].merging(withTestDefaults ? testDefaults : [:]) { $1 }
    variables.merge(environment) { $1 }
    return ConfigurationLoader(environment: variables, userID: 1000, workingDirectory: "/work/dir",
                               explicitFile: file, flags: flags)
}

/// The configuration error that loading `text` as a file gives, as printed.
func loadError(_ text: String, environment: [String: String] = [:]) -> String? {
    let directory = TemporaryDirectory()
    let file = directory.write("config.toml", text)
    do {
        _ = try loader(file: file, environment: environment).load()
        return nil
    } catch {
        return error.description.replacingOccurrences(of: directory.path + "/", with: "")
    }
}

/// The built `portsync` binary, next to the test bundle.
var portsyncBinary: String {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    var candidate = bundle
    while candidate.path != "/" {
        let binary = candidate.appendingPathComponent("portsync").path
        if FileManager.default.isExecutableFile(atPath: binary) { return binary }
        candidate.deleteLastPathComponent()
    }
    return bundle.appendingPathComponent("portsync").path
}

/// The portsync binary as a child process, with a clean environment and its output in a file.
/// Its HOME is a directory of its own, which it may not create: the default state file of two
/// tests that run at once is never the same (a test that wants one shared says so).
final class Child {
    private let directory = TemporaryDirectory()
    let process: ChildProcess

    /// `names`: the test's resolv.conf and hosts files, which portsync then sees as /etc's
    /// (`isolated(names:)`).
    init(_ arguments: [String], environment: [String: String] = [:], names: (resolvConf: String, hosts: String)? = nil) throws {
        var variables = ["PATH": "/usr/bin:/bin", "HOME": "\(directory.path)/home", "XDG_RUNTIME_DIR": "/run/user/1000"].merging(testDefaults) { $1 }
        variables.merge(environment) { $1 }
        let (executable, prefix) = names.map(Self.isolated(names:)) ?? (portsyncBinary, [])
        process = try ChildProcess(executable: executable, arguments: prefix + arguments, environment: variables,
                                   outputPath: "\(directory.path)/output")
    }

    /// The program and the arguments before portsync's that run it in a mount namespace of its
    /// own where /etc/resolv.conf and /etc/hosts are the test's files. Fails closed: if a mount
    /// fails portsync never starts.
    static func isolated(names: (resolvConf: String, hosts: String)) -> (String, [String]) {
        ("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c",
                              #"mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$0" "$@""#,
                              portsyncBinary, names.resolvConf, names.hosts])
    }

    deinit {
        process.stop(grace: 2)
    }

    @discardableResult
    func wait(seconds: Double = 10) -> Int32? { process.wait(seconds: seconds) }

    func signal(_ number: Int32) { process.signal(number) }

    /// Everything the child wrote (stdout and stderr together).
    var output: String { process.output }

    func waitForOutput(containing text: String, seconds: Double = 10) -> String {
        process.waitForOutput(containing: text, seconds: seconds)
    }

    /// Runs to completion and returns (exit code, output).
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32?, String) {
        let child = try Child(arguments, environment: environment)
        let status = child.wait()
        return (status, child.output)
    }
}

/// What every daemon test sets: qBittorrent's WebUI, the password file (`password` in
/// `directory`, written by the test) and a state file in `directory`; `extra` wins.
func daemonEnvironment(_ qbittorrent: QBittorrentInstance, in directory: TemporaryDirectory,
                       _ extra: [String: String]) -> [String: String] {
    var variables = [
        "PORTSYNC_QBITTORRENT_URL": "http://127.0.0.1:\(qbittorrent.webUIPort)",
        "PORTSYNC_QBITTORRENT_PASSWORD_FILE": "\(directory.path)/password",
        "PORTSYNC_DAEMON_STATE_FILE": "\(directory.path)/state.json",
    ]
    variables.merge(extra) { $1 }
    return variables
}


/// One change as `portsync history --json` lists it.
struct ListedChange: Equatable, CustomStringConvertible {
    let reason: String
    let previous: Int?
    let port: Int?
    /// Each client's result (`set`, `already`, `repaired`, `kept`, …) by label.
    let clients: [String: String]
    let verifiedAfterMilliseconds: Int?

    var description: String { "\(reason) \(previous.map(String.init) ?? "none")→\(port.map(String.init) ?? "none") \(clients)" }
}

/// `portsync history --json` run with `environment` (its state file says where the history is):
/// every change listed, oldest first; empty when there is no history yet.
func listedChanges(_ environment: [String: String]) throws -> [ListedChange] {
    let (status, output) = try Child.run(["history", "--json"], environment: environment)
    guard status == 0 else { return [] }
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
          case .array(let changes)? = try JSONValue.parse(Array(line.utf8))["changes"] else { return [] }
    return changes.map { change in
        var clients: [String: String] = [:]
        if case .object(let members)? = change["clients"] {
            for (label, member) in members { clients[label] = member["result"]?.string ?? "?" }
        }
        return ListedChange(reason: change["reason"]?.string ?? "?", previous: change["previous"]?.integer, port: change["port"]?.integer,
                            clients: clients, verifiedAfterMilliseconds: change["verified_after_ms"]?.integer)
    }
}
