import CLinux

/// An OpenSSL client context (`SSL_CTX`) set up for one `TLSOptions`: TLS 1.2 at least, and the
/// CA store and verification mode the options ask for. One per HTTP client, made at its first
/// https connection. It keeps the last resumable session, so that the next connection to the
/// same server resumes it (an abbreviated handshake: no certificate sent, none to check again).
final class TLSContext {
    let library: TLSLibrary
    let options: TLSOptions
    let context: OpaquePointer
    /// An `SSL_SESSION` owned here (one reference), or nil.
    private(set) var savedSession: OpaquePointer?

    init(options: TLSOptions) throws(TLSError) {
        let library = try TLSLibrary.load()
        let functions = library.functions
        guard let context = functions.SSL_CTX_new!(functions.TLS_client_method!()) else {
            throw TLSError("SSL_CTX_new failed: \(library.takeErrorReason() ?? "no reason given")")
        }
        self.library = library
        self.options = options
        self.context = context
        _ = functions.SSL_CTX_ctrl!(context, CLINUX_SSL_CTRL_SET_MIN_PROTO_VERSION, CLINUX_TLS1_2_VERSION, nil)
        switch options.verification {
        case .chain(let caFile?):
            guard functions.SSL_CTX_load_verify_locations!(context, caFile, nil) == 1 else {
                throw TLSError("cannot use ca_file \(caFile): \(library.takeErrorReason() ?? "unreadable")")
            }
            // The server's own certificate as the trust anchor, even when it is no CA.
            _ = functions.X509_VERIFY_PARAM_set_flags!(functions.SSL_CTX_get0_param!(context), CLINUX_X509_V_FLAG_PARTIAL_CHAIN)
            functions.SSL_CTX_set_verify!(context, CLINUX_SSL_VERIFY_PEER, nil)
        case .authority(let pem):
            try Self.trust(pem, in: context, library)
            functions.SSL_CTX_set_verify!(context, CLINUX_SSL_VERIFY_PEER, nil)
        case .chain(nil):
            // Lazy: the hashed directory is read during a handshake, a certificate at a time.
            _ = functions.SSL_CTX_set_default_verify_paths!(context)
            functions.SSL_CTX_set_verify!(context, CLINUX_SSL_VERIFY_PEER, nil)
        case .fingerprint, .none:
            functions.SSL_CTX_set_verify!(context, CLINUX_SSL_VERIFY_NONE, nil)
        }
    }

    /// Adds the certificate in `pem` to the context's (empty) store: the only CA it trusts.
    private static func trust(_ pem: String, in context: OpaquePointer, _ library: TLSLibrary) throws(TLSError) {
        let functions = library.functions
        guard let bio = functions.BIO_new!(functions.BIO_s_mem!()) else { throw TLSError("BIO_new failed") }
        defer { _ = functions.BIO_free!(bio) }
        let bytes = Array(pem.utf8)
        _ = bytes.withUnsafeBytes { functions.BIO_write!(bio, $0.baseAddress, Int32($0.count)) }
        guard let certificate = functions.PEM_read_bio_X509!(bio, nil, nil, nil) else {
            throw TLSError("the built-in CA certificate cannot be read: \(library.takeErrorReason() ?? "not PEM")")
        }
        defer { functions.X509_free!(certificate) }
        guard functions.X509_STORE_add_cert!(functions.SSL_CTX_get_cert_store!(context), certificate) == 1 else {
            throw TLSError("the built-in CA certificate cannot be trusted: \(library.takeErrorReason() ?? "no reason given")")
        }
    }

    deinit {
        if let savedSession { library.functions.SSL_SESSION_free!(savedSession) }
        library.functions.SSL_CTX_free!(context)
    }

    /// Keeps `session` (a reference the caller hands over) for the next connection.
    func save(_ session: OpaquePointer) {
        if let savedSession { library.functions.SSL_SESSION_free!(savedSession) }
        savedSession = session
    }
}
