/*
 * cmd_tail.c - `rre tail [--subscriber NAME] [--type T]... [--category C]...
 * [--since ID|DURATION|TIME] [--limit N] [--follow] [--no-ack] [--format json|text|cloudevents]`.
 *
 * Prints events of the durable queue, oldest first, one per line. Without
 * --subscriber it reads without leaving a trace, from the start of the
 * retained events (or after --since). With --subscriber NAME it is the
 * durable subscriber "<host>:stable:NAME": it acknowledges what it printed
 * (unless --no-ack) and resumes there next time; while it runs, no other
 * process can hold that name (exit 1 naming the holder). --type and
 * --category filter (either matches; both repeatable). --limit stops after N
 * events. --follow keeps waiting for new events until interrupted (SIGINT,
 * SIGTERM) or the limit is reached; it sees a commit of another process
 * within about a millisecond.
 *
 * Formats: json (the default) is one object per event: event_id, type (the
 * canonical NAME), category, source, hostname, timestamp, trace_id (when
 * known), hash, payload. text is aligned columns "ID TIME TYPE SOURCE@HOST
 * PAYLOAD", the time in UTC (or the local zone with --local-time); on a
 * terminal the type is coloured by category unless NO_COLOR is set, and the
 * payload is shortened to the terminal's width.
 * cloudevents is CloudEvents 1.0 structured JSON: id (the event id),
 * source ("/ringrift/<host>/<source>"), specversion, type ("ringrift.<NAME>"),
 * time, datacontenttype, data, and traceparent when known.
 *
 * An event is acknowledged only after its line was written: when standard
 * output goes away (a closed pipe), tail stops without acknowledging the
 * event it could not print, and exits 1. A follower notices a closed pipe
 * within FOLLOW_CHECK_MS even while no event comes.
 */
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static rre_subscriber *volatile active_subscriber;

static void on_signal(int sig)
{
    (void)sig;
    rre_subscriber_close(active_subscriber); /* async-signal-safe */
}

/* The time now, as seconds since 1970 with their fraction. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Digits only: --since takes it as an event id. */
static bool is_event_id(const char *text)
{
    return text[0] != '\0' && strspn(text, "0123456789") == strlen(text);
}

/* "YYYY-MM-DD", optionally followed by "T" or a space, "HH:MM[:SS[.fff]]"
 * and "Z": a UTC time, as seconds since 1970. */
static bool parse_utc_time(const char *text, double *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(text, "%Y-%m-%d", &tm);
    if (p == NULL)
        return false;
    double frac = 0;
    if (*p == 'T' || *p == ' ') {
        const char *q = strptime(p + 1, "%H:%M", &tm);
        if (q == NULL)
            return false;
        p = q;
        if (*p == ':') {
            if ((q = strptime(p + 1, "%S", &tm)) == NULL)
                return false;
            p = q;
            if (*p == '.') {
                size_t digits = strspn(p + 1, "0123456789");
                if (digits == 0)
                    return false;
                frac = strtod(p, NULL);
                p += 1 + digits;
            }
        }
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0')
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || t < 0)
        return false;
    *out = (double)t + frac;
    return true;
}

/* A duration ago ("90s", "1h": a number and its unit) or a UTC time, as
 * seconds since 1970. */
static bool parse_when(const char *text, double *out)
{
    double ago;
    size_t len = strlen(text);
    if (len > 1 && strchr("smhd", text[len - 1]) != NULL && cli_parse_duration(text, &ago)) {
        *out = now_s() - ago;
        return true;
    }
    return parse_utc_time(text, out);
}

void cmd_tail_help(FILE *out)
{
    fputs("usage: rre [--db PATH] tail [--subscriber NAME] [--type T]... [--category C]...\n"
          "                [--since ID|DURATION|TIME | --last N | --new]\n"
          "                [--until ID|DURATION|TIME] [--start all|new] [--limit N]\n"
          "                [--follow] [--no-ack]\n"
          "                [--format json|text|cloudevents] [--local-time]\n"
          "\n"
          "Prints queue events oldest first, one per line. With --subscriber, a durable\n"
          "subscriber that acknowledges what it printed and resumes there next time\n"
          "(--no-ack: read without acknowledging); without one it starts at the oldest\n"
          "event, after --since ID, at the events of the last DURATION (--since 1h: a\n"
          "number with a unit s, m, h or d) or from a UTC TIME on (--since\n"
          "2026-12-07T10:00:00Z, or a date), at the last N events (--last N) or at the\n"
          "end (--new or --from-end, for --follow). A --subscriber that does not exist\n"
          "yet starts at the oldest retained event (--start all, the default) or after\n"
          "the newest (--start new). --until stops before the first event after an id,\n"
          "after DURATION ago or after a UTC TIME. --limit N (-n N) stops after N events\n"
          "(0: no limit). --follow (-f) waits for new events until interrupted, or until\n"
          "the reader of its output goes away. --format text prints aligned columns (id,\n"
          "time, type, source@host, payload) with times in UTC, or in the local zone with\n"
          "--local-time; on a terminal the type is coloured by category (never with\n"
          "NO_COLOR set) and the payload shortened to the terminal's width. Exit status:\n"
          "0 success, 1 failure, 2 wrong usage.\n",
          out);
}

struct tail_state {
    enum cli_tail_format format;
    struct cli_tail_style style; /* of the text format */
    size_t printed;
    bool output_failed;
    int64_t until;      /* > 0: stop before the first event with a larger id */
    bool reached_until; /* an event past it came: stop (it is not acknowledged) */
};

static rre_status print_event(const rre_event *ev, void *user_data)
{
    struct tail_state *t = user_data;
    if (t->until > 0 && ev->event_id > t->until) {
        t->reached_until = true;
        return RRE_ECLOSED; /* stops the poll; this event stays unacknowledged */
    }
    char *line =
        t->format == CLI_TAIL_TEXT ? cli_tail_text(ev, &t->style) : cli_tail_line(ev, t->format);
    if (line == NULL) {
        fprintf(stderr, "rre: tail: out of memory\n");
        t->output_failed = true;
        return RRE_ECLOSED;
    }
    int rc = printf("%s\n", line);
    free(line);
    if (rc < 0 || fflush(stdout) != 0) {
        t->output_failed = true;
        return RRE_ECLOSED; /* not printed, so not acknowledged */
    }
    t->printed++;
    return RRE_OK;
}

#define MAX_FILTERS 64

/* How long a follower waits for events before it looks whether its reader
 * is still there: `rre tail --follow | head -1` must end soon after head
 * does, also when no further event comes to fail a write. */
#define FOLLOW_CHECK_MS 200

int cmd_tail(const struct cli_globals *g, int argc, char **argv)
{
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    rre_event_type types[MAX_FILTERS];
    rre_category cats[MAX_FILTERS];
    size_t ntypes = 0, ncats = 0;
    long long limit = 0, last = -1;
    bool follow = false, from_end = false, since_given = false;
    double since_time = -1; /* --since DURATION or TIME: a time to start at */
    struct tail_state t = {CLI_TAIL_JSON, {false, false, 0}, 0, false, 0, false};
    double until_time = -1; /* --until DURATION or TIME */
    const char *start = NULL;
    enum {
        O_FOLLOW,
        O_NO_ACK,
        O_NEW,
        O_FROM_END,
        O_LOCAL_TIME,
        O_SUBSCRIBER,
        O_TYPE,
        O_CATEGORY,
        O_START,
        O_UNTIL,
        O_SINCE,
        O_LIMIT,
        O_LAST,
        O_FORMAT,
    };
    static const struct cli_option opts[] = {
        [O_FOLLOW] = {"follow", 'f', false, false},
        [O_NO_ACK] = {"no-ack", 0, false, false},
        [O_NEW] = {"new", 0, false, false},
        [O_FROM_END] = {"from-end", 0, false, false},
        [O_LOCAL_TIME] = {"local-time", 0, false, false},
        [O_SUBSCRIBER] = {"subscriber", 0, true, false},
        [O_TYPE] = {"type", 0, true, true},
        [O_CATEGORY] = {"category", 0, true, true},
        [O_START] = {"start", 0, true, false},
        [O_UNTIL] = {"until", 0, true, false},
        [O_SINCE] = {"since", 0, true, false},
        [O_LIMIT] = {"limit", 'n', true, false},
        [O_LAST] = {"last", 0, true, false},
        [O_FORMAT] = {"format", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "tail", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_tail_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_FOLLOW:
            follow = true;
            break;
        case O_NO_ACK:
            so.no_ack = true;
            break;
        case O_NEW:
        case O_FROM_END:
            from_end = true;
            break;
        case O_LOCAL_TIME:
            t.style.local_time = true;
            break;
        case O_SUBSCRIBER:
            if (val[0] == '\0')
                return cli_usage_error("tail: --subscriber needs a name");
            so.name = val;
            break;
        case O_TYPE: {
            if (ntypes == MAX_FILTERS)
                return cli_usage_error("tail: at most %d --type options", MAX_FILTERS);
            rre_status st = rre_event_lookup(val, &types[ntypes]);
            if (st != RRE_OK)
                return cli_fail_type("tail: --type", val, st);
            ntypes++;
            break;
        }
        case O_CATEGORY: {
            if (ncats == MAX_FILTERS)
                return cli_usage_error("tail: at most %d --category options", MAX_FILTERS);
            rre_status st = rre_category_lookup(val, &cats[ncats]);
            if (st != RRE_OK)
                return cli_fail_category("tail: --category", val);
            ncats++;
            break;
        }
        case O_START:
            start = val;
            if (strcmp(start, "all") != 0 && strcmp(start, "new") != 0)
                return cli_usage_error("tail: --start is 'all' or 'new', not '%s'", start);
            break;
        case O_UNTIL:
            if (is_event_id(val)) {
                char *end;
                errno = 0;
                long long v = strtoll(val, &end, 10);
                if (errno != 0 || v <= 0)
                    return cli_usage_error("tail: --until needs an event id above 0, not '%s'",
                                           val);
                t.until = v;
            } else if (!parse_when(val, &until_time)) {
                return cli_usage_error("tail: --until takes an event id, a duration with its unit "
                                       "(1h: up to an hour ago) or a UTC time, not '%s'",
                                       val);
            }
            break;
        case O_SINCE:
            if (!is_event_id(val) && !parse_when(val, &since_time))
                return cli_usage_error("tail: --since takes an event id, a duration with its unit "
                                       "(90s, 30m, 1h, 7d) or a UTC time (2026-12-07T10:00:00Z "
                                       "or 2026-12-07), not '%s'",
                                       val);
            since_given = true;
            if (!is_event_id(val))
                break;
            __attribute__((fallthrough)); /* an event id */
        case O_LIMIT:
        case O_LAST: {
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (errno != 0 || end == val || *end != '\0' || v < 0)
                return cli_usage_error("tail: --%s needs a non-negative integer, not '%s'",
                                       opts[o].name, val);
            if (o == O_SINCE)
                so.since_id = v;
            else if (o == O_LAST)
                last = v;
            else
                limit = v;
            break;
        }
        case O_FORMAT:
            if (strcmp(val, "json") == 0)
                t.format = CLI_TAIL_JSON;
            else if (strcmp(val, "text") == 0)
                t.format = CLI_TAIL_TEXT;
            else if (strcmp(val, "cloudevents") == 0)
                t.format = CLI_TAIL_CLOUDEVENTS;
            else
                return cli_usage_error("tail: unknown format '%s' (json, text or cloudevents)",
                                       val);
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("tail: unexpected argument '%s'", argv[p.first_operand]);
    if (so.no_ack && so.name == NULL)
        so.no_ack = false; /* a reader without a name never acknowledges anyway */
    if (t.format == CLI_TAIL_TEXT && isatty(STDOUT_FILENO)) {
        /* For people at a terminal: colour (unless NO_COLOR is set, as
         * no-color.org asks, or the terminal is "dumb"), and payloads
         * shortened to its width. Into a pipe or a file: plain lines. */
        const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
        t.style.color = (no_color == NULL || no_color[0] == '\0') &&
                        !(term != NULL && strcmp(term, "dumb") == 0);
        struct winsize ws;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
            t.style.width = ws.ws_col;
    }
    if ((from_end || last >= 0) && (so.name != NULL || since_given || (from_end && last >= 0)))
        return cli_usage_error("tail: --from-end and --last N choose where a reader without "
                               "--subscriber starts; not with --subscriber, --since or each "
                               "other");
    if (start != NULL && so.name == NULL)
        return cli_usage_error("tail: --start chooses where a new --subscriber starts");
    so.types = types;
    so.type_count = ntypes;
    so.categories = cats;
    so.category_count = ncats;

    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = g->db_path;
    qo.maintenance_interval_ms = follow ? 0 : -1; /* a follower may as well do retention */
    /* A reader without a name writes nothing: an existing file is opened
     * read-only, so it works on a file it cannot write. */
    struct stat sb;
    char defpath[4096];
    const char *path = qo.path;
    if (path == NULL && rre_queue_default_path(defpath, sizeof defpath) == RRE_OK)
        path = defpath;
    if (so.name == NULL && path != NULL && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        qo.read_only = true;
        qo.maintenance_interval_ms = -1;
    }
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &qo);
    if (st != RRE_OK)
        return cli_fail_status("tail: opening the queue", st);
    rre_subscriber *s = NULL;
    if (from_end || last >= 0) {
        /* Where the newest event is now: the reader starts after it, or
         * `last` events before it (ids are in commit order). */
        json_t *stats = NULL;
        st = rre_queue_stats(q, &stats);
        if (st != RRE_OK) {
            rre_queue_destroy(q);
            return cli_fail_status("tail", st);
        }
        long long newest = json_integer_value(json_object_get(stats, "last_event_id"));
        json_decref(stats);
        so.since_id = last >= 0 && last < newest ? newest - last : (last >= 0 ? 0 : newest);
    }
    if (since_time >= 0 && (st = rre_queue_position_at(q, since_time, &so.since_id)) != RRE_OK) {
        rre_queue_destroy(q);
        return cli_fail_status("tail: --since", st);
    }
    if (until_time >= 0) {
        /* Events created before the time have ids up to its position. */
        int64_t pos = 0;
        if ((st = rre_queue_position_at(q, until_time, &pos)) != RRE_OK) {
            rre_queue_destroy(q);
            return cli_fail_status("tail: --until", st);
        }
        if (pos == 0) { /* nothing before it */
            rre_queue_destroy(q);
            return CLI_OK;
        }
        t.until = pos;
    }
    if (start != NULL && strcmp(start, "new") == 0 && !since_given) {
        /* A subscriber that does not exist yet starts after the newest
         * event; one that exists resumes where it stopped. */
        json_t *stats = NULL;
        st = rre_queue_stats(q, &stats);
        if (st != RRE_OK) {
            rre_queue_destroy(q);
            return cli_fail_status("tail", st);
        }
        char id[600];
        snprintf(id, sizeof id, "%s:stable:%s", rre_queue_hostname(q), so.name);
        bool exists = false;
        size_t k;
        json_t *sub;
        json_array_foreach(json_object_get(stats, "subscribers"), k, sub)
        {
            const char *sid = json_string_value(json_object_get(sub, "id"));
            if (sid != NULL && strcmp(sid, id) == 0)
                exists = true;
        }
        if (!exists)
            so.since_id = json_integer_value(json_object_get(stats, "last_event_id"));
        json_decref(stats);
    }
    st = rre_subscriber_create(&s, q, &so);
    if (st != RRE_OK) {
        rre_queue_destroy(q);
        return cli_fail_status("tail", st);
    }
    active_subscriber = s;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = CLI_OK;
    for (;;) {
        size_t max = 0;
        if (limit > 0) {
            if ((long long)t.printed >= limit)
                break;
            max = (size_t)(limit - (long long)t.printed);
        }
        size_t got = 0;
        st = rre_subscriber_poll(s, follow ? FOLLOW_CHECK_MS : 0, max, print_event, &t, &got);
        if (st == RRE_ECLOSED) {
            if (t.output_failed)
                rc = CLI_FAIL;
            break; /* interrupted, standard output went away, or past --until */
        }
        if (st != RRE_OK) {
            rc = cli_fail_status("tail", st);
            break;
        }
        if (!follow && got == 0)
            break;
        if (follow && cli_stdout_gone()) {
            rc = CLI_FAIL; /* as when a write fails: the reader went away */
            break;
        }
    }
    sigaction(SIGINT, &(struct sigaction){.sa_handler = SIG_DFL}, NULL);
    sigaction(SIGTERM, &(struct sigaction){.sa_handler = SIG_DFL}, NULL);
    active_subscriber = NULL;
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    return rc;
}
