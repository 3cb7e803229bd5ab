/// How a client checks the server's certificate: the configuration keys `ca_file`,
/// `tls_fingerprint` and `tls_verify` of a client (or of Gluetun).
public struct TLSOptions: Equatable, Sendable {
    public enum Verification: Equatable, Sendable {
        /// The chain up to a trusted CA and the name (or IP address) in the certificate: the
        /// system's CA store, or only the certificates in `caFile` when one is set.
        case chain(caFile: String?)
        /// The chain up to the CA given here as PEM text (one built into portsync, as PIA's) and
        /// the name.
        case authority(pem: String)
        /// Only this SHA-256 of the server's certificate (DER) is accepted; chain and name are not
        /// checked (a self-signed certificate with any name).
        case fingerprint([UInt8])
        /// Nothing is checked (`tls_verify = false`): warned about at every start.
        case none
    }

    public var verification: Verification
    /// The name checked in the certificate (and sent as SNI) instead of the URL's host: a server
    /// connected to by its address whose certificate names it otherwise (PIA's, by their common
    /// name). No lookup is made of it.
    public var serverName: String?

    public init(verification: Verification = .chain(caFile: nil), serverName: String? = nil) {
        self.verification = verification
        self.serverName = serverName
    }

    /// A SHA-256 fingerprint as written by `openssl x509 -fingerprint -sha256` (colons) or as
    /// plain hex, either case; nil unless it is exactly 32 bytes.
    public static func fingerprint(parsing text: String) -> [UInt8]? {
        let digits = Array(text.utf8.filter { $0 != UInt8(ascii: ":") })
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 64, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// `AB:CD:…`, as openssl prints it.
    public static func text(ofFingerprint bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        return bytes.map { String(decoding: [digits[Int($0 >> 4)], digits[Int($0 & 15)]], as: UTF8.self) }.joined(separator: ":")
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
