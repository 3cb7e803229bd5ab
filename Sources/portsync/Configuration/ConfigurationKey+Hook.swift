import HTTP
import Reactor

extension ConfigurationKey {
    /// `[hook]`.
    static let hookKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "hook", name: "command", kind: .stringArray, flag: nil,
                         current: .plain({ TOMLValue.rendered($0.hook.command) }),
                         summary: "program and arguments run when the port changes, e.g. [\"/usr/local/bin/open-port\", \"--tcp\"]") { config, value, _ throws(InvalidValue) in
            config.hook.command = try hookCommand(value)
        },
        ConfigurationKey(section: "hook", name: "timeout_seconds", kind: .integer, flag: nil,
                         current: .plain({ String($0.hook.timeoutSeconds) }),
                         summary: "a run still going after this is killed") { config, value, _ throws(InvalidValue) in
            config.hook.timeoutSeconds = try duration(value, in: 1...3_600)
        },
    ]

    /// The sections `portsync config` prints: `[hook]` only with a command (an empty one would
    /// not load back), `[static]` only with its strategy (its port 0 would not load back), and
    /// `[perfectprivacy]`, `[command]`, `[pia]` and `[privatevpn]` only with their own, `[notify]` only with a URL.
    static func printedSections(_ configuration: Configuration) -> [String] {
        sections.filter {
            ($0 != "hook" || !configuration.hook.command.isEmpty) && ($0 != "static" || configuration.source.strategy == .staticPort)
                && ($0 != "perfectprivacy" || configuration.source.strategy == .perfectPrivacy)
                && ($0 != "command" || configuration.source.strategy == .command)
                && ($0 != "pia" || configuration.source.strategy == .pia)
                && ($0 != "privatevpn" || configuration.source.strategy == .privateVPN)
                && ($0 != "notify" || configuration.notify.url != nil)
        }
    }

    /// An argv (the hook's, a command source's): not empty, no NUL, the program an absolute path or a bare name for `PATH`
    /// (a relative path would depend on the directory portsync was started in).
    static func hookCommand(_ value: TOMLValue) throws(InvalidValue) -> [String] {
        guard case .stringArray(let command) = value else {
            throw InvalidValue("must be an array of strings (the program and its arguments, no shell), not \(value.kindName)")
        }
        guard let program = command.first else { throw InvalidValue("is empty: name the program to run") }
        guard !command.contains(where: { $0.contains("\0") }) else { throw InvalidValue("must not contain a NUL character") }
        guard !program.isEmpty, program.hasPrefix("/") || !program.contains("/") else {
            throw InvalidValue("\"\(program.oneLine(limit: 80))\": the program must be an absolute path or a name found on PATH")
        }
        return command
    }
}

extension TOMLValue {
    /// `["a", "b"]`, from an environment variable.
    static func stringArray(parsing text: String) throws(InvalidValue) -> TOMLValue {
        let document: TOMLDocument
        do {
            document = try TOMLDocument.parse("[value]\nv = \(text)\n", fileName: "value")
        } catch {
            throw InvalidValue("\"\(text.oneLine(limit: 80))\" is not an array of strings like [\"/usr/bin/logger\", \"-t\", \"portsync\"]")
        }
        guard let entry = document.entries.first, document.entries.count == 1 else {
            throw InvalidValue("\"\(text.oneLine(limit: 80))\" is not an array of strings")
        }
        return entry.value
    }

    /// A string array as TOML.
    static func rendered(_ strings: [String]) -> String {
        "[" + strings.map { JSONValue.quoted($0) }.joined(separator: ", ") + "]"
    }
}
