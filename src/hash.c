/*
 * hash.c - the content hash of an event: SHA-256 over the canonical NAME of
 * its type, a newline, and the canonical JSON of its payload without the
 * top-level envelope fields. The same hash is the dedup key everywhere.
 *
 * DESIGN: libcrypto is opened on the first hash (dynlib.h), so a process
 * that never hashes never maps it. The digest is computed with libcrypto's
 * own SHA-256 functions (SHA256_Init/Update/Final), not through EVP: EVP
 * fetches the implementation from a provider, whose set-up touches about
 * 1.4 MiB more of the library, and each EVP call goes through the provider's
 * dispatch (about 290 ns per hash of an 11-field payload against 210 here,
 * measured on this kind of machine). OpenSSL 3.0 marks these functions
 * deprecated in favour of EVP, but every libcrypto.so.3 exports them, and
 * the library is found by that soname. They keep no state between calls
 * (the context is on the caller's stack) and cannot fail, so there is
 * nothing to share between threads and no lock.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends: see above */
#include "canonical.h"
#include "dynlib.h"

#include <openssl/sha.h>
#include <string.h>

/* libcrypto is opened on the first hash (see dynlib.h): these are the
 * functions used, each then called through its resolved pointer. */
#define CRYPTO_FUNCTIONS(X)                                                                        \
    X(SHA256_Init)                                                                                 \
    X(SHA256_Update)                                                                               \
    X(SHA256_Final)

RRE__DYNLIB_DEFINE(crypto_lib, CRYPTO_FUNCTIONS, RRE_LIBCRYPTO_SONAME, RRE_ECRYPTO)

#define CRYPTO_CALL(f) RRE__DYNLIB_CALL(crypto_lib, f)
#define SHA256_Init CRYPTO_CALL(SHA256_Init)
#define SHA256_Update CRYPTO_CALL(SHA256_Update)
#define SHA256_Final CRYPTO_CALL(SHA256_Final)

rre_status rre__sha256(const void *data, size_t len, uint8_t out[RRE_HASH_SIZE])
{
    rre_status st = rre__dynlib_load(&crypto_lib, crypto_lib_open);
    if (st != RRE_OK) /* libcrypto could not be loaded: the error says why */
        return st;
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data, len) != 1 ||
        SHA256_Final(out, &ctx) != 1)
        return rre__error(RRE_ECRYPTO, "SHA-256 failed in libcrypto");
    return RRE_OK;
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
