import HTTP

/// The environment of qSticky-like Gluetun recipes: `QBITTORRENT_HOST`, `QBITTORRENT_PASS`,
/// `GLUETUN_APIKEY` and the rest of qSticky's variables, which people keep when they swap the
/// image in a compose file. portsync reads only `PORTSYNC_*`; it says so in one warning and
/// `portsync config --from-env` prints the `PORTSYNC_*` equivalent, every variable mapped or
/// named as having no equivalent. A secret's value is never printed.
enum ForeignEnvironment {
    /// qSticky's variables (its `Settings`, read without a prefix). Only these exact names are
    /// taken for it: Gluetun's own `GLUETUN_HTTP_CONTROL_SERVER_*` and other tools' names are not.
    static let names = [
        "QBITTORRENT_HOST", "QBITTORRENT_PORT", "QBITTORRENT_USER", "QBITTORRENT_PASS", "QBITTORRENT_API_KEY",
        "QBITTORRENT_HTTPS", "QBITTORRENT_VERIFY_SSL", "GLUETUN_HOST", "GLUETUN_PORT", "GLUETUN_AUTH_TYPE",
        "GLUETUN_USERNAME", "GLUETUN_PASSWORD", "GLUETUN_APIKEY", "CHECK_INTERVAL", "HEALTH_FILE", "LOG_LEVEL",
    ]
    /// The names that give the recipe away; `CHECK_INTERVAL`, `HEALTH_FILE` and `LOG_LEVEL` alone are too common to.
    private static let telling = names.filter { $0.hasPrefix("QBITTORRENT_") || $0.hasPrefix("GLUETUN_") }

    /// qSticky's variables present in `environment`, in the order of `names`; empty when none of
    /// the telling ones is.
    static func present(in environment: [String: String]) -> [String] {
        guard telling.contains(where: { environment[$0] != nil }) else { return [] }
        return names.filter { environment[$0] != nil }
    }

    /// The one warning for an environment that holds them.
    static func warning(_ environment: [String: String]) -> String? {
        let found = present(in: environment)
        guard !found.isEmpty else { return nil }
        return "the environment holds qSticky's variables (\(found.joined(separator: ", "))), which portsync does not read: `portsync config --from-env` prints the PORTSYNC_* equivalent"
    }

    /// `portsync config --from-env`: the equivalent variables, as `NAME=value` lines (for
    /// `environment:` or `env_file:` in compose, `-e`, or systemd's `Environment=`), then a
    /// comment for each variable that has no equivalent or is a secret.
    static func convert(_ environment: [String: String]) throws(ConfigurationError) -> String {
        guard !present(in: environment).isEmpty else {
            throw ConfigurationError("--from-env", "the environment holds none of qSticky's QBITTORRENT_* or GLUETUN_* variables (\(telling.joined(separator: ", ")))")
        }
        var translation = Translation(environment: environment)
        translation.translate()
        return translation.render()
    }

    private struct Translation {
        let environment: [String: String]
        var settings: [(name: String, value: String)] = []
        var notes: [String] = []

        mutating func set(_ section: String, _ key: String, _ value: String) {
            settings.append(("PORTSYNC_\(section.uppercased())_\(key.uppercased())", value))
        }

        mutating func note(_ name: String, _ why: String) {
            notes.append("\(name): \(why)")
        }

        /// A value as pydantic reads a boolean, or nil (with a note) when it is none.
        mutating func flag(_ name: String) -> Bool? {
            guard let text = environment[name] else { return nil }
            switch text.trimmingSpaces.lowercased() {
            case "1", "on", "t", "true", "y", "yes": return true
            case "0", "off", "f", "false", "n", "no": return false
            default:
                note(name, "\"\(text.oneLine(limit: 20))\" is not a boolean to qSticky either; left out")
                return nil
            }
        }

        /// A port as qSticky takes it, or qSticky's default (with a note) when it is none.
        mutating func port(_ name: String, default fallback: Int) -> Int {
            guard let text = environment[name] else { return fallback }
            guard let port = Int(text.trimmingSpaces), (1...65535).contains(port) else {
                note(name, "\"\(text.oneLine(limit: 20))\" is not a port; qSticky's default \(fallback) is used instead")
                return fallback
            }
            return port
        }

        /// A host, or the default qSticky's code gives it (with a note saying so).
        mutating func host(_ name: String) -> String {
            if let host = environment[name]?.trimmingSpaces, !host.isEmpty { return host }
            note(name, "unset: qSticky's default, gluetun, is used; in `network_mode: \"container:gluetun\"` qBittorrent and Gluetun's control server are at 127.0.0.1")
            return "gluetun"
        }

        static func url(scheme: String, host: String, port: Int) -> String {
            "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        }

        /// A secret: named, never printed; where it goes instead.
        mutating func secret(_ name: String, variable: String, file: String) {
            guard environment[name] != nil else { return }
            note(name, "a secret, not printed: give its value to \(variable) instead, or better put it alone in a file (a compose secret) and set \(file)")
        }

        mutating func translate() {
            set("source", "strategy", "gluetun")

            let https = flag("QBITTORRENT_HTTPS") ?? false
            set("qbittorrent", "url", Self.url(scheme: https ? "https" : "http", host: host("QBITTORRENT_HOST"),
                                               port: port("QBITTORRENT_PORT", default: 8080)))
            if let verify = flag("QBITTORRENT_VERIFY_SSL") {
                if !verify && https {
                    set("qbittorrent", "tls_verify", "false")
                    note("QBITTORRENT_VERIFY_SSL", "false: so is tls_verify; PORTSYNC_QBITTORRENT_TLS_FINGERPRINT (the certificate's SHA-256) or _CA_FILE checks a self-signed certificate instead")
                } else if !https {
                    note("QBITTORRENT_VERIFY_SSL", "no equivalent needed: qBittorrent is reached over http")
                }
            } else if https {
                note("QBITTORRENT_VERIFY_SSL", "unset: qSticky did not check qBittorrent's certificate; portsync does (for a self-signed one set PORTSYNC_QBITTORRENT_TLS_FINGERPRINT or _CA_FILE)")
            }
            if environment["QBITTORRENT_API_KEY"] != nil {
                secret("QBITTORRENT_API_KEY", variable: "PORTSYNC_QBITTORRENT_API_KEY", file: "PORTSYNC_QBITTORRENT_API_KEY_FILE")
                if environment["QBITTORRENT_USER"] != nil || environment["QBITTORRENT_PASS"] != nil {
                    note("QBITTORRENT_USER, QBITTORRENT_PASS", "not needed: the API key replaces the login, as it did in qSticky")
                }
            } else {
                set("qbittorrent", "username", environment["QBITTORRENT_USER"] ?? "admin")
                if environment["QBITTORRENT_PASS"] != nil {
                    secret("QBITTORRENT_PASS", variable: "PORTSYNC_QBITTORRENT_PASSWORD", file: "PORTSYNC_QBITTORRENT_PASSWORD_FILE")
                } else {
                    note("QBITTORRENT_PASS", "unset: qSticky tried adminadmin, which qBittorrent 4.6.1 and later no longer has; set PORTSYNC_QBITTORRENT_PASSWORD_FILE to a file holding the Web UI's password")
                }
            }

            set("gluetun", "url", Self.url(scheme: "http", host: host("GLUETUN_HOST"), port: port("GLUETUN_PORT", default: 8000)))
            let authentication = environment["GLUETUN_AUTH_TYPE"]?.trimmingSpaces.lowercased() ?? "apikey"
            switch authentication {
            case "apikey":
                secret("GLUETUN_APIKEY", variable: "PORTSYNC_GLUETUN_API_KEY", file: "PORTSYNC_GLUETUN_API_KEY_FILE")
                for unused in ["GLUETUN_USERNAME", "GLUETUN_PASSWORD"] where environment[unused] != nil {
                    note(unused, "not used: GLUETUN_AUTH_TYPE is apikey")
                }
            case "basic":
                if let user = environment["GLUETUN_USERNAME"] { set("gluetun", "username", user) }
                secret("GLUETUN_PASSWORD", variable: "PORTSYNC_GLUETUN_PASSWORD", file: "PORTSYNC_GLUETUN_PASSWORD_FILE")
                if environment["GLUETUN_APIKEY"] != nil { note("GLUETUN_APIKEY", "not used: GLUETUN_AUTH_TYPE is basic") }
            default:
                note("GLUETUN_AUTH_TYPE", "\"\(authentication.oneLine(limit: 20))\" is neither apikey nor basic; the control server's credentials are left out")
            }
            note("GLUETUN_AUTH_TYPE", "portsync asks GET /v1/portforward, and GET /v1/openvpn/portforwarded when Gluetun is older: the role in Gluetun's auth config.toml may allow either")

            if let text = environment["CHECK_INTERVAL"] {
                if let seconds = Int(text.trimmingSpaces), (1...3600).contains(seconds) {
                    set("gluetun", "poll_seconds", String(seconds))
                } else {
                    note("CHECK_INTERVAL", "\"\(text.oneLine(limit: 20))\" is not a number of seconds from 1 to 3600; left out")
                }
            }
            if environment["HEALTH_FILE"] != nil {
                note("HEALTH_FILE", "no equivalent: the healthcheck is `portsync status` (its exit code), as in the README's compose file")
            }
            if let text = environment["LOG_LEVEL"] {
                switch text.trimmingSpaces.uppercased() {
                case "DEBUG": set("daemon", "log_level", "debug")
                case "INFO": set("daemon", "log_level", "info")
                case "WARNING", "WARN": set("daemon", "log_level", "warning")
                case "ERROR", "CRITICAL": set("daemon", "log_level", "error")
                default: note("LOG_LEVEL", "\"\(text.oneLine(limit: 20))\" is not a log level; left out")
                }
            }
        }

        func render() -> String {
            var lines = ["# portsync's equivalent of qSticky's environment"] + settings.map { "\($0.name)=\($0.value)" }
            if !notes.isEmpty {
                lines += ["", "# Not carried over as it is:"] + notes.map { "# - \($0)" }
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}
