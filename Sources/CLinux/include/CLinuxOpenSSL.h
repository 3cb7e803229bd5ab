// The few OpenSSL 3 types and functions portsync uses, declared here so that the build needs no
// -dev package and the binary no link-time libssl: the library is opened with dlopen only when
// an https URL is configured, and each pointer below is filled from dlsym (HTTP's TLSLibrary).
// Types are opaque; the signatures are OpenSSL 3.0's. No logic lives here.
#ifndef CLINUX_OPENSSL_H
#define CLINUX_OPENSSL_H

#include <stddef.h>

typedef struct ssl_st CLINUX_SSL;
typedef struct ssl_ctx_st CLINUX_SSL_CTX;
typedef struct ssl_method_st CLINUX_SSL_METHOD;
typedef struct bio_st CLINUX_BIO;
typedef struct bio_method_st CLINUX_BIO_METHOD;
typedef struct x509_st CLINUX_X509;
typedef struct X509_VERIFY_PARAM_st CLINUX_X509_VERIFY_PARAM;
typedef struct evp_md_st CLINUX_EVP_MD;
typedef struct ssl_session_st CLINUX_SSL_SESSION;
typedef struct stack_st CLINUX_STACK;
typedef struct asn1_string_st CLINUX_ASN1_STRING;
typedef struct X509_name_st CLINUX_X509_NAME;
typedef struct X509_name_entry_st CLINUX_X509_NAME_ENTRY;
typedef struct x509_store_st CLINUX_X509_STORE;

/// x509v3.h's GENERAL_NAME: a type and, for the types read here (GEN_DNS, GEN_IPADD), an
/// ASN1_STRING in its union of pointers.
struct clinux_general_name {
    int type;
    CLINUX_ASN1_STRING *value;
};

// Values from ssl.h, x509_vfy.h and tls1.h (stable across OpenSSL 1.1 and 3).
static const int CLINUX_SSL_ERROR_SSL = 1;
static const int CLINUX_SSL_ERROR_WANT_READ = 2;
static const int CLINUX_SSL_ERROR_WANT_WRITE = 3;
static const int CLINUX_SSL_ERROR_SYSCALL = 5;
static const int CLINUX_SSL_ERROR_ZERO_RETURN = 6;
static const int CLINUX_SSL_VERIFY_NONE = 0;
static const int CLINUX_SSL_VERIFY_PEER = 1;
static const int CLINUX_SSL_CTRL_SET_TLSEXT_HOSTNAME = 55;
static const int CLINUX_SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
static const long CLINUX_TLSEXT_NAMETYPE_host_name = 0;
static const long CLINUX_TLS1_2_VERSION = 0x0303;
static const unsigned long CLINUX_X509_V_FLAG_PARTIAL_CHAIN = 0x80000;
static const int CLINUX_SSL_SENT_SHUTDOWN = 1;
static const int CLINUX_SSL_RECEIVED_SHUTDOWN = 2;
// x509_vfy.h, obj_mac.h and x509v3.h: the name checks' failures, the NIDs and name types read.
static const long CLINUX_X509_V_ERR_HOSTNAME_MISMATCH = 62;
static const long CLINUX_X509_V_ERR_IP_ADDRESS_MISMATCH = 64;
static const int CLINUX_NID_commonName = 13;
static const int CLINUX_NID_subject_alt_name = 85;
static const int CLINUX_GEN_DNS = 2;
static const int CLINUX_GEN_IPADD = 7;

/// The functions, filled by dlsym. libssl: SSL_*, TLS_client_method; libcrypto: the rest.
struct clinux_openssl {
    const CLINUX_SSL_METHOD *(*TLS_client_method)(void);
    CLINUX_SSL_CTX *(*SSL_CTX_new)(const CLINUX_SSL_METHOD *method);
    void (*SSL_CTX_free)(CLINUX_SSL_CTX *context);
    long (*SSL_CTX_ctrl)(CLINUX_SSL_CTX *context, int command, long larg, void *parg);
    int (*SSL_CTX_set_default_verify_paths)(CLINUX_SSL_CTX *context);
    int (*SSL_CTX_load_verify_locations)(CLINUX_SSL_CTX *context, const char *file, const char *path);
    void (*SSL_CTX_set_verify)(CLINUX_SSL_CTX *context, int mode, void *callback);
    CLINUX_X509_VERIFY_PARAM *(*SSL_CTX_get0_param)(CLINUX_SSL_CTX *context);
    CLINUX_X509_STORE *(*SSL_CTX_get_cert_store)(const CLINUX_SSL_CTX *context);
    CLINUX_SSL *(*SSL_new)(CLINUX_SSL_CTX *context);
    void (*SSL_free)(CLINUX_SSL *ssl);
    void (*SSL_set_bio)(CLINUX_SSL *ssl, CLINUX_BIO *readBIO, CLINUX_BIO *writeBIO);
    void (*SSL_set_connect_state)(CLINUX_SSL *ssl);
    long (*SSL_ctrl)(CLINUX_SSL *ssl, int command, long larg, void *parg);
    int (*SSL_set1_host)(CLINUX_SSL *ssl, const char *hostname);
    CLINUX_X509_VERIFY_PARAM *(*SSL_get0_param)(CLINUX_SSL *ssl);
    int (*SSL_do_handshake)(CLINUX_SSL *ssl);
    int (*SSL_read)(CLINUX_SSL *ssl, void *buffer, int count);
    int (*SSL_write)(CLINUX_SSL *ssl, const void *buffer, int count);
    int (*SSL_get_error)(const CLINUX_SSL *ssl, int result);
    long (*SSL_get_verify_result)(const CLINUX_SSL *ssl);
    CLINUX_X509 *(*SSL_get1_peer_certificate)(const CLINUX_SSL *ssl);
    CLINUX_SSL_SESSION *(*SSL_get1_session)(CLINUX_SSL *ssl);
    int (*SSL_set_session)(CLINUX_SSL *ssl, CLINUX_SSL_SESSION *session);
    int (*SSL_session_reused)(const CLINUX_SSL *ssl);
    int (*SSL_SESSION_is_resumable)(const CLINUX_SSL_SESSION *session);
    void (*SSL_SESSION_free)(CLINUX_SSL_SESSION *session);
    void (*SSL_set_shutdown)(CLINUX_SSL *ssl, int mode);
    CLINUX_STACK *(*SSL_get_peer_cert_chain)(const CLINUX_SSL *ssl);
    const CLINUX_BIO_METHOD *(*BIO_s_mem)(void);
    CLINUX_BIO *(*BIO_new)(const CLINUX_BIO_METHOD *method);
    int (*BIO_read)(CLINUX_BIO *bio, void *buffer, int count);
    int (*BIO_write)(CLINUX_BIO *bio, const void *buffer, int count);
    int (*BIO_free)(CLINUX_BIO *bio);
    CLINUX_X509 *(*PEM_read_bio_X509)(CLINUX_BIO *bio, CLINUX_X509 **certificate, void *callback, void *userData);
    int (*X509_STORE_add_cert)(CLINUX_X509_STORE *store, CLINUX_X509 *certificate);
    int (*X509_VERIFY_PARAM_set1_ip_asc)(CLINUX_X509_VERIFY_PARAM *param, const char *address);
    int (*X509_VERIFY_PARAM_set_flags)(CLINUX_X509_VERIFY_PARAM *param, unsigned long flags);
    const char *(*X509_verify_cert_error_string)(long code);
    int (*X509_digest)(const CLINUX_X509 *certificate, const CLINUX_EVP_MD *type, unsigned char *digest, unsigned int *length);
    void (*X509_free)(CLINUX_X509 *certificate);
    void *(*X509_get_ext_d2i)(const CLINUX_X509 *certificate, int nid, int *critical, int *index);
    CLINUX_X509_NAME *(*X509_get_subject_name)(const CLINUX_X509 *certificate);
    int (*X509_NAME_get_index_by_NID)(const CLINUX_X509_NAME *name, int nid, int lastPosition);
    CLINUX_X509_NAME_ENTRY *(*X509_NAME_get_entry)(const CLINUX_X509_NAME *name, int location);
    CLINUX_ASN1_STRING *(*X509_NAME_ENTRY_get_data)(const CLINUX_X509_NAME_ENTRY *entry);
    void (*GENERAL_NAMES_free)(CLINUX_STACK *names);
    const unsigned char *(*ASN1_STRING_get0_data)(const CLINUX_ASN1_STRING *string);
    int (*ASN1_STRING_length)(const CLINUX_ASN1_STRING *string);
    int (*OPENSSL_sk_num)(const CLINUX_STACK *stack);
    void *(*OPENSSL_sk_value)(const CLINUX_STACK *stack, int index);
    const CLINUX_EVP_MD *(*EVP_sha256)(void);
    unsigned long (*ERR_get_error)(void);
    const char *(*ERR_reason_error_string)(unsigned long code);
    void (*ERR_clear_error)(void);
};

#endif
