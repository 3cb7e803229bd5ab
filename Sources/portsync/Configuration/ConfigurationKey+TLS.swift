import HTTP

extension ConfigurationKey {
    /// `ca_file`, `tls_fingerprint` and `tls_verify` of one section whose server may be https.
    static func tlsKeys(section: String, _ field: WritableKeyPath<Configuration, Configuration.TLS> & Sendable) -> [ConfigurationKey] {
        [
            ConfigurationKey(section: section, name: "ca_file", kind: .string, flag: nil,
                             current: .quoted({ $0[keyPath: field].caFile }),
                             summary: "PEM file of the CA (or the certificate itself) that the https server's certificate must chain to; empty: the system's CAs") { config, value, context throws(InvalidValue) in
                config[keyPath: field].caFile = try optionalPath(value, context)
            },
            ConfigurationKey(section: section, name: "tls_fingerprint", kind: .string, flag: nil,
                             current: .quoted({ $0[keyPath: field].fingerprint }),
                             summary: "SHA-256 of the https server's certificate, pinned instead of a CA (openssl x509 -noout -fingerprint -sha256)") { config, value, _ throws(InvalidValue) in
                let text = try value.string()
                guard text.isEmpty || TLSOptions.fingerprint(parsing: text) != nil else {
                    throw InvalidValue("\"\(text)\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)")
                }
                config[keyPath: field].fingerprint = text
            },
            ConfigurationKey(section: section, name: "tls_verify", kind: .boolean, flag: nil,
                             current: .plain({ String($0[keyPath: field].verify) }),
                             summary: "check the https server's certificate; false accepts any (warned about at every start)") { config, value, _ throws(InvalidValue) in
                config[keyPath: field].verify = try value.boolean()
            },
        ]
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
