/*
 * stats_prometheus.c - `rre stats --format prometheus`: what the queue file
 * says, in the Prometheus text exposition format (version 0.0.4), for the
 * node exporter's textfile collector or a scrape.
 *
 * Only figures the file holds are here (gauges: they can go down when
 * retention deletes rows); what one process counts (published, delivered,
 * duplicates dropped by its router) belongs to that process's own metrics.
 * Names carry the rre_ prefix and base units (seconds, bytes); label sets
 * are bounded by the catalog (type, category) and by the subscribers the
 * file knows.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A label value as the exposition format wants it: backslash, double quote
 * and line feed escaped. */
static void put_label(FILE *out, const char *v)
{
    for (const char *p = v != NULL ? v : ""; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '"')
            fputs("\\\"", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

static void family(FILE *out, const char *name, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void sample(FILE *out, const char *name, double value)
{
    fprintf(out, "%s %.17g\n", name, value);
}

int cli_stats_prometheus(FILE *out, const json_t *s)
{
    struct timespec now_ts;
    clock_gettime(CLOCK_REALTIME, &now_ts);
    double now = (double)now_ts.tv_sec + (double)now_ts.tv_nsec / 1e9;

    family(out, "rre_queue_events", "Events held in the queue file.");
    sample(out, "rre_queue_events", (double)json_integer_value(json_object_get(s, "events")));
    family(out, "rre_queue_last_event_id", "Id of the newest event in the queue file.");
    sample(out, "rre_queue_last_event_id",
           (double)json_integer_value(json_object_get(s, "last_event_id")));
    family(out, "rre_queue_stored_events", "Events held in the queue file, by type.");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(s, "by_type"), name, v)
    {
        rre_event_type t;
        const char *category = "unknown";
        if (rre_event_lookup(name, &t) == RRE_OK)
            category = rre_category_name(rre_event_get(t)->category);
        fputs("rre_queue_stored_events{type=\"", out);
        put_label(out, name);
        fprintf(out, "\",category=\"%s\"} %lld\n", category, (long long)json_integer_value(v));
    }
    family(out, "rre_queue_oldest_event_age_seconds",
           "Age of the oldest event in the queue file (0 when it holds none).");
    json_t *oldest = json_object_get(s, "oldest_created_at");
    double age = json_is_number(oldest) ? now - json_number_value(oldest) : 0;
    sample(out, "rre_queue_oldest_event_age_seconds", age > 0 ? age : 0);
    family(out, "rre_queue_file_size_bytes", "Size of the queue database and its WAL.");
    fprintf(out, "rre_queue_file_size_bytes{file=\"db\"} %lld\n",
            (long long)(json_integer_value(json_object_get(s, "file_bytes")) -
                        json_integer_value(json_object_get(s, "wal_bytes"))));
    fprintf(out, "rre_queue_file_size_bytes{file=\"wal\"} %lld\n",
            (long long)json_integer_value(json_object_get(s, "wal_bytes")));
    family(out, "rre_queue_dedup_entries", "Content hashes in the cross-process dedup window.");
    sample(out, "rre_queue_dedup_entries",
           (double)json_integer_value(json_object_get(s, "dedup_entries")));
    family(out, "rre_queue_poison_rows",
           "Rows set aside because they cannot be decoded (reported, then passed).");
    sample(out, "rre_queue_poison_rows",
           (double)json_integer_value(json_object_get(s, "poison_rows")));

    family(out, "rre_queue_dead_letters",
           "Events given up on after their retries, of every subscriber (kept until dropped).");
    sample(out, "rre_queue_dead_letters",
           (double)json_integer_value(json_object_get(s, "dead_letters")));
    family(out, "rre_queue_retrying", "Events waiting for another delivery after a failure.");
    sample(out, "rre_queue_retrying", (double)json_integer_value(json_object_get(s, "retrying")));

    static const struct {
        const char *metric, *help;
    } sub_metrics[] = {
        {"rre_subscriber_lag_events", "Events after the subscriber's position."},
        {"rre_subscriber_lag_seconds",
         "How long the oldest event after the subscriber's position has waited."},
        {"rre_subscriber_position", "Id of the last event the subscriber has passed."},
        {"rre_subscriber_last_seen_age_seconds", "Seconds since the subscriber was last seen."},
        {"rre_subscriber_up", "1 when the subscriber's process is alive, else 0."},
        {"rre_subscriber_dead_letters", "The subscriber's events in the dead letters."},
        {"rre_subscriber_retrying", "The subscriber's events waiting for a retry."},
    };
    json_t *subs = json_object_get(s, "subscribers");
    for (size_t m = 0; m < sizeof sub_metrics / sizeof sub_metrics[0]; m++) {
        family(out, sub_metrics[m].metric, sub_metrics[m].help);
        size_t i;
        json_array_foreach(subs, i, v)
        {
            double value = 0;
            if (m == 0)
                value = (double)json_integer_value(json_object_get(v, "behind"));
            else if (m == 1)
                value = json_number_value(json_object_get(v, "behind_seconds"));
            else if (m == 2)
                value = (double)json_integer_value(json_object_get(v, "cursor"));
            else if (m == 3) {
                double seen = json_number_value(json_object_get(v, "last_seen"));
                value = seen > 0 && now > seen ? now - seen : 0;
            } else if (m == 4)
                value = json_is_true(json_object_get(v, "alive")) ? 1 : 0;
            else if (m == 5)
                value = (double)json_integer_value(json_object_get(v, "dead_letters"));
            else
                value = (double)json_integer_value(json_object_get(v, "retrying"));
            fprintf(out, "%s{subscriber=\"", sub_metrics[m].metric);
            put_label(out, json_string_value(json_object_get(v, "id")));
            fprintf(out, "\",kind=\"%s\"} %.17g\n",
                    json_string_value(json_object_get(v, "kind")) != NULL
                        ? json_string_value(json_object_get(v, "kind"))
                        : "unknown",
                    value);
        }
    }
    return fflush(out) == 0 ? CLI_OK : CLI_FAIL;
}
