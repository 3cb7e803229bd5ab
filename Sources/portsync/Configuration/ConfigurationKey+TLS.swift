import HTTP

/// `ca_file`, `tls_fingerprint` and `tls_verify`: how each is checked and written, for any table
/// whose server may be https (`[gluetun]` and every client table).
struct TLSKey: Sendable {
    let name: String
    let kind: ConfigurationKey.Kind
    let summary: String
    /// The value as TOML.
    let render: @Sendable (Configuration.TLS) -> String
    let apply: @Sendable (inout Configuration.TLS, TOMLValue, ConfigurationKey.Context) throws(InvalidValue) -> Void

    static let all: [TLSKey] = [
        TLSKey(name: "ca_file", kind: .string,
               summary: "PEM file of the CA (or the certificate itself) that the https server's certificate must chain to; empty: the system's CAs",
               render: { JSONValue.quoted($0.caFile) }) { tls, value, context throws(InvalidValue) in
            tls.caFile = try optionalPath(value, context)
        },
        TLSKey(name: "tls_fingerprint", kind: .string,
               summary: "SHA-256 of the https server's certificate, pinned instead of a CA (openssl x509 -noout -fingerprint -sha256)",
               render: { JSONValue.quoted($0.fingerprint) }) { tls, value, _ throws(InvalidValue) in
            let text = try value.string()
            guard text.isEmpty || TLSOptions.fingerprint(parsing: text) != nil else {
                throw InvalidValue("\"\(text)\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
            }
            tls.fingerprint = text
        },
        TLSKey(name: "tls_verify", kind: .boolean,
               summary: "check the https server's certificate; false accepts any (warned about at every start)",
               render: { String($0.verify) }) { tls, value, _ throws(InvalidValue) in
            tls.verify = try value.boolean()
        },
    ]

    func rendering(_ tls: @escaping @Sendable (ClientSection) -> Configuration.TLS) -> ClientKey.Rendering {
        let render = render
        return .plain { render(tls($0)) }
    }
}

extension ConfigurationKey {
    /// The TLS keys of a table that is not a client's (`[gluetun]`).
    static func tlsKeys(section: String, _ field: WritableKeyPath<Configuration, Configuration.TLS> & Sendable) -> [ConfigurationKey] {
        TLSKey.all.map { key in
            let render = key.render
            return ConfigurationKey(section: section, name: key.name, kind: key.kind, flag: nil,
                                    current: .plain({ render($0[keyPath: field]) }),
                                    summary: key.summary) { config, value, context throws(InvalidValue) in
                try key.apply(&config[keyPath: field], value, context)
            }
        }
    }
}

extension Configuration.TLS {
    /// What the HTTP client checks. The loader has made sure at most one key is set.
    var options: TLSOptions {
        if !verify { return TLSOptions(verification: .none) }
        if let pinned = TLSOptions.fingerprint(parsing: fingerprint) { return TLSOptions(verification: .fingerprint(pinned)) }
        return TLSOptions(verification: .chain(caFile: caFile.isEmpty ? nil : caFile))
    }

    /// How many of the three keys say something other than the default.
    var settingsCount: Int { [!caFile.isEmpty, !fingerprint.isEmpty, !verify].filter { $0 }.count }
}
