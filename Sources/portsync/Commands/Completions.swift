/// Shell completion scripts, made from the same tables as `--help`: the commands, their own
/// flags, the flags of the configuration keys and every `--set section.key=`. A new key or
/// command completes without anyone editing a script.
enum Completions {
    enum Shell: String, CaseIterable {
        case bash
        case zsh
        case fish
    }

    static func script(for shell: Shell) -> String {
        switch shell {
        case .bash: bash
        case .zsh: zsh
        case .fish: fish
        }
    }

    /// Every word that may follow the command name, per command.
    static func options(of command: Command) -> [String] {
        command.ownFlags.map(\.flag) + ["--config", "--set", "--help"] + ConfigurationKey.all.compactMap(\.flag)
    }

    /// `section.key=` for `--set`.
    static var assignments: [String] { ConfigurationKey.all.map { "\($0.path)=" } }

    /// Flags whose value is a path.
    static var pathFlags: [String] {
        ["--config"] + ConfigurationKey.all.filter { $0.name.hasSuffix("_file") }.compactMap(\.flag)
    }

    /// Flags whose value is one of a few words, from the key's summary ("auto | file | …").
    static var choiceFlags: [(flag: String, choices: [String])] {
        ConfigurationKey.all.compactMap { key in
            let words = key.summary.split(separator: " | ", omittingEmptySubsequences: false).map(String.init)
            guard let flag = key.flag, words.count > 1, words.allSatisfy({ !$0.isEmpty && !$0.contains(" ") }) else { return nil }
            return (flag, words)
        }
    }

    private static var commandNames: [String] { Command.allCases.map(\.rawValue) + ["completions", "help"] }

    private static var bash: String {
        let perCommand = Command.allCases.map { "        \($0.rawValue)) options=\"\(options(of: $0).joined(separator: " "))\" ;;" }
        let choices = choiceFlags.map { "        \($0.flag)) COMPREPLY=($(compgen -W \"\($0.choices.joined(separator: " "))\" -- \"$cur\")); return ;;" }
        return """
            # bash completion for portsync (portsync completions bash)
            _portsync() {
                local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" options=""
                if [ "$COMP_CWORD" -eq 1 ]; then
                    COMPREPLY=($(compgen -W "\(commandNames.joined(separator: " ")) --help --version" -- "$cur"))
                    return
                fi
                case "$prev" in
                    --set)
                        COMPREPLY=($(compgen -W "\(assignments.joined(separator: " "))" -- "$cur"))
                        compopt -o nospace 2>/dev/null
                        return ;;
                    \(pathFlags.joined(separator: "|"))) COMPREPLY=($(compgen -f -- "$cur")); return ;;
            \(choices.joined(separator: "\n"))
                    completions) COMPREPLY=($(compgen -W "\(Shell.allCases.map(\.rawValue).joined(separator: " "))" -- "$cur")); return ;;
                    help) COMPREPLY=($(compgen -W "\(Command.allCases.map(\.rawValue).joined(separator: " "))" -- "$cur")); return ;;
                esac
                case "${COMP_WORDS[1]}" in
            \(perCommand.joined(separator: "\n"))
                esac
                COMPREPLY=($(compgen -W "$options" -- "$cur"))
            }
            complete -F _portsync portsync

            """
    }

    private static var zsh: String {
        let described = Command.allCases.map { "        '\($0.rawValue):\(zshQuoted($0.summary))'" }
            + ["        'completions:print the completion script for bash, zsh or fish'", "        'help:the options of one command'"]
        let perCommand = Command.allCases.map { "        \($0.rawValue)) compadd -- \(options(of: $0).joined(separator: " ")) ;;" }
        let choices = choiceFlags.map { "        \($0.flag)) compadd -- \($0.choices.joined(separator: " ")); return ;;" }
        return """
            #compdef portsync
            # zsh completion for portsync (portsync completions zsh)
            _portsync() {
                local -a commands
                commands=(
            \(described.joined(separator: "\n"))
                )
                if (( CURRENT == 2 )); then
                    _describe 'command' commands
                    return
                fi
                case "$words[CURRENT-1]" in
                    --set) compadd -S '' -- \(assignments.joined(separator: " ")); return ;;
                    \(pathFlags.joined(separator: "|"))) _files; return ;;
            \(choices.joined(separator: "\n"))
                    completions) compadd -- \(Shell.allCases.map(\.rawValue).joined(separator: " ")); return ;;
                    help) compadd -- \(Command.allCases.map(\.rawValue).joined(separator: " ")); return ;;
                esac
                case "$words[2]" in
            \(perCommand.joined(separator: "\n"))
                esac
            }
            _portsync "$@"

            """
    }

    private static var fish: String {
        var lines = [
            "# fish completion for portsync (portsync completions fish)",
            "complete -c portsync -f",
            "complete -c portsync -n __fish_use_subcommand -l help -d 'print the commands'",
            "complete -c portsync -n __fish_use_subcommand -l version -d 'print the version'",
        ]
        for command in Command.allCases {
            lines.append("complete -c portsync -n __fish_use_subcommand -a \(command.rawValue) -d '\(fishQuoted(command.summary))'")
        }
        lines.append("complete -c portsync -n __fish_use_subcommand -a completions -d 'print the completion script for bash, zsh or fish'")
        lines.append("complete -c portsync -n '__fish_seen_subcommand_from completions' -a '\(Shell.allCases.map(\.rawValue).joined(separator: " "))'")
        lines.append("complete -c portsync -n __fish_use_subcommand -a help -d 'the options of one command'")
        lines.append("complete -c portsync -n '__fish_seen_subcommand_from help' -a '\(Command.allCases.map(\.rawValue).joined(separator: " "))'")
        let all = Command.allCases.map(\.rawValue).joined(separator: " ")
        for command in Command.allCases {
            for (flag, help) in command.ownFlags {
                lines.append("complete -c portsync -n '__fish_seen_subcommand_from \(command.rawValue)' -l \(flag.dropFirst(2)) -d '\(fishQuoted(help))'")
            }
        }
        lines.append("complete -c portsync -n '__fish_seen_subcommand_from \(all)' -l config -r -F -d 'read this configuration file'")
        lines.append("complete -c portsync -n '__fish_seen_subcommand_from \(all)' -l set -x -a '\(assignments.joined(separator: " "))' -d 'set any configuration key'")
        for key in ConfigurationKey.all {
            guard let flag = key.flag else { continue }
            let choices = choiceFlags.first { $0.flag == flag }.map { " -x -a '\($0.choices.joined(separator: " "))'" }
            let value = key.kind == .boolean ? "" : choices ?? (pathFlags.contains(flag) ? " -r -F" : " -x")
            lines.append("complete -c portsync -n '__fish_seen_subcommand_from \(all)' -l \(flag.dropFirst(2))\(value) -d '[\(key.section)] \(key.name)'")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func zshQuoted(_ text: String) -> String {
        text.replacing("'", with: "'\\''").replacing(":", with: "\\:")
    }

    private static func fishQuoted(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("'", with: "\\'")
    }
}
