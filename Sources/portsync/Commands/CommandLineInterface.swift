import CLinux
import Reactor

/// Exit codes, as `portsync once` documents them; `portsync status` has its own (LSB's).
struct ExitCode: Equatable, Sendable {
    let rawValue: Int32

    static let success = ExitCode(rawValue: 0)
    static let transientFailure = ExitCode(rawValue: 1)
    static let usageOrConfiguration = ExitCode(rawValue: 2)
    static let unsupported = ExitCode(rawValue: 3)

    /// `status`: the daemon runs but its health is not ok.
    static let daemonUnhealthy = ExitCode(rawValue: 1)
    /// `status`: no portsync runs with the state file's pid.
    static let daemonNotRunning = ExitCode(rawValue: 3)
    /// `status`: no state file, or one that cannot be read.
    static let noState = ExitCode(rawValue: 4)
}

enum Command: String, CaseIterable {
    case run
    case once
    case doctor
    case status
    case history
    case config

    var summary: String {
        switch self {
        case .run: "run the daemon: keep qBittorrent on the VPN's forwarded port"
        case .once: "detect the port once, apply it, verify, and exit"
        case .doctor: "check each piece of the setup and say what to fix"
        case .status: "show the last applied port and the daemon's health"
        case .history: "list the last changes of port: when, from which to which, and why"
        case .config: "print the effective configuration and where each value came from"
        }
    }

    /// Whether the command talks to the configured servers (and so may need OpenSSL).
    var connects: Bool { self == .run || self == .once || self == .doctor }

    /// What the command's exit codes mean, when they are its own.
    var exitCodes: String? {
        switch self {
        case .status: "Exit codes: 0 running and healthy, 1 running and unhealthy, 3 not running, 4 no state (none, or unreadable)."
        case .history: "Exit codes: 0 history shown, 4 no history (none yet, or unreadable)."
        case .run, .once, .doctor, .config: nil
        }
    }

    /// Flags of this command beyond the common ones.
    var ownFlags: [(flag: String, help: String)] {
        switch self {
        case .run: [("--trace", "print one line for every event the loop dispatches")]
        case .once: [("--json", "print one JSON object instead of a sentence"),
                     ("--timeout", "SECONDS: give up after this long in all, naming what did not answer (default 30)")]
        case .status: [("--json", "print one JSON object instead of a sentence")]
        case .history: [("--json", "print one JSON object with every change instead of lines")]
        case .config: [("--from", "FILE: print portsync's equivalent of qb-port-sync's or qbouncer's configuration FILE"),
                       ("--from-env", "print portsync's equivalent of qSticky's QBITTORRENT_* and GLUETUN_* variables")]
        case .doctor: []
        }
    }
}

struct Invocation: Equatable {
    var command: Command
    var configFile: String?
    var flags: [FlagSetting] = []
    var trace = false
    var json = false
    /// `config --from FILE`: another tool's configuration to translate.
    var from: String?
    /// `config --from-env`: qSticky's variables to translate.
    var fromEnvironment = false
    /// `once --timeout SECONDS`.
    var timeout: Duration?
}

enum ParsedCommandLine: Equatable {
    case invocation(Invocation)
    case help(String)
    case version
    case completions(Completions.Shell)
}

struct UsageError: Error, Equatable, CustomStringConvertible {
    let message: String
    var description: String { message }
}

enum CommandLineInterface {
    /// The release number: the package takes it from `portsync --version`; the man pages' title
    /// lines carry it too (DocumentationTests holds them to it).
    static let release = "0.1.0"
    static let version = "portsync \(release)"
    /// `--version`: the release and the commit it was built from, when the build said.
    static var versionWithCommit: String {
        "\(version) (commit \(clinux_build_commit().map { String(cString: $0) } ?? "unknown: built without scripts/build-release"))"
    }

    static func parse(_ arguments: [String]) throws(UsageError) -> ParsedCommandLine {
        guard let first = arguments.first else { return .help(mainHelp) }
        switch first {
        case "--help", "-h": return .help(mainHelp)
        case "--version", "-V": return .version
        case "completions":
            guard arguments.count == 2, let shell = Completions.Shell(rawValue: arguments[1]) else {
                throw UsageError(message: "completions takes one shell: \(Completions.Shell.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return .completions(shell)
        case "help":
            guard arguments.count <= 2 else { throw UsageError(message: "help takes at most one command name") }
            guard let name = arguments.dropFirst().first else { return .help(mainHelp) }
            guard let command = Command(rawValue: name) else { throw unknownCommand(name) }
            return .help(help(for: command))
        default:
            break
        }
        guard let command = Command(rawValue: first) else {
            if first.hasPrefix("-") {
                throw UsageError(message: "unknown option \"\(first)\"; a command comes first (see portsync --help)")
            }
            throw unknownCommand(first)
        }
        var invocation = Invocation(command: command)
        var rest = arguments.dropFirst()[...]
        while let argument = rest.popFirst() {
            guard argument.hasPrefix("--") else {
                throw UsageError(message: "unexpected argument \"\(argument)\" for \"\(command.rawValue)\" (see portsync \(command.rawValue) --help)")
            }
            let (name, inlineValue) = split(argument)
            func value() throws(UsageError) -> String {
                if let inlineValue { return inlineValue }
                guard let next = rest.popFirst(), !next.hasPrefix("--") else {
                    throw UsageError(message: "\(name) needs a value")
                }
                return next
            }
            func noValue() throws(UsageError) {
                if inlineValue != nil { throw UsageError(message: "\(name) takes no value") }
            }
            switch name {
            case "--help":
                return .help(help(for: command))
            case "--config":
                invocation.configFile = try value()
            case "--set":
                let assignment = try value()
                guard let equals = assignment.firstIndex(of: "="), assignment[..<equals].contains(".") else {
                    throw UsageError(message: "--set takes section.key=value, e.g. --set natpmp.lease_seconds=60")
                }
                invocation.flags.append(FlagSetting(keyPath: String(assignment[..<equals]),
                                                    text: String(assignment[assignment.index(after: equals)...]),
                                                    origin: "--set \(assignment[..<equals])"))
            case "--trace" where command == .run:
                try noValue()
                invocation.trace = true
            case "--timeout" where command == .once:
                let text = try value()
                guard let seconds = Int(text), (1...3600).contains(seconds) else {
                    throw UsageError(message: "--timeout takes whole seconds from 1 to 3600, not \"\(text.oneLine(limit: 20))\"")
                }
                invocation.timeout = .seconds(seconds)
            case "--from" where command == .config:
                invocation.from = try value()
            case "--from-env" where command == .config:
                try noValue()
                invocation.fromEnvironment = true
            case "--json" where command == .once || command == .status || command == .history:
                try noValue()
                invocation.json = true
            case "--password", "--api-key":
                throw UsageError(message: "\(name) is not accepted: secrets on the command line show in ps and shell history; use password_file, $CREDENTIALS_DIRECTORY or PORTSYNC_QBITTORRENT_PASSWORD")
            default:
                guard let key = ConfigurationKey.all.first(where: { $0.flag == name }) else {
                    let known = ["--help", "--config", "--set"] + command.ownFlags.map(\.flag) + ConfigurationKey.all.compactMap(\.flag)
                    throw UsageError(message: "unknown option \"\(name)\" for \"\(command.rawValue)\"\(Suggestion.text(for: name, among: known)) (see portsync \(command.rawValue) --help)")
                }
                let text = key.kind == .boolean && inlineValue == nil ? "true" : try value()
                invocation.flags.append(FlagSetting(keyPath: key.path, text: text, origin: name))
            }
        }
        return .invocation(invocation)
    }

    private static func split(_ argument: String) -> (String, String?) {
        guard let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    private static func unknownCommand(_ name: String) -> UsageError {
        UsageError(message: "unknown command \"\(name)\"\(Suggestion.text(for: name, among: Command.allCases.map(\.rawValue))) (see portsync --help)")
    }

    static var mainHelp: String {
        let commands = Command.allCases.map { "  \($0.rawValue.padded(to: 11)) \($0.summary)" }.joined(separator: "\n")
        return """
            portsync keeps qBittorrent's listening port equal to the port your VPN forwards.

            Usage: portsync <command> [options]

            Commands:
            \(commands)
              completions print the completion script for bash, zsh or fish

            Options: --help (for a command: portsync <command> --help), --version

            Configuration comes from --config FILE, $PORTSYNC_CONFIG, $XDG_CONFIG_HOME/portsync/config.toml
            or /etc/portsync/config.toml (the first found), then PORTSYNC_<SECTION>_<KEY> variables, then
            options. With none of them it fits the ProtonVPN desktop app: see `portsync config`.

            Exit codes: 0 ok, 1 transient failure, 2 configuration or usage error, 3 unsupported here.
            """
    }

    static func help(for command: Command) -> String {
        let own = command.ownFlags.map { "  \($0.flag.padded(to: 26)) \($0.help)" }
        let keys = ConfigurationKey.all.compactMap { key -> String? in
            guard let flag = key.flag else { return nil }
            let usage = key.kind == .boolean ? "\(flag)[=false]" : "\(flag) VALUE"
            return "  \(usage.padded(to: 26)) [\(key.section)] \(key.name): \(key.summary)"
        }
        let common = [
            "  \("--config FILE".padded(to: 26)) read this configuration file",
            "  \("--set SECTION.KEY=VALUE".padded(to: 26)) set any configuration key",
        ]
        return """
            Usage: portsync \(command.rawValue) [options]

            \(command.summary.prefix(1).uppercased() + command.summary.dropFirst()).

            Options:
            \((own + common + keys).joined(separator: "\n"))

            Secrets are never options: use password_file, $CREDENTIALS_DIRECTORY/qbittorrent-password
            or PORTSYNC_QBITTORRENT_PASSWORD.
            """ + (command.exitCodes.map { "\n\n" + $0 } ?? "")
    }
}
