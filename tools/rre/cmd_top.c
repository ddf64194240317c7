/*
 * cmd_top.c - `rre top`: a live view of a host's queue. Events per second
 * by category and the busiest types over a sliding window, each subscriber
 * with its lag, duplicates held back by the dedup window, poison rows, the
 * file's size, and whether a bridge runs on it. It refreshes about once a
 * second in a full-screen terminal view (ncurses), quits on `q` or Ctrl-C
 * leaving the terminal as it was, and follows the terminal's size. When
 * standard output is not a terminal it prints one plain snapshot per
 * refresh instead; --once prints a single snapshot.
 *
 * Rates come from a transient reader of the queue (it writes nothing):
 * every event appended since the previous refresh is counted by type, in
 * one-second buckets; the rates are over the last WINDOW seconds.
 */
#include "cli.h"

#include <curses.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 10 /* seconds the rates are averaged over */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void cmd_top_help(FILE *out)
{
    fputs("usage: rre [--db PATH] top [--interval SECONDS] [--once]\n"
          "\n"
          "A live view of the queue: events per second by category and the busiest\n"
          "types over the last 10 s, each subscriber with its lag, poison rows,\n"
          "events waiting for a retry, dead letters, dedup entries, the file's size,\n"
          "and the bridge when one runs on it.\n"
          "Refreshes every --interval seconds (default 1); q or Ctrl-C quits. When\n"
          "standard output is not a terminal it prints a plain snapshot per refresh;\n"
          "--once prints one snapshot and exits. The queue is only read.\n",
          out);
}

struct top {
    rre_queue *q;
    rre_subscriber *reader;
    /* events per type in each of the last WINDOW one-second buckets */
    uint32_t buckets[WINDOW][RRE_EVENT_TYPE_COUNT];
    int64_t bucket_sec[WINDOW];
    uint64_t seen_total;
    json_t *stats;
    time_t started;
};

static int64_t now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static rre_status count_event(const rre_event *ev, void *user_data)
{
    struct top *t = user_data;
    int64_t sec = now_sec();
    int b = (int)(sec % WINDOW);
    if (t->bucket_sec[b] != sec) {
        memset(t->buckets[b], 0, sizeof t->buckets[b]);
        t->bucket_sec[b] = sec;
    }
    if (ev->type >= 0 && ev->type < RRE_EVENT_TYPE_COUNT)
        t->buckets[b][ev->type]++;
    t->seen_total++;
    return RRE_OK;
}

/* Reads what was appended since the last refresh, and the file's figures. */
static rre_status update(struct top *t)
{
    size_t got = 0;
    rre_status st;
    do {
        got = 0;
        st = rre_subscriber_poll(t->reader, 0, 4096, count_event, t, &got);
    } while (st == RRE_OK && got == 4096 && !g_stop);
    if (st != RRE_OK)
        return st;
    json_decref(t->stats);
    t->stats = NULL;
    return rre_queue_stats(t->q, &t->stats);
}

/* Events per second of each type over the window (the seconds elapsed
 * since start when shorter). */
static void rates(const struct top *t, double out[RRE_EVENT_TYPE_COUNT])
{
    int64_t sec = now_sec();
    double span = (double)(time(NULL) - t->started);
    if (span > WINDOW)
        span = WINDOW;
    if (span < 1)
        span = 1;
    for (int ty = 0; ty < RRE_EVENT_TYPE_COUNT; ty++)
        out[ty] = 0;
    for (int b = 0; b < WINDOW; b++) {
        if (sec - t->bucket_sec[b] >= WINDOW)
            continue;
        for (int ty = 0; ty < RRE_EVENT_TYPE_COUNT; ty++)
            out[ty] += t->buckets[b][ty];
    }
    for (int ty = 0; ty < RRE_EVENT_TYPE_COUNT; ty++)
        out[ty] /= span;
}

/* The lines of one view, at most `width` columns each (0: no limit),
 * handed to `put` one by one. */
typedef void (*put_fn)(const char *line, int bold, void *ctx);

static void put_fmt(put_fn put, void *ctx, int bold, int width, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void put_fmt(put_fn put, void *ctx, int bold, int width, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (width > 0 && width < (int)sizeof line)
        line[width] = '\0';
    put(line, bold, ctx);
}

struct ranked {
    int type;
    double rate;
};

static int by_rate(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    return x->rate < y->rate ? 1 : x->rate > y->rate ? -1 : x->type - y->type;
}

static void view(const struct top *t, int width, int max_types, put_fn put, void *ctx)
{
    const json_t *s = t->stats;
    double r[RRE_EVENT_TYPE_COUNT];
    rates(t, r);
    char *path = cli_safe_text(json_string_value(json_object_get(s, "path")), true);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    put_fmt(put, ctx, 1, width, "rre top - %s - %s", path != NULL ? path : "?", when);
    free(path);
    put_fmt(put, ctx, 0, width,
            "events %lld (last id %lld)  file %.1f MiB (WAL %.1f MiB)  dedup entries %lld  "
            "poison rows %lld  retrying %lld  dead letters %lld",
            (long long)json_integer_value(json_object_get(s, "events")),
            (long long)json_integer_value(json_object_get(s, "last_event_id")),
            (double)json_integer_value(json_object_get(s, "file_bytes")) / 1048576.0,
            (double)json_integer_value(json_object_get(s, "wal_bytes")) / 1048576.0,
            (long long)json_integer_value(json_object_get(s, "dedup_entries")),
            (long long)json_integer_value(json_object_get(s, "poison_rows")),
            (long long)json_integer_value(json_object_get(s, "retrying")),
            (long long)json_integer_value(json_object_get(s, "dead_letters")));
    put("", 0, ctx);

    double by_cat[RRE_CATEGORY_COUNT] = {0}, total = 0;
    for (int ty = 0; ty < RRE_EVENT_TYPE_COUNT; ty++) {
        by_cat[rre_event_get((rre_event_type)ty)->category] += r[ty];
        total += r[ty];
    }
    put_fmt(put, ctx, 1, width, "events/s over %d s: %.1f", WINDOW, total);
    char line[512] = "";
    size_t used = 0;
    for (int c = 0; c < RRE_CATEGORY_COUNT; c++) {
        if (by_cat[c] <= 0)
            continue;
        used += (size_t)snprintf(line + used, used < sizeof line ? sizeof line - used : 0,
                                 "  %s %.1f", rre_category_name((rre_category)c), by_cat[c]);
        if (used >= sizeof line)
            break;
    }
    put_fmt(put, ctx, 0, width, "%s", used > 0 ? line : "  (no events in the window)");
    put("", 0, ctx);

    struct ranked rk[RRE_EVENT_TYPE_COUNT];
    int n = 0;
    for (int ty = 0; ty < RRE_EVENT_TYPE_COUNT; ty++)
        if (r[ty] > 0)
            rk[n++] = (struct ranked){ty, r[ty]};
    qsort(rk, (size_t)n, sizeof rk[0], by_rate);
    put_fmt(put, ctx, 1, width, "%-40s %10s  %s", "busiest types", "events/s", "category");
    for (int i = 0; i < n && i < max_types; i++)
        put_fmt(put, ctx, 0, width, "%-40s %10.1f  %s", rre_event_name((rre_event_type)rk[i].type),
                rk[i].rate, rre_category_name(rre_event_get((rre_event_type)rk[i].type)->category));
    put("", 0, ctx);

    put_fmt(put, ctx, 1, width, "%-40s %-7s %10s %10s  %s", "subscribers", "kind", "lag", "lag s",
            "state");
    const char *bridge = "no bridge on this queue";
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "subscribers"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        bool alive = json_is_true(json_object_get(v, "alive"));
        size_t idl = id != NULL ? strlen(id) : 0;
        if (idl >= 18 && strcmp(id + idl - 18, ":stable:rre_bridge") == 0)
            bridge = alive ? "a bridge runs on this queue" : "the bridge is not running";
        char *safe = cli_safe_text(id, true);
        put_fmt(put, ctx, 0, width, "%-40.40s %-7s %10lld %10.0f  %s", safe != NULL ? safe : "?",
                json_string_value(json_object_get(v, "kind")),
                (long long)json_integer_value(json_object_get(v, "behind")),
                json_number_value(json_object_get(v, "behind_seconds")),
                alive ? "alive" : "not running");
        free(safe);
    }
    put("", 0, ctx);
    put_fmt(put, ctx, 0, width, "bridge: %s", bridge);
}

/* Plain output: each line as it is, and a blank line after a snapshot. */
static void put_plain(const char *line, int bold, void *ctx)
{
    (void)bold;
    (void)ctx;
    puts(line);
}

struct screen_ctx {
    int row;
};

static void put_screen(const char *line, int bold, void *ctx)
{
    struct screen_ctx *c = ctx;
    if (c->row >= LINES)
        return;
    if (bold)
        attron(A_BOLD);
    mvaddnstr(c->row, 0, line, COLS);
    if (bold)
        attroff(A_BOLD);
    c->row++;
}

int cmd_top(const struct cli_globals *g, int argc, char **argv)
{
    double interval = 1.0;
    bool once = false;
    enum { O_ONCE, O_INTERVAL };
    static const struct cli_option opts[] = {
        [O_ONCE] = {"once", 0, false, false},
        [O_INTERVAL] = {"interval", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "top", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *v;
    while ((o = cli_getopt_next(&p, argc, argv, &v)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_top_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_ONCE:
            once = true;
            break;
        case O_INTERVAL:
            if (!cli_parse_duration(v, &interval) || interval < 0.1 || interval > 3600)
                return cli_usage_error("top: --interval takes a duration from 0.1 s to 1 h, "
                                       "such as 1 or 5s");
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("top: unexpected argument '%s'", argv[p.first_operand]);
    struct top *t = calloc(1, sizeof *t);
    if (t == NULL)
        return cli_fail("top: out of memory");
    if (cli_require_queue_file(g, "top") != CLI_OK ||
        cli_open_queue_read_only(g, "top", &t->q) != CLI_OK) {
        free(t);
        return CLI_FAIL;
    }
    /* A transient reader (it writes nothing) from the newest event on. */
    rre_status st = rre_queue_stats(t->q, &t->stats);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.since_id = json_integer_value(json_object_get(t->stats, "last_event_id"));
    if (st == RRE_OK)
        st = rre_subscriber_create(&t->reader, t->q, &so);
    if (st != RRE_OK) {
        json_decref(t->stats);
        rre_queue_destroy(t->q);
        free(t);
        return cli_fail_status("top", st);
    }
    t->started = time(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    bool screen = !once && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO);
    int rc = CLI_OK;
    if (screen) {
        if (initscr() == NULL) {
            screen = false;
        } else {
            cbreak();
            noecho();
            curs_set(0);
            keypad(stdscr, TRUE);
        }
    }
    while (!g_stop) {
        st = update(t);
        if (st != RRE_OK) {
            rc = CLI_FAIL;
            break;
        }
        if (screen) {
            erase();
            struct screen_ctx c = {0};
            int types = LINES - 14 - (int)json_array_size(json_object_get(t->stats, "subscribers"));
            view(t, COLS, types > 3 ? types : 3, put_screen, &c);
            if (c.row < LINES)
                mvaddnstr(LINES - 1, 0, "q: quit", COLS);
            refresh();
            /* Wait for a key up to the interval; a resize redraws at once. */
            timeout((int)(interval * 1000));
            int ch = getch();
            if (ch == 'q' || ch == 'Q')
                break;
        } else {
            view(t, 0, 10, put_plain, NULL);
            putchar('\n');
            if (fflush(stdout) != 0 || once)
                break;
            struct timespec ts = {(time_t)interval, (long)((interval - floor(interval)) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
            }
        }
    }
    if (screen)
        endwin();
    if (rc != CLI_OK)
        cli_fail_status("top", st);
    json_decref(t->stats);
    rre_subscriber_destroy(t->reader);
    rre_queue_destroy(t->q);
    free(t);
    return rc;
}
