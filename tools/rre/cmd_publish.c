/*
 * cmd_publish.c - `rre publish TYPE [--payload JSON|-] [--source NAME] [--strict]`.
 *
 * Appends one event to the durable queue (the database of --db, or the
 * default location). The payload's field aliases are normalised and it is
 * validated as a publish through the router would be: problems are printed
 * on stderr and the event is still published, unless --strict, which
 * rejects an event with any problem (unknown fields included, as
 * `rre validate --strict` does). The event gets a timestamp and a new W3C
 * trace id. Prints {"event_id":N,"duplicate":false,"hash":"..."}; a
 * duplicate of an event published within the dedup window prints the
 * earlier event's id with "duplicate":true and stores nothing.
 * Exit 0 published (or duplicate), 1 failure, 2 wrong usage.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void cmd_publish_help(FILE *out)
{
    fputs("usage: rre [--db PATH] publish TYPE [--payload JSON|-] [--source NAME] [--strict]\n"
          "       rre [--db PATH] publish [TYPE] --lines [--source NAME] [--strict]\n"
          "                       [--batch N] < LINES.jsonl\n"
          "\n"
          "Appends an event to the durable queue shared with the other processes of this\n"
          "host. TYPE is any spelling of an event type. Without --payload, or with\n"
          "--payload -, the payload is read from standard input. Validation problems are\n"
          "printed on stderr; --strict rejects the event instead. --source defaults to \"rre\".\n"
          "Prints {\"event_id\":N,\"duplicate\":false,\"hash\":\"...\"}; a duplicate within the\n"
          "dedup window prints \"duplicate\":true and adds no row.\n"
          "\n"
          "--lines reads events from standard input, one JSON object per line:\n"
          "{\"type\": TYPE, \"payload\": {...}} (and \"source\" to override --source), or,\n"
          "with a TYPE, one payload object per line. Each line is checked on its own: a\n"
          "bad one (not JSON, an unknown type, or with --strict a payload with problems)\n"
          "is left out and reported, on stderr at once and in the output as\n"
          "{\"line\":N,\"error\":\"...\"}, and the other lines go on. The good ones are\n"
          "committed together, --batch N at a time (default 500) or as soon as no more\n"
          "input is waiting, so a producer that writes now and then sees each event\n"
          "stored at once. One result line per input line (blank lines aside), in input\n"
          "order, printed once its batch is committed, with \"line\":N added. If a\n"
          "commit fails, that batch's events are reported as not stored and reading\n"
          "stops there.\n"
          "Exit status: 0 every event published or duplicate, 1 a line refused or a\n"
          "failure, 2 wrong usage.\n",
          out);
}

static void now_iso(char out[RRE_TIMESTAMP_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, RRE_TIMESTAMP_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, RRE_TIMESTAMP_MAX - n, ".%06dZ", (int)(ts.tv_nsec / 1000));
}

static void new_traceparent(char out[RRE_TRACE_ID_MAX])
{
    unsigned char r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        out[0] = '\0';
        return;
    }
    char hex[49];
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(hex + 2 * i, 3, "%02x", r[i]);
    snprintf(out, RRE_TRACE_ID_MAX, "00-%.32s-%.16s-01", hex, hex + 32);
}

/* Normalises `payload` and validates it as a publish of `type` would be:
 * its problems go to stderr (after `heading`, when not NULL), as warnings
 * unless `strict`. RRE_OK when it may be published; RRE_EINVALID_PAYLOAD
 * when --strict refuses it; another status when validating failed. */
static rre_status check_payload(rre_event_type type, json_t *payload, bool strict,
                                const char *heading)
{
    rre_payload_normalize(payload);
    rre_problems problems;
    rre_status st = rre_validate(type, payload, RRE_VALIDATE_NOTES, &problems);
    if (st != RRE_OK && st != RRE_EINVALID_PAYLOAD)
        return st;
    if (problems.errors + problems.notes == 0)
        return RRE_OK;
    if (heading != NULL)
        fprintf(stderr, "%s\n", heading);
    cli_print_problems(&problems, strict ? "" : "warning: ");
    return strict ? RRE_EINVALID_PAYLOAD : RRE_OK;
}

/* --lines: the most events committed together, by default. */
#define LINES_BATCH_DEFAULT 500
#define LINES_BATCH_MAX 100000

/* One input line's place in the output: an event of the batch, or the
 * reason the line was refused. */
struct line_result {
    size_t lineno;
    size_t event; /* index in the batch's events; SIZE_MAX when refused */
    char *error;  /* why it was refused (malloc'd) */
};

struct lines_batch {
    rre_event *evs;
    bool *dups;    /* duplicates[i] of the batch publish */
    json_t **docs; /* what each event's payload belongs to */
    size_t nevs;
    struct line_result *results;
    size_t nresults, cap;
};

/* The longest line --lines reads (a payload is at most 1 MiB anyway). */
#define LINES_LINE_MAX (4u * 1024u * 1024u)

/* Standard input read line by line with a buffer of our own, so that what
 * is buffered is known (stdio does not say). */
struct line_reader {
    char *buf;
    size_t start, end, cap;
    bool eof;
    bool skipping; /* the line being read is too long: its bytes are dropped */
    int err;       /* errno of a failed read */
};

/* The next line, without its newline, in *line and *len (valid until the
 * next call); false at the end of the input or on a read error. A line
 * longer than LINES_LINE_MAX is skipped with *too_long set. */
static bool next_line(struct line_reader *r, char **line, size_t *len, bool *too_long)
{
    *too_long = false;
    size_t scanned = r->start;
    for (;;) {
        char *nl = r->end > scanned ? memchr(r->buf + scanned, '\n', r->end - scanned) : NULL;
        /* A line ends at its newline, or at the end of the input (a last
         * line without one, also a too-long one whose bytes were dropped). */
        if (nl != NULL || (r->eof && (r->end > r->start || r->skipping))) {
            size_t stop = nl != NULL ? (size_t)(nl - r->buf) : r->end;
            *line = r->buf + r->start;
            *len = stop - r->start;
            r->start = nl != NULL ? stop + 1 : stop;
            if (r->skipping || *len > LINES_LINE_MAX) {
                *too_long = true;
                *len = 0;
                r->skipping = false;
            }
            return true;
        }
        if (r->eof || r->err != 0)
            return false;
        if (r->end - r->start > LINES_LINE_MAX) { /* drop what is read of it */
            r->skipping = true;
            r->start = r->end;
        }
        if (r->start > 0) { /* keep the start of the line at the buffer's start */
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        scanned = r->end;
        if (r->cap - r->end < 65536) {
            size_t cap = r->cap ? r->cap * 2 : 131072;
            char *buf = realloc(r->buf, cap);
            if (buf == NULL) {
                r->err = ENOMEM;
                return false;
            }
            r->buf = buf;
            r->cap = cap;
        }
        ssize_t n = read(STDIN_FILENO, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r->err = errno;
        else if (n == 0)
            r->eof = true;
        else
            r->end += (size_t)n;
    }
}

/* True when no further line is at hand: nothing buffered and nothing to
 * read right now (a producer that writes now and then). What is pending
 * is then committed rather than kept waiting. */
static bool input_idle(const struct line_reader *r)
{
    if (r->end > r->start || r->eof)
        return false;
    struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
    return poll(&pfd, 1, 0) == 0;
}

static bool batch_grow(struct lines_batch *b)
{
    if (b->nresults < b->cap)
        return true;
    size_t cap = b->cap ? b->cap * 2 : 64;
    rre_event *evs = realloc(b->evs, cap * sizeof *evs);
    if (evs != NULL)
        b->evs = evs;
    json_t **docs = evs != NULL ? realloc(b->docs, cap * sizeof *docs) : NULL;
    if (docs != NULL)
        b->docs = docs;
    bool *dups = docs != NULL ? realloc(b->dups, cap * sizeof *dups) : NULL;
    if (dups != NULL)
        b->dups = dups;
    struct line_result *res = dups != NULL ? realloc(b->results, cap * sizeof *res) : NULL;
    if (res == NULL)
        return false;
    b->results = res;
    b->cap = cap;
    return true;
}

/* Commits the batch's events in one transaction and prints one line per
 * input line of it, in input order. false when the commit failed: every
 * event of the batch is then reported as not stored. */
static bool batch_flush(struct lines_batch *b, rre_queue *q, bool *any_refused)
{
    bool ok = true;
    char why[300] = "";
    if (b->nevs > 0) {
        rre_status st = rre_queue_publish_batch(q, b->evs, b->nevs, b->dups);
        if (st != RRE_OK) {
            snprintf(why, sizeof why, "not stored: %s: %s", rre_strerror(st), rre_last_error());
            ok = false;
        }
    }
    for (size_t i = 0; i < b->nresults; i++) {
        struct line_result *r = &b->results[i];
        const char *error = r->event == SIZE_MAX ? (r->error != NULL ? r->error : "refused")
                            : ok                 ? NULL
                                                 : why;
        if (error != NULL) {
            json_t *o = json_pack("{s:I, s:s}", "line", (json_int_t)r->lineno, "error", error);
            char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            printf("%s\n", text != NULL ? text : "{\"error\":\"out of memory\"}");
            free(text);
            json_decref(o);
            if (r->event != SIZE_MAX)
                fprintf(stderr, "rre: publish: line %zu: %s\n", r->lineno, why);
            *any_refused = true;
        } else {
            const rre_event *ev = &b->evs[r->event];
            char hex[RRE_HASH_HEX_SIZE];
            rre_hash_to_hex(ev->hash, hex);
            printf("{\"event_id\":%lld,\"duplicate\":%s,\"hash\":\"%s\",\"line\":%zu}\n",
                   (long long)ev->event_id, b->dups[r->event] ? "true" : "false", hex, r->lineno);
        }
        free(r->error);
    }
    for (size_t i = 0; i < b->nevs; i++)
        json_decref(b->docs[i]);
    b->nevs = b->nresults = 0;
    fflush(stdout);
    return ok;
}

/* Refuses line `lineno`: said on stderr now, and in the output in its place. */
static bool refuse(struct lines_batch *b, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool refuse(struct lines_batch *b, size_t lineno, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rre: publish: line %zu: %s\n", lineno, why);
    if (!batch_grow(b))
        return false;
    b->results[b->nresults++] = (struct line_result){lineno, SIZE_MAX, strdup(why)};
    return true;
}

/* Checks line `lineno` (`len` bytes at `line`): a good one becomes an
 * event of the batch, a bad one is refused in its place. `type_name`: the
 * line is a payload of that type (`fixed`), else an object with "type",
 * "payload" and maybe "source". false when out of memory. */
static bool take_line(struct lines_batch *b, const char *line, size_t len, size_t lineno,
                      const char *type_name, rre_event_type fixed, const char *default_source,
                      bool strict)
{
    json_t *o = NULL;
    rre_status st = rre_payload_parse(line, len, &o);
    if (st != RRE_OK)
        return refuse(b, lineno, "%s: %s", rre_strerror(st), rre_last_error());
    json_t *payload = o;
    const char *src = NULL;
    rre_event_type type = fixed;
    bool ok = true;
    if (type_name == NULL) {
        const char *tname = json_string_value(json_object_get(o, "type"));
        payload = json_object_get(o, "payload");
        src = json_string_value(json_object_get(o, "source"));
        if (tname == NULL || !json_is_object(payload)) {
            ok = refuse(b, lineno, "expected {\"type\": TYPE, \"payload\": {...}}");
            goto out;
        }
        if (rre_event_lookup(tname, &type) != RRE_OK) {
            const char *guess = cli_suggest_type(tname);
            char *safe = cli_safe_text(tname, true);
            ok = refuse(b, lineno, "unknown event type '%s'%s%s%s", safe != NULL ? safe : "?",
                        guess ? " (did you mean " : "", guess ? guess : "", guess ? "?)" : "");
            free(safe);
            goto out;
        }
    }
    char heading[64];
    snprintf(heading, sizeof heading, "line %zu (%s):", lineno, rre_event_name(type));
    st = check_payload(type, payload, strict, heading);
    if (st == RRE_EINVALID_PAYLOAD) {
        ok = refuse(b, lineno, "does not match the schema of %s (--strict)", rre_event_name(type));
    } else if (st != RRE_OK) {
        ok = refuse(b, lineno, "%s: %s", rre_strerror(st), rre_last_error());
    } else if (batch_grow(b)) {
        rre_event *ev = &b->evs[b->nevs];
        memset(ev, 0, sizeof *ev);
        ev->type = type;
        ev->payload = payload;
        ev->source = src != NULL ? src : default_source;
        now_iso(ev->timestamp);
        new_traceparent(ev->trace_id);
        b->docs[b->nevs] = o; /* owns the payload (and the source string) */
        b->results[b->nresults++] = (struct line_result){lineno, b->nevs, NULL};
        b->nevs++;
        return true;
    } else {
        ok = false;
    }
out:
    json_decref(o);
    return ok;
}

/* `rre publish [TYPE] --lines`: standard input line by line, each line
 * checked on its own; the good ones committed in batches of `batch` (or as
 * soon as no more input is waiting), a refused one reported in its place
 * while the others go on. */
static int publish_lines(const struct cli_globals *g, const char *type_name,
                         const char *default_source, bool strict, long batch)
{
    rre_event_type fixed = RRE_EV_NONE;
    if (type_name != NULL) {
        rre_status st = rre_event_lookup(type_name, &fixed);
        if (st != RRE_OK)
            return cli_fail_type("publish", type_name, st);
    }
    rre_queue *q = NULL;
    if (cli_open_queue(g, "publish", false, &q) != CLI_OK)
        return CLI_FAIL;
    struct lines_batch b = {0};
    bool any_refused = false, failed = false;
    struct line_reader in = {0};
    char *line;
    size_t l, lineno = 0;
    bool too_long;
    while (!failed && next_line(&in, &line, &l, &too_long)) {
        lineno++;
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            l--;
        if (too_long)
            failed = !refuse(&b, lineno, "longer than %u bytes", LINES_LINE_MAX);
        else if (l > 0) /* blank lines are allowed */
            failed = !take_line(&b, line, l, lineno, type_name, fixed, default_source, strict);
        if (failed) {
            cli_fail("publish: out of memory");
            break;
        }
        /* Refused lines count too: a long run of them is reported as it
         * goes, not kept until the end. */
        if ((long)b.nresults >= batch || input_idle(&in))
            failed = !batch_flush(&b, q, &any_refused);
    }
    if (!failed && in.err != 0) {
        cli_fail("publish: reading standard input: %s", strerror(in.err));
        failed = true;
    }
    if (!batch_flush(&b, q, &any_refused))
        failed = true;
    free(in.buf);
    free(b.dups);
    free(b.evs);
    free(b.docs);
    free(b.results);
    rre_queue_destroy(q);
    if (failed)
        fprintf(stderr, "rre: publish: stopped at line %zu; the lines after it were not read\n",
                lineno);
    return failed || any_refused ? CLI_FAIL : CLI_OK;
}

int cmd_publish(const struct cli_globals *g, int argc, char **argv)
{
    const char *type_name = NULL, *payload_arg = NULL, *source = "rre";
    bool strict = false, many = false;
    const char *batch_arg = NULL;
    enum { O_PAYLOAD, O_SOURCE, O_STRICT, O_LINES, O_BATCH };
    static const struct cli_option opts[] = {
        [O_PAYLOAD] = {"payload", 0, true, false}, [O_SOURCE] = {"source", 0, true, false},
        [O_STRICT] = {"strict", 0, false, false},  [O_LINES] = {"lines", 0, false, false},
        [O_BATCH] = {"batch", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "publish", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_publish_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_PAYLOAD:
            payload_arg = val; /* "-": standard input */
            break;
        case O_SOURCE:
            source = val;
            break;
        case O_STRICT:
            strict = true;
            break;
        case O_LINES:
            many = true;
            break;
        case O_BATCH:
            batch_arg = val;
            break;
        }
    }
    if (p.first_operand < argc)
        type_name = argv[p.first_operand];
    if (p.first_operand + 1 < argc)
        return cli_usage_error("publish: unexpected argument '%s'", argv[p.first_operand + 1]);
    if (batch_arg != NULL && !many)
        return cli_usage_error("publish: --batch goes with --lines");
    if (many) {
        if (payload_arg != NULL)
            return cli_usage_error("publish: --lines reads the payloads from standard input; "
                                   "give no --payload with it");
        long batch = LINES_BATCH_DEFAULT;
        if (batch_arg != NULL) {
            char *end;
            errno = 0;
            batch = strtol(batch_arg, &end, 10);
            if (errno != 0 || end == batch_arg || *end != '\0' || batch < 1 ||
                batch > LINES_BATCH_MAX)
                return cli_usage_error("publish: --batch takes a number from 1 to %d, not '%s'",
                                       LINES_BATCH_MAX, batch_arg);
        }
        return publish_lines(g, type_name, source, strict, batch);
    }
    if (type_name == NULL)
        return cli_usage_error("publish: missing TYPE (see rre publish --help)");

    rre_event_type type;
    rre_status st = rre_event_lookup(type_name, &type);
    if (st != RRE_OK)
        return cli_fail_type("publish", type_name, st);

    json_t *payload = NULL;
    int rc = cli_read_payload("publish", payload_arg, &payload);
    if (rc != CLI_OK)
        return rc;

    st = check_payload(type, payload, strict, NULL);
    if (st != RRE_OK) {
        json_decref(payload);
        if (st != RRE_EINVALID_PAYLOAD)
            return cli_fail_status("publish", st);
        return cli_fail("publish: the payload does not match the schema of %s (--strict): "
                        "nothing was published",
                        rre_event_name(type));
    }

    rre_queue *q = NULL;
    if (cli_open_queue(g, "publish", false, &q) != CLI_OK) {
        json_decref(payload);
        return CLI_FAIL;
    }
    char ts[RRE_TIMESTAMP_MAX], trace[RRE_TRACE_ID_MAX];
    now_iso(ts);
    new_traceparent(trace);
    rre_queue_publish_result res;
    st = rre_queue_publish(q, type, payload, source, ts, trace, &res);
    json_decref(payload);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("publish", st);
    char hex[RRE_HASH_HEX_SIZE];
    rre_hash_to_hex(res.hash, hex);
    printf("{\"event_id\":%lld,\"duplicate\":%s,\"hash\":\"%s\"}\n", (long long)res.event_id,
           res.duplicate ? "true" : "false", hex);
    return CLI_OK;
}
