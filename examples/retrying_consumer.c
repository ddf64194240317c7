/*
 * retrying_consumer.c - a daemon's durable subscriber with retries and dead
 * letters. A model distributor receives MODEL_PROMOTED events; copying a
 * model can fail for a while (the model store is busy), and a promotion of a
 * board type this host does not serve can never be handled:
 *
 *   - a failure returns an error with rre_fail(): the event comes back after
 *     the retry delay (doubled each time), and after max_attempts failures
 *     it would go to the dead letters;
 *   - RRE_EREJECTED sends the event to the dead letters at once;
 *   - the dead letters are listed, and one is replayed to this subscriber
 *     (`rre dlq list`, `rre dlq replay ID` do the same from a shell).
 *
 * The queue is the host's default one ($RINGRIFT_COORDINATION_DIR/events.db
 * when set). Each run publishes two promotions, handles them, and drops the
 * dead letters it made, so it can run again.
 *
 * CHECK: hex8_2p copied after 3 attempts
 * CHECK: dead letter: MODEL_PROMOTED for square19_4p: RRE_EREJECTED: square19 is not served here
 */
#include <rre/rre.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct distributor {
    int copy_attempts; /* the model store refuses the first two copies */
    int handled;
};

static rre_status on_promoted(const rre_event *ev, void *user_data)
{
    struct distributor *d = user_data;
    const char *config = json_string_value(json_object_get(ev->payload, "config_key"));
    if (config == NULL)
        return rre_fail(RRE_EREJECTED, "no config_key");
    if (strncmp(config, "square19", 8) == 0)
        return rre_fail(RRE_EREJECTED, "square19 is not served here");
    if (++d->copy_attempts < 3)
        return rre_fail(RRE_EIO, "model store busy");
    printf("%s copied after %d attempts\n", config, d->copy_attempts);
    d->handled++;
    return RRE_OK;
}

static int publish(rre_queue *q, const char *config, int run)
{
    json_t *p = json_pack("{s:s, s:s, s:i}", "config_key", config, "model_id", config, "run", run);
    rre_status st = rre_queue_publish(q, RRE_EV_MODEL_PROMOTED, p, "promoter", NULL, NULL, NULL);
    json_decref(p);
    if (st != RRE_OK)
        fprintf(stderr, "publish: %s: %s\n", rre_strerror(st), rre_last_error());
    return st == RRE_OK ? 0 : 1;
}

int main(void)
{
    rre_queue *q = NULL;
    if (rre_queue_create(&q, NULL) != RRE_OK) {
        fprintf(stderr, "queue: %s\n", rre_last_error());
        return 1;
    }
    rre_subscriber_options o;
    rre_subscriber_options_init(&o);
    o.name = "model_distributor";
    rre_event_type types[] = {RRE_EV_MODEL_PROMOTED};
    o.types = types;
    o.type_count = 1;
    o.max_attempts = 5;
    o.retry_delay_s = 0.05; /* seconds in a real daemon; short here */
    rre_subscriber *s = NULL;
    if (rre_subscriber_create(&s, q, &o) != RRE_OK) {
        fprintf(stderr, "subscriber: %s\n", rre_last_error());
        rre_queue_destroy(q);
        return 1;
    }
    /* The newest event id in the payloads makes each run's events new
     * content (the queue drops a copy of what it stored within the hour). */
    int run = 0;
    json_t *stats = NULL;
    if (rre_queue_stats(q, &stats) == RRE_OK)
        run = (int)json_integer_value(json_object_get(stats, "last_event_id"));
    json_decref(stats);
    int rc = publish(q, "hex8_2p", run) | publish(q, "square19_4p", run);

    /* The daemon's loop, bounded here: poll until the promotion is copied. */
    struct distributor d = {0, 0};
    for (int i = 0; rc == 0 && i < 200 && d.handled == 0; i++)
        if (rre_subscriber_poll(s, 100, 0, on_promoted, &d, NULL) != RRE_OK)
            rc = 1;

    json_t *letters = NULL;
    if (rc == 0 && rre_queue_dlq_list(q, "model_distributor", &letters) == RRE_OK) {
        size_t i;
        json_t *l;
        json_array_foreach(letters, i, l)
        {
            const char *payload_config = NULL;
            json_t *full = NULL;
            json_int_t id = json_integer_value(json_object_get(l, "id"));
            if (rre_queue_dlq_get(q, id, &full) == RRE_OK)
                payload_config = json_string_value(
                    json_object_get(json_object_get(full, "payload"), "config_key"));
            printf("dead letter: %s for %s: %s\n",
                   json_string_value(json_object_get(l, "event_type")),
                   payload_config != NULL ? payload_config : "?",
                   json_string_value(json_object_get(l, "error")));
            json_decref(full);
        }
        json_decref(letters);
        /* Cleaned up so the example can run again. */
        if (rre_queue_dlq_drop(q, 0, 0, "model_distributor", NULL) != RRE_OK)
            rc = 1;
    }
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    return rc;
}
