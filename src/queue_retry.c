/*
 * queue_retry.c - retries and dead letters kept for the handlers of a
 * linked router (link.c): each handler is its own pseudo-subscriber,
 * "<link subscriber id>/<handler name>", in the same rre_retries and
 * rre_dead_letters tables as durable subscribers, so `rre dlq` and the
 * statistics treat both alike.
 *
 * DESIGN: these calls run on the queue's admin connection under admin_mu,
 * each in its own short write transaction: a failure is recorded from the
 * dispatching thread when it happens (rare), due retries are read and their
 * outcome recorded by the link's reader thread.
 */
#include "envelope.h"
#include "queue_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The payload as stored for a retry: the event's payload with its envelope
 * timestamp and trace id at the top level (when it lacks them), as the
 * queue stores events, so that delivering the copy restores the envelope. */
static char *stored_payload(const rre_event *ev)
{
    json_t *copy = json_copy(ev->payload);
    if (copy == NULL)
        return NULL;
    if (ev->timestamp[0] != '\0' && json_object_get(copy, "timestamp") == NULL)
        json_object_set_new(copy, "timestamp", json_string(ev->timestamp));
    if (ev->trace_id[0] != '\0' && json_object_get(copy, "trace_id") == NULL)
        json_object_set_new(copy, "trace_id", json_string(ev->trace_id));
    char *text = json_dumps(copy, JSON_COMPACT);
    json_decref(copy);
    return text;
}

struct fail_ctx {
    const char *sub;
    const rre_event *ev;
    const char *payload;
    const char *source;
    const char *host;
    double created_at;
    int attempts;
    double due_at; /* < 0: dead */
    const char *error;
    double now;
};

/* Runs `sql` with the context's values as ?1 to ?11 (a statement uses
 * those it names); SQLITE_OK when it ran. */
static int step_bound(sqlite3 *db, const char *sql, const struct fail_ctx *c)
{
    int rc = rre__queue_run(db, sql, "tittttdiddt", c->sub, c->ev->event_id,
                            rre_event_name(c->ev->type), c->payload, c->source, c->host,
                            c->created_at, (int64_t)c->attempts, c->now, c->due_at, c->error);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int fail_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct fail_ctx *c = vctx;
    if (c->due_at >= 0)
        return step_bound(db,
                          "INSERT INTO rre_retries(subscriber_id, event_id, event_type, payload,"
                          " source, hostname, created_at, attempts, first_failed_at, due_at, error)"
                          " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT"
                          " (subscriber_id, event_id) DO UPDATE SET attempts ="
                          " max(attempts, excluded.attempts), due_at = excluded.due_at,"
                          " error = excluded.error",
                          c);
    int rc = step_bound(db,
                        "INSERT INTO rre_dead_letters(subscriber_id, event_id, event_type, payload,"
                        " source, hostname, created_at, attempts, first_failed_at, dead_at, error)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, coalesce((SELECT first_failed_at"
                        " FROM rre_retries WHERE subscriber_id = ?1 AND event_id = ?2), ?9), ?9,"
                        " ?11)",
                        c);
    if (rc == SQLITE_OK)
        rc =
            step_bound(db, "DELETE FROM rre_retries WHERE subscriber_id = ?1 AND event_id = ?2", c);
    return rc;
}

rre_status rre__retry_fail(rre_queue *q, const char *sub, const rre_event *ev, int attempts,
                           double due_at, const char *error)
{
    char *payload = stored_payload(ev);
    if (payload == NULL)
        return rre__error(RRE_ENOMEM, "out of memory");
    /* Text another writer stored may not be UTF-8; ours never is anything
     * else, so the copy is repaired, not refused. */
    const char *source = ev->source != NULL ? ev->source : "";
    const char *host = ev->hostname != NULL ? ev->hostname : "";
    char *fixed_source = NULL, *fixed_host = NULL;
    if (!rre__utf8_valid(source, strlen(source)) && (fixed_source = rre__utf8_repair(source)))
        source = fixed_source;
    if (!rre__utf8_valid(host, strlen(host)) && (fixed_host = rre__utf8_repair(host)))
        host = fixed_host;
    int64_t us = 0;
    double now = rre__queue_now();
    struct fail_ctx c = {
        .sub = sub,
        .ev = ev,
        .payload = payload,
        .source = source,
        .host = host,
        .created_at = rre__timestamp_parse(ev->timestamp, &us) && us >= 0 ? (double)us / 1e6 : now,
        .attempts = attempts,
        .due_at = due_at,
        .error = error != NULL ? error : "",
        .now = now,
    };
    rre_status st = RRE_OK;
    if (q->read_only)
        st = rre__error(RRE_EREADONLY, "the queue '%s' was opened read-only", q->path);
    else {
        rre__queue_lock(&q->admin_mu);
        st = rre__queue_write_txn(q, q->adb, "recording a handler's failure", fail_body, &c);
        rre__queue_unlock(&q->admin_mu);
    }
    free(payload);
    free(fixed_source);
    free(fixed_host);
    return st;
}

void rre__retry_items_free(rre__retry_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].subscriber_id);
        free(items[i].strings);
        json_decref(items[i].ev.payload);
    }
    free(items);
}

/* Fills `it` from the current row (subscriber_id, event_id, event_type,
 * payload, source, hostname, created_at, attempts). False when the row
 * cannot be delivered (its error then says why) or memory ran out. */
static bool decode_item(const rre_queue *q, sqlite3_stmt *st, rre__retry_item *it, char *why,
                        size_t why_cap)
{
    memset(it, 0, sizeof *it);
    const char *sub = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 2);
    const char *payload = (const char *)sqlite3_column_text(st, 3);
    const char *source = (const char *)sqlite3_column_text(st, 4);
    const char *host = (const char *)sqlite3_column_text(st, 5);
    it->subscriber_id = strdup(sub != NULL ? sub : "");
    it->ev.event_id = sqlite3_column_int64(st, 1);
    int64_t attempts = sqlite3_column_int64(st, 7); /* another program may store anything */
    it->attempts = attempts < 0 ? 0 : attempts > 1000000 ? 1000000 : (int)attempts;
    source = source != NULL ? source : "";
    host = host != NULL ? host : "";
    size_t ls = strlen(source) + 1, lh = strlen(host) + 1;
    it->strings = malloc(ls + lh);
    if (it->subscriber_id == NULL || it->strings == NULL) {
        snprintf(why, why_cap, "out of memory");
        return false;
    }
    memcpy(it->strings, source, ls);
    memcpy(it->strings + ls, host, lh);
    it->ev.source = it->strings;
    it->ev.hostname = it->strings + ls;
    if (type == NULL || rre_event_lookup(type, &it->ev.type) != RRE_OK) {
        snprintf(why, why_cap, "unknown event type");
        return false;
    }
    if (payload == NULL || rre_payload_parse(payload, strlen(payload), &it->ev.payload) != RRE_OK) {
        snprintf(why, why_cap, "the copy's payload cannot be read: %.100s", rre_last_error());
        return false;
    }
    const char *ts = json_string_value(json_object_get(it->ev.payload, "timestamp"));
    int64_t us;
    double created_at = sqlite3_column_double(st, 6);
    if (ts != NULL && strlen(ts) < RRE_TIMESTAMP_MAX && rre__timestamp_parse(ts, &us))
        snprintf(it->ev.timestamp, sizeof it->ev.timestamp, "%s", ts);
    else if (created_at >= 0 && created_at < 253402300800.0) /* before the year 10000 */
        rre__timestamp_format((int64_t)(created_at * 1e6), it->ev.timestamp);
    else
        rre__timestamp_format(0, it->ev.timestamp);
    const char *tr = json_string_value(json_object_get(it->ev.payload, "trace_id"));
    struct rre__trace trace;
    if (tr != NULL && rre__trace_parse(tr, &trace))
        rre__trace_format(&trace, it->ev.trace_id);
    if (rre_content_hash(it->ev.type, it->ev.payload, it->ev.hash) != RRE_OK)
        memset(it->ev.hash, 0, sizeof it->ev.hash);
    it->ev.origin =
        host[0] == '\0' || strcmp(host, q->hostname) == 0 ? RRE_ORIGIN_LOCAL : RRE_ORIGIN_HOST;
    return true;
}

rre_status rre__retry_due(rre_queue *q, const char *prefix, size_t max, rre__retry_item **out,
                          size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    size_t len = strlen(prefix);
    char *end = malloc(len + 1);
    rre__retry_item *items = calloc(max > 0 ? max : 1, sizeof *items);
    if (end == NULL || items == NULL) {
        free(end);
        free(items);
        return rre__error(RRE_ENOMEM, "out of memory");
    }
    /* Every id that starts with `prefix` sorts at or after it and before
     * `prefix` with its last byte one higher. */
    memcpy(end, prefix, len + 1);
    if (len > 0)
        end[len - 1]++;
    size_t n = 0;
    rre_status st = RRE_OK;
    rre__queue_lock(&q->admin_mu);
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(q->adb,
                                "SELECT subscriber_id, event_id, event_type, payload, source,"
                                " hostname, created_at, attempts FROM rre_retries WHERE"
                                " subscriber_id >= ?1 AND subscriber_id < ?2 AND due_at <= ?3"
                                " AND typeof(event_id) = 'integer' ORDER BY due_at, event_id"
                                " LIMIT ?4",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, end, -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 3, rre__queue_now());
        sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
        while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            char why[160];
            if (!decode_item(q, s, &items[n], why, sizeof why)) {
                items[n].undeliverable = true;
                snprintf(items[n].why, sizeof items[n].why, "%s", why);
            }
            n++;
        }
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        st = rre__queue_sqlite_error(q->adb, rc, "reading the handlers' retries");
    sqlite3_finalize(s);
    rre__queue_unlock(&q->admin_mu);
    free(end);
    if (st != RRE_OK) {
        rre__retry_items_free(items, n);
        return st;
    }
    *out = items;
    *n_out = n;
    return RRE_OK;
}

struct done_ctx {
    const char *sub;
    int64_t event_id;
    const char *bury; /* NULL: delete the retry; else move it to the dead letters with this error */
};

static int done_body(sqlite3 *db, void *vctx, rre_status *body_status)
{
    (void)body_status;
    struct done_ctx *c = vctx;
    int rc = SQLITE_DONE;
    if (c->bury != NULL)
        rc = rre__queue_run(db,
                            "INSERT INTO rre_dead_letters(subscriber_id, event_id, event_type,"
                            " payload, source, hostname, created_at, attempts, first_failed_at,"
                            " dead_at, error) SELECT subscriber_id, event_id, event_type, payload,"
                            " source, hostname, created_at, attempts, first_failed_at, ?3, ?4"
                            " FROM rre_retries WHERE subscriber_id = ?1 AND event_id = ?2",
                            "tidt", c->sub, c->event_id, rre__queue_now(), c->bury);
    if (rc == SQLITE_DONE)
        rc =
            rre__queue_run(db, "DELETE FROM rre_retries WHERE subscriber_id = ?1 AND event_id = ?2",
                           "ti", c->sub, c->event_id);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

double rre__retry_delay(double first, double max, int failures)
{
    double d = first;
    for (int i = 1; i < failures && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

rre_status rre__retry_done(rre_queue *q, const char *sub, int64_t event_id, const char *bury)
{
    struct done_ctx c = {sub, event_id, bury};
    rre__queue_lock(&q->admin_mu);
    rre_status st = rre__queue_write_txn(q, q->adb, "ending a handler's retry", done_body, &c);
    rre__queue_unlock(&q->admin_mu);
    return st;
}
