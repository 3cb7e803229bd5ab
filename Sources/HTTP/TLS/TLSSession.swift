import CLinux
import Reactor

/// One TLS client session over memory buffers: the bytes the network brings go in with
/// `receive`, the bytes to send come out of `takeOutput`. It never touches a socket, so it
/// cannot block; the connection's own epoll readiness moves it on (OpenSSL's WANT_READ is
/// "wait for the next bytes"; its WANT_WRITE cannot happen with memory buffers).
final class TLSSession {
    private let context: TLSContext
    private let ssl: OpaquePointer
    private let readBuffer: OpaquePointer
    private let writeBuffer: OpaquePointer
    private let host: String
    private var functions: clinux_openssl { context.library.functions }
    private var firstByte: UInt8?
    /// The handshake is done and the certificate accepted.
    private(set) var isEstablished = false
    /// The server sent close_notify: nothing more will come.
    private(set) var isClosed = false
    /// A read or write failed: the session is not to be resumed.
    private var failed = false

    /// `host`: a name (sent as SNI and checked against the certificate) or an IP literal (checked
    /// against the certificate's IP addresses; no SNI).
    init(context: TLSContext, host: String) throws(TLSError) {
        let functions = context.library.functions
        guard let ssl = functions.SSL_new!(context.context),
              let readBuffer = functions.BIO_new!(functions.BIO_s_mem!()),
              let writeBuffer = functions.BIO_new!(functions.BIO_s_mem!()) else {
            throw TLSError("SSL_new failed: \(context.library.takeErrorReason() ?? "out of memory")")
        }
        self.context = context
        self.ssl = ssl
        self.readBuffer = readBuffer
        self.writeBuffer = writeBuffer
        self.host = host
        functions.SSL_set_bio!(ssl, readBuffer, writeBuffer)  // the session owns both buffers now
        functions.SSL_set_connect_state!(ssl)
        switch context.options.verification {
        case .chain, .authority:
            if SocketAddress(numericHost: host, port: 0) != nil {
                _ = functions.X509_VERIFY_PARAM_set1_ip_asc!(functions.SSL_get0_param!(ssl), host)
            } else {
                _ = functions.SSL_set1_host!(ssl, host)
            }
        case .fingerprint, .none:
            break
        }
        if SocketAddress(numericHost: host, port: 0) == nil {
            _ = host.withCString { functions.SSL_ctrl!(ssl, CLINUX_SSL_CTRL_SET_TLSEXT_HOSTNAME, CLINUX_TLSEXT_NAMETYPE_host_name, UnsafeMutableRawPointer(mutating: $0)) }
        }
        if let saved = context.savedSession { _ = functions.SSL_set_session!(ssl, saved) }
    }

    /// Hands the session to the context for the next connection, when it can be resumed (TLS
    /// 1.3 tickets come after the handshake: by the end of a connection they have arrived).
    /// The connection ended cleanly for HTTP's purposes, so it is marked shut down: without
    /// that, SSL_free would mark the session as not resumable.
    deinit {
        if isEstablished && !failed, let session = functions.SSL_get1_session!(ssl) {
            if functions.SSL_SESSION_is_resumable!(session) == 1 {
                functions.SSL_set_shutdown!(ssl, CLINUX_SSL_SENT_SHUTDOWN | CLINUX_SSL_RECEIVED_SHUTDOWN)
                context.save(session)
            } else {
                functions.SSL_SESSION_free!(session)
            }
        }
        functions.SSL_free!(ssl)
    }

    /// Whether the handshake resumed an earlier session.
    var isResumed: Bool { functions.SSL_session_reused!(ssl) == 1 }

    /// Starts the handshake: the ClientHello is then in `takeOutput()`.
    func start() throws(TLSError) {
        _ = try advanceHandshake()
    }

    /// Takes bytes from the network; returns the plaintext they complete. `isEstablished` turns
    /// true on the call that completes the handshake.
    func receive(_ bytes: [UInt8]) throws(TLSError) -> [UInt8] {
        if firstByte == nil { firstByte = bytes.first }
        let written = bytes.withUnsafeBytes { functions.BIO_write!(readBuffer, $0.baseAddress, Int32($0.count)) }
        guard written == bytes.count else { throw TLSError("BIO_write failed") }
        if !isEstablished {
            guard try advanceHandshake() else { return [] }
        }
        var plaintext: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while !isClosed {
            functions.ERR_clear_error!()
            let count = chunk.withUnsafeMutableBytes { functions.SSL_read!(ssl, $0.baseAddress, Int32($0.count)) }
            if count > 0 {
                plaintext += chunk[0..<Int(count)]
                continue
            }
            switch functions.SSL_get_error!(ssl, count) {
            case CLINUX_SSL_ERROR_WANT_READ: return plaintext
            case CLINUX_SSL_ERROR_ZERO_RETURN: isClosed = true
            default:
                failed = true
                throw TLSError("TLS read failed: \(context.library.takeErrorReason() ?? "connection broken")")
            }
        }
        return plaintext
    }

    /// Encrypts `plaintext` for sending (after the handshake).
    func send(_ plaintext: [UInt8]) throws(TLSError) {
        functions.ERR_clear_error!()
        let written = plaintext.withUnsafeBytes { functions.SSL_write!(ssl, $0.baseAddress, Int32($0.count)) }
        guard written == plaintext.count else {
            failed = true
            throw TLSError("TLS write failed: \(context.library.takeErrorReason() ?? "connection broken")")
        }
    }

    /// The bytes waiting to go to the network.
    func takeOutput() -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { functions.BIO_read!(writeBuffer, $0.baseAddress, Int32($0.count)) }
            guard count > 0 else { return output }
            output += chunk[0..<Int(count)]
        }
    }

    /// Runs the handshake as far as the bytes received allow; true once it is done and the
    /// certificate passed the checks the options ask for.
    private func advanceHandshake() throws(TLSError) -> Bool {
        functions.ERR_clear_error!()
        let result = functions.SSL_do_handshake!(ssl)
        if result == 1 {
            try checkFingerprint()
            isEstablished = true
            return true
        }
        switch functions.SSL_get_error!(ssl, result) {
        case CLINUX_SSL_ERROR_WANT_READ, CLINUX_SSL_ERROR_WANT_WRITE:
            return false
        default:
            throw handshakeError()
        }
    }

    private func handshakeError() -> TLSError {
        if let firstByte, !(0x14...0x17).contains(firstByte) {
            return TLSError("the server answered in plain text, not TLS: is this an http:// port?")
        }
        let code = functions.SSL_get_verify_result!(ssl)
        let reason = context.library.takeErrorReason()
        guard code != 0, reason == "certificate verify failed" else {
            return TLSError("TLS handshake failed: \(reason ?? "the server closed the connection")")
        }
        if code == CLINUX_X509_V_ERR_HOSTNAME_MISMATCH || code == CLINUX_X509_V_ERR_IP_ADDRESS_MISMATCH, let names = peerCertificateNames() {
            return TLSError("the certificate of \(host) was refused: it is for \(names), not \(host); put one of its names in the URL, or set tls_fingerprint")
        }
        let why = functions.X509_verify_cert_error_string!(code).map { String(cString: $0) } ?? "error \(code)"
        return TLSError("the certificate of \(host) was refused: \(why); set ca_file to its CA (or to the certificate itself), or tls_fingerprint")
    }

    /// The names of the certificate the server sent. Its chain, not the peer certificate: a
    /// handshake that failed verification never sets that.
    private func peerCertificateNames() -> CertificateNames? {
        guard let chain = functions.SSL_get_peer_cert_chain!(ssl), functions.OPENSSL_sk_num!(chain) > 0,
              let leaf = functions.OPENSSL_sk_value!(chain, 0) else { return nil }
        return CertificateNames(of: OpaquePointer(leaf), functions)
    }

    private func checkFingerprint() throws(TLSError) {
        guard case .fingerprint(let pinned) = context.options.verification else { return }
        guard let certificate = functions.SSL_get1_peer_certificate!(ssl) else {
            throw TLSError("\(host) presented no certificate")
        }
        defer { functions.X509_free!(certificate) }
        var digest = [UInt8](repeating: 0, count: 64)
        var length: UInt32 = 0
        guard functions.X509_digest!(certificate, functions.EVP_sha256!(), &digest, &length) == 1 else {
            throw TLSError("X509_digest failed")
        }
        let actual = Array(digest[0..<Int(length)])
        guard actual == pinned else {
            throw TLSError("the certificate of \(host) does not match tls_fingerprint: it is \(TLSOptions.text(ofFingerprint: actual))")
        }
    }
}
