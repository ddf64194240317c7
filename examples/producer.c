/*
 * producer.c - a component that publishes pipeline events through the
 * router with the typed emitters, and what the router reports back.
 *
 * It publishes a selfplay batch and a finished training run, publishes the
 * same training result again (the dedup window drops it), prints each
 * publish result, then the router's statistics as JSON.
 */
#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>

static int print_event(const rre_event *ev, void *user_data)
{
    (void)user_data;
    char *text = json_dumps(ev->payload, JSON_COMPACT | JSON_SORT_KEYS);
    printf("  handler got %s from %s at %s: %s\n", rre_event_name(ev->type), ev->source,
           ev->timestamp, text != NULL ? text : "?");
    free(text);
    return 0;
}

static void report(const char *what, rre_status st, const rre_publish_result *res)
{
    if (st != RRE_OK) {
        printf("%s: %s (%s)\n", what, rre_strerror(st), rre_last_error());
        return;
    }
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(res->hash, hex);
    printf("%s: %s, hash %.16s..., trace %s, %zu handler(s)\n", what,
           res->duplicate ? "duplicate, dropped" : "published", hex, res->trace_id, res->delivered);
}

int main(void)
{
    rre_router_options *opts = NULL;
    rre_router *router = NULL;
    rre_status st = rre_router_options_create(&opts);
    if (st == RRE_OK)
        st = rre_router_options_set_source(opts, "example_producer");
    if (st == RRE_OK)
        st = rre_router_options_set_validation(opts, RRE_VALIDATE_STRICT);
    if (st == RRE_OK)
        st = rre_router_create(&router, opts);
    rre_router_options_destroy(opts);
    if (st != RRE_OK) {
        fprintf(stderr, "producer: %s\n", rre_last_error());
        return 1;
    }
    rre_router_subscribe_all(router, "printer", print_event, NULL, NULL);

    rre_publish_result res;
    rre_selfplay_complete_optional sp = {.node_id = "runpod-h100",
                                         .duration_seconds = &(double){120.5},
                                         .board_type = "hex8",
                                         .num_players = &(int64_t){2}};
    st = rre_emit_selfplay_complete(router, "hex8_2p", 500, &sp, NULL, NULL, &res);
    report("SELFPLAY_COMPLETE", st, &res);

    rre_training_completed_optional tc = {.job_id = "train_hex8_2p_1704100200",
                                          .duration_seconds = &(double){1832.5},
                                          .early_stopped = &(bool){true}};
    for (int i = 0; i < 2; i++) {
        st = rre_emit_training_completed(router, "hex8_2p", "hex8", 2,
                                         "/models/canonical_hex8_2p.pth", 50, 0.0423, 85000, &tc,
                                         NULL, NULL, &res);
        report("TRAINING_COMPLETED", st, &res);
    }

    /* Strict validation refuses a payload missing required fields. */
    json_t *bad = json_pack("{s:s}", "config_key", "hex8_2p");
    st = rre_router_publish(router, "training_completed", bad, NULL, &res);
    report("incomplete TRAINING_COMPLETED", st, &res);
    json_decref(bad);

    json_t *stats = NULL;
    if (rre_router_stats_json(router, &stats) == RRE_OK) {
        char *text = json_dumps(stats, JSON_COMPACT);
        printf("stats: %s\n", text != NULL ? text : "?");
        free(text);
        json_decref(stats);
    }
    rre_router_destroy(router);
    return 0;
}
