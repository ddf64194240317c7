/*
 * hash.c - the content hash of an event: SHA-256 over the canonical NAME of
 * its type, a newline, and the canonical JSON of its payload without the
 * top-level envelope fields. The same hash is the dedup key everywhere.
 *
 * DESIGN: libcrypto is opened on the first hash (dynlib.h), so a process
 * that never hashes never maps it; the SHA-256 implementation is then
 * fetched from it once per process (pthread_once) and never released. Each
 * thread keeps its own EVP_MD_CTX in thread-local storage, created on the
 * thread's first hash and freed by a pthread key destructor when the
 * thread exits; reusing it is measurably cheaper than EVP_Digest(), which
 * creates and frees a context per call. Nothing here is shared between threads except the fetched
 * digest, which libcrypto allows to be used concurrently, so no lock is
 * needed.
 */
#include "canonical.h"
#include "dynlib.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

/* libcrypto is opened on the first hash (see dynlib.h): these are the
 * functions used, each then called through its resolved pointer. */
#define CRYPTO_FUNCTIONS(X)                                                                        \
    X(OPENSSL_init_crypto)                                                                         \
    X(EVP_MD_fetch)                                                                                \
    X(EVP_MD_CTX_new)                                                                              \
    X(EVP_MD_CTX_free)                                                                             \
    X(EVP_DigestInit_ex2)                                                                          \
    X(EVP_DigestUpdate)                                                                            \
    X(EVP_DigestFinal_ex)                                                                          \
    X(ERR_get_error)                                                                               \
    X(ERR_error_string_n)                                                                          \
    X(ERR_clear_error)

RRE__DYNLIB_DEFINE(crypto_lib, CRYPTO_FUNCTIONS, RRE_LIBCRYPTO_SONAME, RRE_ECRYPTO)

#define CRYPTO_CALL(f) RRE__DYNLIB_CALL(crypto_lib, f)
#define OPENSSL_init_crypto CRYPTO_CALL(OPENSSL_init_crypto)
#define EVP_MD_fetch CRYPTO_CALL(EVP_MD_fetch)
#define EVP_MD_CTX_new CRYPTO_CALL(EVP_MD_CTX_new)
#define EVP_MD_CTX_free CRYPTO_CALL(EVP_MD_CTX_free)
#define EVP_DigestInit_ex2 CRYPTO_CALL(EVP_DigestInit_ex2)
#define EVP_DigestUpdate CRYPTO_CALL(EVP_DigestUpdate)
#define EVP_DigestFinal_ex CRYPTO_CALL(EVP_DigestFinal_ex)
#define ERR_get_error CRYPTO_CALL(ERR_get_error)
#define ERR_error_string_n CRYPTO_CALL(ERR_error_string_n)
#define ERR_clear_error CRYPTO_CALL(ERR_clear_error)

static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;            /* written once under sha256_once, then read-only */
static pthread_key_t sha256_ctx_key; /* its destructor frees a thread's context */
static bool sha256_key_ok;           /* written once under sha256_once */

static _Thread_local EVP_MD_CTX *thread_ctx;

static void free_thread_ctx(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_init(void)
{
    if (rre__dynlib_load(&crypto_lib, crypto_lib_open) != RRE_OK)
        return; /* sha256_md stays NULL: every hash reports the load's failure */
    /* The content hash needs SHA-256 from the default provider only: the
     * system's openssl.cnf (providers, engines, policies for TLS) is not
     * read for it, which spares about half a MiB of resident pages. A
     * program that initialises OpenSSL itself, earlier or later, still gets
     * its configuration: each part of the initialisation runs once, when
     * first asked for. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_key_ok = pthread_key_create(&sha256_ctx_key, free_thread_ctx) == 0;
}

/* Records libcrypto's most recent error as the detail message. */
static rre_status crypto_error(const char *what)
{
    unsigned long code = ERR_get_error();
    char text[256] = "no detail";
    if (code != 0)
        ERR_error_string_n(code, text, sizeof text);
    ERR_clear_error();
    return rre__error(RRE_ECRYPTO, "SHA-256: %s failed: %s", what, text);
}

static EVP_MD_CTX *get_thread_ctx(void)
{
    if (thread_ctx != NULL)
        return thread_ctx;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return NULL;
    /* Without the key the context cannot be freed at thread exit, so it is
     * not kept: each call then makes and frees its own. */
    if (sha256_key_ok && pthread_setspecific(sha256_ctx_key, ctx) == 0)
        thread_ctx = ctx;
    return ctx;
}

rre_status rre__sha256(const void *data, size_t len, uint8_t out[RRE_HASH_SIZE])
{
    pthread_once(&sha256_once, sha256_init);
    if (crypto_lib.status != RRE_OK) /* libcrypto could not be loaded: say why */
        return rre__dynlib_load(&crypto_lib, crypto_lib_open);
    if (sha256_md == NULL)
        return crypto_error("fetching the digest");
    EVP_MD_CTX *ctx = get_thread_ctx();
    if (ctx == NULL)
        return crypto_error("creating a digest context");
    unsigned int out_len = 0;
    rre_status st = RRE_OK;
    if (EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1)
        st = crypto_error("EVP_DigestInit_ex2");
    else if (EVP_DigestUpdate(ctx, data, len) != 1)
        st = crypto_error("EVP_DigestUpdate");
    else if (EVP_DigestFinal_ex(ctx, out, &out_len) != 1 || out_len != RRE_HASH_SIZE)
        st = crypto_error("EVP_DigestFinal_ex");
    if (ctx != thread_ctx)
        EVP_MD_CTX_free(ctx);
    return st;
}

/* The type whose name is hashed: aliases hash as the type they resolve to,
 * so an event published under an alias is a duplicate of the same event
 * published under its canonical type. */
static const rre_event_info *hashed_type(rre_event_type type)
{
    const rre_event_info *info = rre_event_get(type);
    if (info != NULL && info->alias_of != RRE_EV_NONE)
        info = rre_event_get(info->alias_of);
    return info;
}

rre_status rre__content_hash_with_buf(rre_event_type type, const json_t *payload,
                                      struct rre__buf *buf, uint8_t out[RRE_HASH_SIZE])
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_content_hash: out is NULL");
    const rre_event_info *info = hashed_type(type);
    if (info == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "content hash: unknown event type %d", (int)type);
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "content hash: payload is not a JSON object");
    rre__buf_reset(buf);
    rre_status st = rre__buf_append(buf, info->name, strlen(info->name));
    if (st == RRE_OK)
        st = rre__buf_append(buf, "\n", 1);
    if (st == RRE_OK)
        st = rre__canonical_write_payload(payload, buf);
    if (st == RRE_OK)
        st = rre__sha256(buf->data, buf->len, out);
    return st;
}

rre_status rre_content_hash(rre_event_type type, const json_t *payload, uint8_t out[RRE_HASH_SIZE])
{
    char stack[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, stack, sizeof stack);
    rre_status st = rre__content_hash_with_buf(type, payload, &buf, out);
    rre__buf_free(&buf);
    return st;
}

void rre_hash_to_hex(const uint8_t hash[RRE_HASH_SIZE], char out[RRE_HASH_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < RRE_HASH_SIZE; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 0xf];
    }
    out[2 * RRE_HASH_SIZE] = '\0';
}
