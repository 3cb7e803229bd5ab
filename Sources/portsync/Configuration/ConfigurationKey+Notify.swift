import Domain
import HTTP
import Reactor
import Sinks

extension Configuration {
    /// `[notify]`: a webhook told of port changes, clients failing and connectability; off
    /// while `url` is empty.
    struct Notify: Equatable {
        var url: HTTPURL?
        /// nil: `auto`, the preset the URL names (Discord's webhooks, ntfy.sh), else `json`.
        var preset: NotifyPreset?
        var events = NotifyEvent.Kind.allCases
        var tokenFile = ""
        var tls = TLS()

        /// The preset in use, and whether the URL chose it.
        var resolvedPreset: (preset: NotifyPreset, inferred: Bool) {
            if let preset { return (preset, false) }
            return url.flatMap(NotifyPreset.inferred).map { ($0, true) } ?? (.json, false)
        }

        /// For the start line: "notifications to https://ntfy.sh (ntfy, as the URL says)"; nil
        /// when off. The URL's path is left out: it can hold a token.
        var summary: String? {
            guard let url else { return nil }
            let (preset, inferred) = resolvedPreset
            return "notifications to \(url.scheme.rawValue)://\(url.hostHeader) (\(preset.rawValue)\(inferred ? ", as the URL says" : ""))"
        }
    }
}

extension ConfigurationKey {
    /// `[notify]`.
    static let notifyKeys: [ConfigurationKey] = [
        ConfigurationKey(section: "notify", name: "url", kind: .string, flag: nil,
                         current: .quoted({ $0.notify.url?.description ?? "" }),
                         summary: "the webhook told of port changes, clients failing and connectability; empty: off") { config, value, _ throws(InvalidValue) in
            config.notify.url = try value.string().isEmpty ? nil : url(value)
        },
        ConfigurationKey(section: "notify", name: "preset", kind: .string, flag: nil,
                         current: .quoted({ $0.notify.preset?.rawValue ?? "auto" }),
                         summary: "auto | " + NotifyPreset.allCases.map(\.rawValue).joined(separator: " | ")) { config, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard text == "auto" || NotifyPreset(rawValue: text) != nil else {
                let names = ["auto"] + NotifyPreset.allCases.map(\.rawValue)
                throw InvalidValue("\"\(text.oneLine(limit: 40))\" is not a preset (\(names.dropLast().joined(separator: ", ")) or \(names.last!))")
            }
            config.notify.preset = NotifyPreset(rawValue: text)
        },
        ConfigurationKey(section: "notify", name: "events", kind: .stringArray, flag: nil,
                         current: .plain({ TOMLValue.rendered($0.notify.events.map(\.rawValue)) }),
                         summary: "which to send: " + NotifyEvent.Kind.allCases.map(\.rawValue).joined(separator: ", ")) { config, value, _ throws(InvalidValue) in
            guard case .stringArray(let names) = value else { throw InvalidValue("must be an array of strings, not \(value.kindName)") }
            guard !names.isEmpty else { throw InvalidValue("is empty: leave it out to send every event, or leave url empty to send none") }
            var kinds: [NotifyEvent.Kind] = []
            for name in names {
                guard let kind = NotifyEvent.Kind(rawValue: name) else {
                    let known = NotifyEvent.Kind.allCases.map(\.rawValue)
                    throw InvalidValue("\"\(name.oneLine(limit: 40))\" is not an event (\(known.dropLast().joined(separator: ", ")) or \(known.last!))")
                }
                if !kinds.contains(kind) { kinds.append(kind) }
            }
            config.notify.events = kinds
        },
        ConfigurationKey(section: "notify", name: "token_file", kind: .string, flag: nil,
                         current: .quoted({ $0.notify.tokenFile }),
                         summary: "file holding the service's token (ntfy's access token, Gotify's application token, the Discord webhook's)") { config, value, context throws(InvalidValue) in
            config.notify.tokenFile = try optionalPath(value, context)
        },
    ] + tlsKeys(section: "notify", \.notify.tls)
}

extension ConfigurationLoader {
    /// `[notify]` keys without a URL, and a URL the preset cannot use (checked with the
    /// token, which is read by then).
    static func checkNotify(_ configuration: Configuration, _ credentials: Credentials) throws(ConfigurationError) {
        let notify = configuration.notify
        guard let url = notify.url else {
            let given = ConfigurationKey.notifyKeys.filter { $0.name != "url" }.compactMap { key in configuration.origins[key.path].map { (key.name, $0) } }
            if let (name, origin) = given.first { throw ConfigurationError(origin, "[notify] has \(name) but no url") }
            return
        }
        let (preset, _) = notify.resolvedPreset
        if let problem = preset.problem(url: url, hasToken: credentials.notifyToken != nil) {
            let origin = configuration.origins["notify.url"] ?? configuration.origins["notify.preset"] ?? ""
            throw ConfigurationError(origin, "[notify] url: \(problem)")
        }
    }
}

extension NotifySettings {
    /// The notifier's settings; nil while `[notify] url` is empty.
    init?(_ configuration: Configuration, _ credentials: Credentials) {
        let notify = configuration.notify
        guard let url = notify.url else { return nil }
        self.init(url: url, preset: notify.resolvedPreset.preset, token: credentials.notifyToken, tls: notify.tls.options,
                  events: Set(notify.events))
    }
}
