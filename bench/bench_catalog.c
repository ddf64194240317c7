/*
 * bench_catalog.c - the costs in front of the hash on the publish path:
 * resolving a type from its spellings, parsing a payload from text,
 * normalising aliases, and validating the 11-field TRAINING_COMPLETED
 * payload of the schemas document (with and without notes on unknown
 * fields). Each figure runs for about a second.
 */
#include <rre/rre.h>

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

static const char EXAMPLE[] =
    "{\"config_key\": \"hex8_2p\", \"board_type\": \"hex8\", \"num_players\": 2,"
    " \"model_path\": \"/models/canonical_hex8_2p.pth\", \"epochs\": 50,"
    " \"final_loss\": 0.0423, \"samples_trained\": 85000,"
    " \"job_id\": \"train_hex8_2p_1704100200\", \"duration_seconds\": 1832.5,"
    " \"early_stopped\": true, \"model_id\": \"canonical_hex8_2p\"}";

/* Spellings a publisher or a row may use: NAME, value, queue spelling,
 * stage name, mixed case. */
static const char *const SPELLINGS[] = {
    "TRAINING_COMPLETED", "training_completed",  "training_complete", "Model_Promoted",
    "selfplay_complete",  "DATA_SYNC_COMPLETED", "sync_complete",     "work_queued",
};
#define N_SPELLINGS (sizeof SPELLINGS / sizeof SPELLINGS[0])

enum kind { LOOKUP, PARSE, NORMALIZE, VALIDATE, VALIDATE_NOTES };

static json_t *payload;
static volatile unsigned sink;

static void fail(const char *what, rre_status st)
{
    fprintf(stderr, "bench_catalog: %s: %s: %s\n", what, rre_strerror(st), rre_last_error());
    exit(1);
}

static void run(enum kind k, long n)
{
    rre_problems pr;
    for (long i = 0; i < n; i++) {
        rre_status st = RRE_OK;
        switch (k) {
        case LOOKUP: {
            rre_event_type t;
            st = rre_event_lookup(SPELLINGS[(size_t)i % N_SPELLINGS], &t);
            sink += (unsigned)t;
            break;
        }
        case PARSE: {
            json_t *p;
            st = rre_payload_parse(EXAMPLE, sizeof EXAMPLE - 1, &p);
            if (st == RRE_OK) {
                sink += (unsigned)json_object_size(p);
                json_decref(p);
            }
            break;
        }
        case NORMALIZE:
            sink += (unsigned)rre_payload_normalize(payload);
            break;
        case VALIDATE:
        case VALIDATE_NOTES:
            st = rre_validate(RRE_EV_TRAINING_COMPLETED, payload,
                              k == VALIDATE_NOTES ? RRE_VALIDATE_NOTES : 0u, &pr);
            sink += (unsigned)pr.count;
            break;
        }
        if (st != RRE_OK)
            fail("run", st);
    }
}

static void measure(enum kind k, const char *label)
{
    long n = 1000;
    double elapsed;
    for (;;) {
        double start = now_seconds();
        run(k, n);
        elapsed = now_seconds() - start;
        if (elapsed >= 0.1)
            break;
        n *= 4;
    }
    n = (long)((double)n / elapsed);
    double start = now_seconds();
    run(k, n);
    elapsed = now_seconds() - start;
    printf("catalog: %-46s %10.0f ops/s %8.1f ns/op\n", label, (double)n / elapsed,
           elapsed * 1e9 / (double)n);
}

int main(void)
{
    rre_status st = rre_payload_parse(EXAMPLE, sizeof EXAMPLE - 1, &payload);
    if (st != RRE_OK)
        fail("example payload", st);
    rre_problems pr;
    if (rre_validate(RRE_EV_TRAINING_COMPLETED, payload, 0, &pr) != RRE_OK)
        fail("the example payload is not valid", RRE_EINVALID_PAYLOAD);
    measure(LOOKUP, "type lookup, 8 spellings in turn:");
    measure(PARSE, "parse the 11-field payload from text:");
    measure(NORMALIZE, "normalise aliases (none to rename):");
    measure(VALIDATE, "validate the 11-field payload:");
    measure(VALIDATE_NOTES, "validate it, with notes on unknown fields:");
    json_decref(payload);
    return 0;
}
