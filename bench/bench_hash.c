/*
 * bench_hash.c - how fast the content hash is: canonical JSON plus SHA-256
 * of an 11-field TRAINING_COMPLETED payload (the schemas document's example
 * and a model_id), and each half on its own. Every iteration hashes a
 * distinct payload (samples_trained changes). Each figure runs for about a
 * second. The last line is the one-call EVP_Digest() for comparison with
 * the library's per-thread digest context.
 */
#include "canonical.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint8_t sink;

enum bench_kind { CONTENT_HASH, CANONICAL_ONLY, SHA256_ONLY, EVP_DIGEST_ONLY };

struct bench {
    enum bench_kind kind;
    json_t *payload;
    json_t *counter; /* the samples_trained value, changed every iteration */
    const char *text;
    size_t text_len;
};

static void run(struct bench *b, long iterations)
{
    char room[RRE__CANONICAL_STACK_BUF];
    struct rre__buf buf;
    rre__buf_init(&buf, room, sizeof room);
    char text[1024];
    memcpy(text, b->text, b->text_len);
    EVP_MD *md = b->kind == EVP_DIGEST_ONLY ? EVP_MD_fetch(NULL, "SHA256", NULL) : NULL;
    uint8_t h[RRE_HASH_SIZE] = {0};
    for (long i = 0; i < iterations; i++) {
        rre_status st = RRE_OK;
        switch (b->kind) {
        case CONTENT_HASH:
            json_integer_set(b->counter, 85000 + i);
            st = rre_content_hash(RRE_EV_TRAINING_COMPLETED, b->payload, h);
            break;
        case CANONICAL_ONLY:
            json_integer_set(b->counter, 85000 + i);
            rre__buf_reset(&buf);
            st = rre__canonical_write_payload(b->payload, &buf);
            h[0] ^= (uint8_t)buf.data[buf.len / 2];
            break;
        case SHA256_ONLY:
            text[b->text_len / 2] = (char)('a' + i % 26);
            st = rre__sha256(text, b->text_len, h);
            break;
        case EVP_DIGEST_ONLY: {
            unsigned int out_len;
            text[b->text_len / 2] = (char)('a' + i % 26);
            if (EVP_Digest(text, b->text_len, h, &out_len, md, NULL) != 1)
                st = RRE_ECRYPTO;
            break;
        }
        }
        if (st != RRE_OK) {
            fprintf(stderr, "bench_hash: %s: %s\n", rre_status_name(st), rre_last_error());
            exit(1);
        }
        sink ^= h[0];
    }
    EVP_MD_free(md);
    rre__buf_free(&buf);
}

static void measure(struct bench *b, const char *label)
{
    long n = 1000;
    double elapsed;
    for (;;) {
        double start = now_seconds();
        run(b, n);
        elapsed = now_seconds() - start;
        if (elapsed >= 0.1)
            break;
        n *= 4;
    }
    n = (long)((double)n / elapsed); /* about one second */
    double start = now_seconds();
    run(b, n);
    elapsed = now_seconds() - start;
    printf("hash: %s: %.0f ops/s, %.0f ns/op\n", label, (double)n / elapsed,
           elapsed * 1e9 / (double)n);
}

int main(void)
{
    static const char example[] =
        "{\"config_key\": \"hex8_2p\", \"board_type\": \"hex8\", \"num_players\": 2,"
        " \"model_path\": \"/models/canonical_hex8_2p.pth\", \"epochs\": 50,"
        " \"final_loss\": 0.0423, \"samples_trained\": 85000,"
        " \"job_id\": \"train_hex8_2p_1704100200\", \"duration_seconds\": 1832.5,"
        " \"early_stopped\": true, \"model_id\": \"canonical_hex8_2p\"}";
    json_error_t err;
    json_t *payload = json_loads(example, 0, &err);
    if (payload == NULL || json_object_size(payload) != 11) {
        fprintf(stderr, "bench_hash: bad example payload: %s\n", err.text);
        return 1;
    }
    char *canonical = NULL;
    size_t canonical_len = 0;
    if (rre_canonical_json(payload, &canonical, &canonical_len) != RRE_OK ||
        canonical_len + 32 > 1024) {
        fprintf(stderr, "bench_hash: %s\n", rre_last_error());
        return 1;
    }
    /* What SHA-256 sees: the type name, a newline and the canonical text. */
    char hashed[1024];
    int hashed_len = snprintf(hashed, sizeof hashed, "TRAINING_COMPLETED\n%s", canonical);

    struct bench b = {
        .payload = payload,
        .counter = json_object_get(payload, "samples_trained"),
        .text = hashed,
        .text_len = (size_t)hashed_len,
    };
    char label[128];
    b.kind = CONTENT_HASH;
    measure(&b, "canonical+sha256 11-field payload");
    b.kind = CANONICAL_ONLY;
    measure(&b, "canonical only 11-field payload");
    b.kind = SHA256_ONLY;
    snprintf(label, sizeof label, "sha256 only %d bytes", hashed_len);
    measure(&b, label);
    b.kind = EVP_DIGEST_ONLY;
    snprintf(label, sizeof label, "sha256 with EVP_Digest per call %d bytes", hashed_len);
    measure(&b, label);

    free(canonical);
    json_decref(payload);
    return 0;
}
