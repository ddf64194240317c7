/*
 * coordinator.c - the pipeline coordinator pattern in C: a
 * coordinator subscribes early, and each completion event triggers the next
 * stage by publishing from inside its handler (event chaining):
 *
 *   SELFPLAY_COMPLETE    -> (sync would start; here: training)
 *   TRAINING_COMPLETED   -> evaluation: EVALUATION_STARTED, EVALUATION_COMPLETED
 *   EVALUATION_COMPLETED -> MODEL_PROMOTED when the Elo is above 1700
 *
 * Events are published asynchronously, so handlers run on the router's
 * worker threads; rre_router_flush() waits for the chain to settle. At the
 * end it prints the history (one trace id runs through the whole chain),
 * the flow check and unsubscribes before shutting down.
 */
#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct coordinator {
    rre_router *router;
    rre_subscription_id subs[3];
    const rre_publish_options *async;
};

/* SELFPLAY_COMPLETE (any of its stage spellings): enough games, so train. */
static int on_selfplay_done(const rre_event *ev, void *user_data)
{
    struct coordinator *c = user_data;
    const char *config = json_string_value(json_object_get(ev->payload, "config_key"));
    json_int_t games = json_integer_value(json_object_get(ev->payload, "games_completed"));
    printf("[coordinator] selfplay produced %lld games for %s: training\n", (long long)games,
           config != NULL ? config : "?");
    rre_training_started_optional ts = {.config_key = config, .job_id = "train_hex8_2p_42"};
    if (rre_emit_training_started(c->router, &ts, NULL, c->async, NULL) != RRE_OK)
        return 1;
    rre_training_completed_optional tc = {.job_id = "train_hex8_2p_42"};
    return rre_emit_training_completed(c->router, config, "hex8", 2, "/models/hex8_2p_v42.pth", 20,
                                       0.05, (int64_t)games * 100, &tc, NULL, c->async,
                                       NULL) != RRE_OK;
}

/* TRAINING_COMPLETED: evaluate the new model. */
static int on_training_done(const rre_event *ev, void *user_data)
{
    struct coordinator *c = user_data;
    rre_training_data td;
    if (rre_extract_training_data(ev->payload, &td) != RRE_OK || !td.valid)
        return 1; /* reported as HANDLER_FAILED */
    printf("[coordinator] training done: %s (loss %.3f), evaluating\n", td.model_path,
           td.final_loss);
    rre_evaluation_started_optional es = {.model_id = "hex8_2p_v42", .board_type = td.board_type};
    if (rre_emit_evaluation_started(c->router, &es, NULL, c->async, NULL) != RRE_OK)
        return 1;
    rre_evaluation_completed_optional ec = {.model_id = "hex8_2p_v42"};
    return rre_emit_evaluation_completed(c->router, td.config_key, td.board_type, td.num_players,
                                         td.model_path, 1720.0, 100, 0.75, &ec, NULL, c->async,
                                         NULL) != RRE_OK;
}

/* EVALUATION_COMPLETED: promote a strong model. */
static int on_eval_done(const rre_event *ev, void *user_data)
{
    struct coordinator *c = user_data;
    rre_evaluation_data ed;
    if (rre_extract_evaluation_data(ev->payload, &ed) != RRE_OK || !ed.valid)
        return 1;
    if (ed.elo <= 1700) {
        printf("[coordinator] Elo %.0f: not promoting\n", ed.elo);
        return 0;
    }
    printf("[coordinator] high Elo %.0f: promoting %s\n", ed.elo, ed.model_path);
    return rre_emit_model_promoted(c->router, ed.config_key, ed.model_path, ed.elo, NULL, NULL,
                                   c->async, NULL) != RRE_OK;
}

int main(void)
{
    static const rre_publish_options async = {.flags = RRE_PUBLISH_ASYNC};
    struct coordinator c = {.async = &async};
    rre_router_options *opts = NULL;
    rre_status st = rre_router_options_create(&opts);
    if (st == RRE_OK)
        st = rre_router_options_set_source(opts, "example_coordinator");
    if (st == RRE_OK)
        st = rre_router_create(&c.router, opts);
    rre_router_options_destroy(opts);
    if (st != RRE_OK) {
        fprintf(stderr, "coordinator: %s\n", rre_last_error());
        return 1;
    }

    /* Subscribe early; a stage-event spelling resolves to its data event. */
    st = rre_router_subscribe_spelling(c.router, "SELFPLAY_COMPLETE", "on_selfplay_done",
                                       on_selfplay_done, &c, &c.subs[0]);
    if (st == RRE_OK)
        st = rre_router_subscribe(c.router, RRE_EV_TRAINING_COMPLETED, "on_training_done",
                                  on_training_done, &c, &c.subs[1]);
    if (st == RRE_OK)
        st = rre_router_subscribe(c.router, RRE_EV_EVALUATION_COMPLETED, "on_eval_done",
                                  on_eval_done, &c, &c.subs[2]);
    if (st != RRE_OK) {
        fprintf(stderr, "coordinator: %s\n", rre_last_error());
        rre_router_destroy(c.router);
        return 1;
    }

    /* A producer elsewhere in the process reports a selfplay batch. */
    rre_selfplay_complete_optional sp = {.node_id = "gpu-node-3"};
    st = rre_emit_selfplay_complete(c.router, "hex8_2p", 500, &sp, NULL, &async, NULL);
    if (st == RRE_OK)
        st = rre_router_flush(c.router, 10.0);
    if (st != RRE_OK)
        fprintf(stderr, "coordinator: %s\n", rre_last_error());

    rre_event_list *history = NULL;
    if (rre_router_history(c.router, RRE_EV_NONE, 0, &history) == RRE_OK) {
        printf("history (oldest first):\n");
        for (size_t i = 0; i < history->count; i++)
            printf("  %-22s trace %.35s...\n", rre_event_name(history->events[i].type),
                   history->events[i].trace_id);
        rre_event_list_free(history);
    }
    json_t *health = NULL;
    if (rre_router_validate_flow_json(c.router, &health) == RRE_OK) {
        char *text = json_dumps(health, JSON_COMPACT);
        printf("flow: %s\n", text != NULL ? text : "?");
        free(text);
        json_decref(health);
    }

    for (size_t i = 0; i < 3; i++)
        rre_router_unsubscribe(c.router, c.subs[i]);
    rre_router_destroy(c.router);
    return 0;
}
