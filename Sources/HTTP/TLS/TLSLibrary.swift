import CLinux
import Glibc

/// OpenSSL 3 (`libssl.so.3`, `libcrypto.so.3`), opened with dlopen when an https connection is
/// first made: the binary has no link-time dependency on it, and plain-HTTP users need nothing.
/// Opening an already opened library only counts a reference, so each `TLSContext` loads its own.
public struct TLSLibrary {
    static let libraryNames = (ssl: "libssl.so.3", crypto: "libcrypto.so.3")

    let functions: clinux_openssl

    /// Opens both libraries and finds every function; the error names the package to install.
    static func load(ssl: String = libraryNames.ssl, crypto: String = libraryNames.crypto) throws(TLSError) -> TLSLibrary {
        // Kept open for the process's life (never dlclose'd): OpenSSL keeps global state.
        guard let cryptoHandle = dlopen(crypto, RTLD_NOW | RTLD_LOCAL), let sslHandle = dlopen(ssl, RTLD_NOW | RTLD_LOCAL) else {
            throw TLSError(missingLibrary: dlerror().map { String(cString: $0) } ?? ssl)
        }
        var table = clinux_openssl()
        func bind<Function>(_ field: WritableKeyPath<clinux_openssl, Function?>, _ name: String,
                            from handle: UnsafeMutableRawPointer) throws(TLSError) {
            guard let address = dlsym(handle, name) else {
                throw TLSError("\(ssl) lacks \(name): portsync needs OpenSSL 3 (the package libssl3)")
            }
            table[keyPath: field] = unsafeBitCast(address, to: Function.self)
        }
        try bind(\.TLS_client_method, "TLS_client_method", from: sslHandle)
        try bind(\.SSL_CTX_new, "SSL_CTX_new", from: sslHandle)
        try bind(\.SSL_CTX_free, "SSL_CTX_free", from: sslHandle)
        try bind(\.SSL_CTX_ctrl, "SSL_CTX_ctrl", from: sslHandle)
        try bind(\.SSL_CTX_set_default_verify_paths, "SSL_CTX_set_default_verify_paths", from: sslHandle)
        try bind(\.SSL_CTX_load_verify_locations, "SSL_CTX_load_verify_locations", from: sslHandle)
        try bind(\.SSL_CTX_set_verify, "SSL_CTX_set_verify", from: sslHandle)
        try bind(\.SSL_CTX_get0_param, "SSL_CTX_get0_param", from: sslHandle)
        try bind(\.SSL_CTX_get_cert_store, "SSL_CTX_get_cert_store", from: sslHandle)
        try bind(\.SSL_new, "SSL_new", from: sslHandle)
        try bind(\.SSL_free, "SSL_free", from: sslHandle)
        try bind(\.SSL_set_bio, "SSL_set_bio", from: sslHandle)
        try bind(\.SSL_set_connect_state, "SSL_set_connect_state", from: sslHandle)
        try bind(\.SSL_ctrl, "SSL_ctrl", from: sslHandle)
        try bind(\.SSL_set1_host, "SSL_set1_host", from: sslHandle)
        try bind(\.SSL_get0_param, "SSL_get0_param", from: sslHandle)
        try bind(\.SSL_do_handshake, "SSL_do_handshake", from: sslHandle)
        try bind(\.SSL_read, "SSL_read", from: sslHandle)
        try bind(\.SSL_write, "SSL_write", from: sslHandle)
        try bind(\.SSL_get_error, "SSL_get_error", from: sslHandle)
        try bind(\.SSL_get_verify_result, "SSL_get_verify_result", from: sslHandle)
        try bind(\.SSL_get1_peer_certificate, "SSL_get1_peer_certificate", from: sslHandle)
        try bind(\.SSL_get1_session, "SSL_get1_session", from: sslHandle)
        try bind(\.SSL_set_session, "SSL_set_session", from: sslHandle)
        try bind(\.SSL_session_reused, "SSL_session_reused", from: sslHandle)
        try bind(\.SSL_SESSION_is_resumable, "SSL_SESSION_is_resumable", from: sslHandle)
        try bind(\.SSL_SESSION_free, "SSL_SESSION_free", from: sslHandle)
        try bind(\.SSL_set_shutdown, "SSL_set_shutdown", from: sslHandle)
        try bind(\.SSL_get_peer_cert_chain, "SSL_get_peer_cert_chain", from: sslHandle)
        try bind(\.BIO_s_mem, "BIO_s_mem", from: cryptoHandle)
        try bind(\.BIO_new, "BIO_new", from: cryptoHandle)
        try bind(\.BIO_read, "BIO_read", from: cryptoHandle)
        try bind(\.BIO_write, "BIO_write", from: cryptoHandle)
        try bind(\.BIO_free, "BIO_free", from: cryptoHandle)
        try bind(\.PEM_read_bio_X509, "PEM_read_bio_X509", from: cryptoHandle)
        try bind(\.X509_STORE_add_cert, "X509_STORE_add_cert", from: cryptoHandle)
        try bind(\.X509_VERIFY_PARAM_set1_ip_asc, "X509_VERIFY_PARAM_set1_ip_asc", from: cryptoHandle)
        try bind(\.X509_VERIFY_PARAM_set_flags, "X509_VERIFY_PARAM_set_flags", from: cryptoHandle)
        try bind(\.X509_verify_cert_error_string, "X509_verify_cert_error_string", from: cryptoHandle)
        try bind(\.X509_digest, "X509_digest", from: cryptoHandle)
        try bind(\.X509_free, "X509_free", from: cryptoHandle)
        try bind(\.X509_get_ext_d2i, "X509_get_ext_d2i", from: cryptoHandle)
        try bind(\.X509_get_subject_name, "X509_get_subject_name", from: cryptoHandle)
        try bind(\.X509_NAME_get_index_by_NID, "X509_NAME_get_index_by_NID", from: cryptoHandle)
        try bind(\.X509_NAME_get_entry, "X509_NAME_get_entry", from: cryptoHandle)
        try bind(\.X509_NAME_ENTRY_get_data, "X509_NAME_ENTRY_get_data", from: cryptoHandle)
        try bind(\.GENERAL_NAMES_free, "GENERAL_NAMES_free", from: cryptoHandle)
        try bind(\.ASN1_STRING_get0_data, "ASN1_STRING_get0_data", from: cryptoHandle)
        try bind(\.ASN1_STRING_length, "ASN1_STRING_length", from: cryptoHandle)
        try bind(\.OPENSSL_sk_num, "OPENSSL_sk_num", from: cryptoHandle)
        try bind(\.OPENSSL_sk_value, "OPENSSL_sk_value", from: cryptoHandle)
        try bind(\.EVP_sha256, "EVP_sha256", from: cryptoHandle)
        try bind(\.ERR_get_error, "ERR_get_error", from: cryptoHandle)
        try bind(\.ERR_reason_error_string, "ERR_reason_error_string", from: cryptoHandle)
        try bind(\.ERR_clear_error, "ERR_clear_error", from: cryptoHandle)
        return TLSLibrary(functions: table)
    }

    /// Whether OpenSSL 3 can be opened: checked at start when an https URL is configured.
    public static func check() throws(TLSError) {
        _ = try load()
    }

    /// The reason of the oldest error in OpenSSL's queue ("wrong version number"), and the queue
    /// emptied; nil when it was empty.
    func takeErrorReason() -> String? {
        let code = functions.ERR_get_error()
        defer { functions.ERR_clear_error() }
        guard code != 0 else { return nil }
        return functions.ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)"
    }
}

/// Why a TLS connection could not be made or used: one line, with what to set when the fix is
/// a setting.
public struct TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }

    init(missingLibrary detail: String) {
        description = "https needs OpenSSL 3, which is not installed (\(detail.oneLine())): install the package libssl3"
    }
}
