/*
 * linked_process.c - a process of the pipeline in a few lines: a router for
 * its events, linked to the host's durable queue (the SQLite file shared with
 * the Python processes; set RINGRIFT_COORDINATION_DIR to use another
 * directory), a subscriber that chains the next stage, and a typed emitter.
 * Run it twice: the second run stores nothing new, its publish is a duplicate
 * of the first within the dedup window (the handler still runs: each
 * process delivers the content once).
 *
 * What the second run prints (the test that runs the examples checks it):
 * CHECK: trained /models/hex8_2p.pth
 * CHECK: the queue already held this content
 */
#include <rre/rre.h>

#include <stdio.h>

/* Runs for every TRAINING_COMPLETED: on the publishing thread for this
 * process's events, on the link's reader thread for those of the other
 * processes of the host (C or Python). */
static int on_trained(const rre_event *ev, void *user_data)
{
    rre_router *router = user_data;
    rre_training_data td;
    if (rre_extract_training_data(ev->payload, &td) != RRE_OK || !td.valid)
        return 1; /* reported as a HANDLER_FAILED event */
    printf("trained %s (event %lld from %s)\n", td.model_path, (long long)ev->event_id,
           ev->hostname);
    return rre_emit_evaluation_completed(router, td.config_key, td.board_type, td.num_players,
                                         td.model_path, 1650.5, 100, 0.72, NULL, NULL, NULL,
                                         NULL) != RRE_OK;
}

static int fail(const char *what)
{
    fprintf(stderr, "linked_process: %s: %s\n", what, rre_last_error());
    return 1;
}

int main(void)
{
    rre_router *router;
    rre_queue *queue;
    rre_link *link;
    if (rre_router_create(&router, NULL) != RRE_OK)
        return fail("router");
    if (rre_queue_create(&queue, NULL) != RRE_OK) /* the default file, shared with Python */
        return fail("queue");
    if (rre_router_subscribe(router, RRE_EV_TRAINING_COMPLETED, "evaluator", on_trained, router,
                             NULL) != RRE_OK ||
        rre_link_create(&link, router, queue, NULL) != RRE_OK) /* after subscribing */
        return fail("subscribe and link");

    /* Validated, hashed, deduplicated, stored in the queue, delivered here. */
    rre_publish_result res;
    if (rre_emit_training_completed(router, "hex8_2p", "hex8", 2, "/models/hex8_2p.pth", 50, 0.0423,
                                    85000, NULL, NULL, NULL, &res) != RRE_OK)
        return fail("publish");
    rre_link_counters c;
    rre_link_get_counters(link, &c);
    printf("event %lld: %s\n", (long long)res.event_id,
           c.queue_duplicates > 0 ? "the queue already held this content" : "stored");

    rre_link_destroy(link);
    rre_router_destroy(router);
    rre_queue_destroy(queue);
    return 0;
}
