import CLinux
import Reactor

/// The names a certificate is for, as a person reads them: its subject alt names (DNS names
/// and IP addresses), or its subject's common name when it has none (which OpenSSL then checks
/// a host name against). Read from the certificate a server sent, to say why its name check
/// failed; the text is the peer's, so each name is one short line and only a few are quoted.
struct CertificateNames: Equatable, CustomStringConvertible {
    enum Source: Equatable {
        case subjectAltNames
        case commonName
        case none
    }

    let names: [String]
    let source: Source

    static let quotedAtMost = 5

    init(names: [String], source: Source) {
        self.names = names
        self.source = source
    }

    /// The names of `certificate` (an `X509`, not owned).
    init(of certificate: OpaquePointer, _ functions: clinux_openssl) {
        var names: [String] = []
        if let extensionValue = functions.X509_get_ext_d2i!(certificate, CLINUX_NID_subject_alt_name, nil, nil) {
            let stack = OpaquePointer(extensionValue)
            defer { functions.GENERAL_NAMES_free!(stack) }
            for index in 0..<functions.OPENSSL_sk_num!(stack) {
                guard let entry = functions.OPENSSL_sk_value!(stack, index)?.assumingMemoryBound(to: clinux_general_name.self).pointee,
                      let value = entry.value else { continue }
                let bytes = Self.bytes(of: value, functions)
                switch (entry.type, bytes.count) {
                case (CLINUX_GEN_DNS, _): names.append(String(decoding: bytes, as: UTF8.self).oneLine(limit: 80))
                case (CLINUX_GEN_IPADD, 4): names.append(IPv4Address(bytes[0], bytes[1], bytes[2], bytes[3]).description)
                case (CLINUX_GEN_IPADD, 16): names.append(SocketAddress.v6(bytes: bytes, port: 0).hostText)
                default: continue
                }
            }
        }
        if !names.isEmpty {
            self.init(names: names, source: .subjectAltNames)
            return
        }
        if let subject = functions.X509_get_subject_name!(certificate),
           case let index = functions.X509_NAME_get_index_by_NID!(subject, CLINUX_NID_commonName, -1), index >= 0,
           let entry = functions.X509_NAME_get_entry!(subject, index), let data = functions.X509_NAME_ENTRY_get_data!(entry) {
            self.init(names: [String(decoding: Self.bytes(of: data, functions), as: UTF8.self).oneLine(limit: 80)], source: .commonName)
            return
        }
        self.init(names: [], source: .none)
    }

    private static func bytes(of string: OpaquePointer, _ functions: clinux_openssl) -> [UInt8] {
        let count = Int(functions.ASN1_STRING_length!(string))
        guard count > 0, let data = functions.ASN1_STRING_get0_data!(string) else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: count))
    }

    /// "elsewhere.test (its subject alt names)", "a.test, b.test, … and 2 more (…)".
    var description: String {
        let quoted = names.prefix(Self.quotedAtMost).joined(separator: ", ")
        let more = names.count > Self.quotedAtMost ? " and \(names.count - Self.quotedAtMost) more" : ""
        switch source {
        case .subjectAltNames: return "\(quoted)\(more) (its subject alt names)"
        case .commonName: return "\(quoted) (its subject's common name; it has no subject alt names)"
        case .none: return "no name (no subject alt names, no common name)"
        }
    }
}
