import Glibc

/// What a program portsync starts (the hook, a command source) gets of portsync's environment,
/// and where a bare program name is looked up.
public enum ChildEnvironment {
    /// The search path when portsync has none.
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"

    /// The search path, the home directory, the locale, the time zone and the runtime directory
    /// (for a desktop notification), nothing else: no password, API key or credentials
    /// directory, no systemd notify socket. `NAME=value` entries, sorted.
    public static func passedOn(_ variables: [String: String]) -> [String] {
        var kept = variables.filter { name, _ in
            ["PATH", "HOME", "LANG", "LANGUAGE", "TZ", "XDG_RUNTIME_DIR"].contains(name) || name.hasPrefix("LC_")
        }
        if kept["PATH", default: ""].isEmpty { kept["PATH"] = defaultPath }
        return kept.map { "\($0.key)=\($0.value)" }.sorted()
    }

    /// The `PATH` of `environment` (`NAME=value` entries), where a bare program name is looked up.
    public static func searchPath(of environment: [String]) -> String {
        environment.first { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? defaultPath
    }

    /// `name` if it is a path to an executable file, else the first executable of that name on
    /// `path`; nil when there is none.
    public static func executable(_ name: String, searching path: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        return path.split(separator: ":").lazy.filter { $0.hasPrefix("/") }.map { "\($0)/\(name)" }.first { access($0, X_OK) == 0 }
    }

    /// Why `executable` found nothing, in one line.
    public static func notFound(_ name: String, searching path: String) -> String {
        let program = "\"\(name.oneLine(limit: 80))\" is not an executable file"
        return name.contains("/") ? program : "\(program) on PATH (\(path.oneLine(limit: 120)))"
    }
}
