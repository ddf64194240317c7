/*
 * fuzz_row.c - libFuzzer harness for rows that another writer stored in
 * the shared queue file, whatever their columns hold, and for every output
 * format of `rre tail`.
 *
 * The input is one row: its first byte chooses the storage class of each
 * column (event_type, payload, source, hostname, created_at: text, blob,
 * integer, real or NULL, two bits each but the last), and the rest is
 * split at NUL bytes into the column values. The row is inserted with plain
 * SQL into a queue file, then read by a new reader. The read must succeed;
 * a delivered event must have valid UTF-8 in every string, a payload
 * object, a timestamp; each tail format must give a line that is valid
 * UTF-8, with no control character in the text format and one JSON object
 * in the others. Any violation aborts.
 */
#include "cli.h"

#include <rre/rre.h>

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violation(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_row: %s: %s\n", what, detail);
    abort();
}

static bool utf8_ok(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned c = *u, n, cp;
        if (c < 0x80) {
            u++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((u[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        u += n + 1;
    }
    return true;
}

static rre_queue *queue;
static sqlite3 *raw;
static char dir[64];

static void cleanup(void)
{
    rre_queue_destroy(queue);
    sqlite3_close(raw);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_row: could not remove %s\n", dir);
}

static void open_once(void)
{
    if (queue != NULL)
        return;
    snprintf(dir, sizeof dir, "/tmp/rre-fuzz-row-XXXXXX");
    if (mkdtemp(dir) == NULL)
        violation("mkdtemp", "failed");
    char path[128];
    snprintf(path, sizeof path, "%s/events.db", dir);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.hostname = "fuzz-host";
    o.maintenance_interval_ms = -1;
    if (rre_queue_create(&queue, &o) != RRE_OK)
        violation("rre_queue_create", rre_last_error());
    if (sqlite3_open(path, &raw) != SQLITE_OK)
        violation("sqlite3_open", sqlite3_errmsg(raw));
    sqlite3_busy_timeout(raw, 10000);
    atexit(cleanup);
}

static rre_status check_event(const rre_event *ev, void *user_data)
{
    (void)user_data;
    if (ev->source == NULL || ev->hostname == NULL || !utf8_ok(ev->source) ||
        !utf8_ok(ev->hostname))
        violation("a delivered string is not UTF-8", ev->source != NULL ? ev->source : "(null)");
    if (!json_is_object(ev->payload))
        violation("a delivered payload is not an object", rre_event_name(ev->type));
    if (ev->timestamp[0] == '\0' || !utf8_ok(ev->timestamp))
        violation("a delivered event has no timestamp", rre_event_name(ev->type));
    const enum cli_tail_format formats[] = {CLI_TAIL_JSON, CLI_TAIL_TEXT, CLI_TAIL_CLOUDEVENTS};
    for (size_t i = 0; i < 3; i++) {
        char *line = cli_tail_line(ev, formats[i]);
        if (line == NULL)
            violation("no tail line", rre_event_name(ev->type));
        if (!utf8_ok(line))
            violation("a tail line is not UTF-8", line);
        if (formats[i] == CLI_TAIL_TEXT) {
            for (const unsigned char *p = (const unsigned char *)line; *p; p++)
                if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
                    violation("a control character in the text format", line);
        } else {
            json_error_t err;
            json_t *v = json_loads(line, 0, &err);
            if (!json_is_object(v))
                violation("a tail line is not a JSON object", err.text);
            json_decref(v);
        }
        free(line);
    }
    return RRE_OK;
}

/* Binds column value `v` (len bytes) with the storage class `cls`. */
static void bind_as(sqlite3_stmt *st, int col, unsigned cls, const char *v, size_t len)
{
    char num[64];
    size_t n = len < sizeof num - 1 ? len : sizeof num - 1;
    memcpy(num, v, n);
    num[n] = '\0';
    switch (cls) {
    case 0:
        sqlite3_bind_text(st, col, v, (int)len, SQLITE_TRANSIENT);
        break;
    case 1:
        sqlite3_bind_blob(st, col, v, (int)len, SQLITE_TRANSIENT);
        break;
    case 2:
        sqlite3_bind_int64(st, col, strtoll(num, NULL, 10));
        break;
    default:
        sqlite3_bind_double(st, col, strtod(num, NULL));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    open_once();
    unsigned classes = data[0];
    const char *cols[5] = {"elo_updated", "{}", "", "", NULL};
    size_t lens[5] = {11, 2, 0, 0, 0};
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int c = 0; c < 5 && p <= end; c++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        const char *stop = nul != NULL ? nul : end;
        cols[c] = p;
        lens[c] = (size_t)(stop - p);
        p = stop + 1;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(raw,
                           "INSERT INTO events (event_type, payload, source, hostname, created_at)"
                           " VALUES (?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        violation("prepare", sqlite3_errmsg(raw));
    for (int c = 0; c < 4; c++)
        bind_as(st, c + 1, (classes >> (2 * c)) & 3, cols[c], lens[c]);
    /* created_at: now, unless the input gives a value; the top bit of the
     * class byte chooses NULL for it. */
    if (cols[4] == NULL)
        sqlite3_bind_double(st, 5, (double)time(NULL));
    else if (classes & 0x80)
        sqlite3_bind_null(st, 5);
    else
        bind_as(st, 5, (classes >> 6) & 1 ? 0 : 3, cols[4], lens[4]);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return 0; /* refused by the schema (a NULL in a NOT NULL column) */
    int64_t id = sqlite3_last_insert_rowid(raw);

    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.since_id = id - 1;
    rre_subscriber *s = NULL;
    if (rre_subscriber_create(&s, queue, &so) != RRE_OK)
        violation("rre_subscriber_create", rre_last_error());
    size_t delivered = 0;
    rre_status pst = rre_subscriber_poll(s, 0, 0, check_event, NULL, &delivered);
    if (pst != RRE_OK)
        violation("a reader stopped at a row", rre_last_error());
    rre_subscriber_destroy(s);
    char sql[64];
    snprintf(sql, sizeof sql, "DELETE FROM events WHERE event_id = %lld", (long long)id);
    sqlite3_exec(raw, sql, NULL, NULL, NULL);
    return 0;
}
