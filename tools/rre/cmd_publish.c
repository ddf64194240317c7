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
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void cmd_publish_help(FILE *out)
{
    fputs("usage: rre [--db PATH] publish TYPE [--payload JSON|-] [--source NAME] [--strict]\n"
          "       rre [--db PATH] publish --lines [--source NAME] [--strict] < EVENTS.jsonl\n"
          "\n"
          "Appends an event to the durable queue shared with the other processes of this\n"
          "host. TYPE is any spelling of an event type. Without --payload, or with\n"
          "--payload -, the payload is read from standard input. Validation problems are\n"
          "printed on stderr; --strict rejects the event instead. --source defaults to \"rre\".\n"
          "Prints {\"event_id\":N,\"duplicate\":false,\"hash\":\"...\"}; a duplicate within the\n"
          "dedup window prints \"duplicate\":true and adds no row.\n"
          "\n"
          "--lines reads many events from standard input, one JSON object per line:\n"
          "{\"type\": TYPE, \"payload\": {...}} (and \"source\" to override --source).\n"
          "Every line is checked first; a bad line (or, with --strict, a payload with\n"
          "problems) publishes nothing and names the line. The events are then stored\n"
          "in one transaction, and one result line is printed per event, in order.\n"
          "Exit status: 0 published or duplicate, 1 failure, 2 wrong usage.\n",
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

#define LINES_MAX_BYTES (256u * 1024u * 1024u) /* standard input for --lines */

/* `rre publish --lines`: every line checked, then all stored at once. */
static int publish_lines(const struct cli_globals *g, const char *default_source, bool strict)
{
    size_t len = 0;
    char *text = cli_read_stdin(LINES_MAX_BYTES, &len);
    if (text == NULL)
        return cli_fail("publish: reading standard input: %s", strerror(errno));
    size_t cap = 64, n = 0;
    rre_event *evs = calloc(cap, sizeof *evs);
    json_t **lines = calloc(cap, sizeof *lines);
    int rc = evs != NULL && lines != NULL ? CLI_OK : cli_fail("publish: out of memory");
    char ts[RRE_TIMESTAMP_MAX];
    now_iso(ts);
    size_t lineno = 0;
    for (char *p = text, *end = text + len; rc == CLI_OK && p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = p;
        p += l + 1;
        lineno++;
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            l--;
        if (l == 0)
            continue; /* blank lines are allowed */
        json_t *o = NULL;
        rre_status st = rre_payload_parse(line, l, &o);
        const char *tname = json_string_value(json_object_get(o, "type"));
        json_t *payload = json_object_get(o, "payload");
        const char *src = json_string_value(json_object_get(o, "source"));
        rre_event_type type = RRE_EV_NONE;
        if (st != RRE_OK) {
            rc = cli_fail("publish: line %zu: %s: %s", lineno, rre_strerror(st), rre_last_error());
        } else if (tname == NULL || !json_is_object(payload)) {
            rc = cli_fail("publish: line %zu: expected {\"type\": TYPE, \"payload\": {...}}",
                          lineno);
        } else if ((st = rre_event_lookup(tname, &type)) != RRE_OK) {
            char what[64];
            snprintf(what, sizeof what, "publish: line %zu", lineno);
            rc = cli_fail_type(what, tname, st);
        } else {
            rre_payload_normalize(payload);
            rre_problems problems;
            st = rre_validate(type, payload, RRE_VALIDATE_NOTES, &problems);
            if (st != RRE_OK && st != RRE_EINVALID_PAYLOAD) {
                rc = cli_fail_status("publish", st);
            } else if (problems.errors + problems.notes > 0) {
                fprintf(stderr, "line %zu (%s):\n", lineno, rre_event_name(type));
                cli_print_problems(&problems, strict ? "" : "warning: ");
                if (strict)
                    rc = cli_fail("publish: line %zu does not match the schema of %s (--strict): "
                                  "nothing was published",
                                  lineno, rre_event_name(type));
            }
        }
        if (rc != CLI_OK) {
            json_decref(o);
            break;
        }
        if (n == cap) {
            cap *= 2;
            rre_event *ne = realloc(evs, cap * sizeof *evs);
            json_t **nlines = ne != NULL ? realloc(lines, cap * sizeof *lines) : NULL;
            if (ne != NULL)
                evs = ne;
            if (nlines == NULL) {
                json_decref(o);
                rc = cli_fail("publish: out of memory");
                break;
            }
            lines = nlines;
        }
        lines[n] = o;
        memset(&evs[n], 0, sizeof evs[n]);
        evs[n].type = type;
        evs[n].payload = payload;
        evs[n].source = src != NULL ? src : default_source;
        snprintf(evs[n].timestamp, sizeof evs[n].timestamp, "%s", ts);
        new_traceparent(evs[n].trace_id);
        n++;
    }
    rre_queue *q = NULL;
    bool *dups = rc == CLI_OK && n > 0 ? calloc(n, sizeof *dups) : NULL;
    if (rc == CLI_OK && n > 0 && dups == NULL)
        rc = cli_fail("publish: out of memory");
    if (rc == CLI_OK && n > 0 && cli_open_queue(g, "publish", false, &q) != CLI_OK)
        rc = CLI_FAIL;
    if (rc == CLI_OK && n > 0) {
        rre_status st = rre_queue_publish_batch(q, evs, n, dups);
        if (st != RRE_OK) {
            rc = cli_fail_status("publish", st);
        } else {
            for (size_t i = 0; i < n; i++) {
                char hex[RRE_HASH_HEX_SIZE];
                rre_hash_to_hex(evs[i].hash, hex);
                printf("{\"event_id\":%lld,\"duplicate\":%s,\"hash\":\"%s\"}\n",
                       (long long)evs[i].event_id, dups[i] ? "true" : "false", hex);
            }
        }
    }
    rre_queue_destroy(q);
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(dups);
    free(lines);
    free(evs);
    free(text);
    return rc;
}

int cmd_publish(const struct cli_globals *g, int argc, char **argv)
{
    const char *type_name = NULL, *payload_arg = NULL, *source = "rre";
    bool strict = false, many = false;
    enum { O_PAYLOAD, O_SOURCE, O_STRICT, O_LINES };
    static const struct cli_option opts[] = {
        [O_PAYLOAD] = {"payload", 0, true, false},
        [O_SOURCE] = {"source", 0, true, false},
        [O_STRICT] = {"strict", 0, false, false},
        [O_LINES] = {"lines", 0, false, false},
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
        }
    }
    if (p.first_operand < argc)
        type_name = argv[p.first_operand];
    if (p.first_operand + 1 < argc)
        return cli_usage_error("publish: unexpected argument '%s'", argv[p.first_operand + 1]);
    if (many) {
        if (type_name != NULL || payload_arg != NULL)
            return cli_usage_error("publish: --lines reads types and payloads from standard "
                                   "input; give no TYPE or --payload with it");
        return publish_lines(g, source, strict);
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

    rre_payload_normalize(payload);
    rre_problems problems;
    st = rre_validate(type, payload, RRE_VALIDATE_NOTES, &problems);
    if (st != RRE_OK && st != RRE_EINVALID_PAYLOAD) {
        json_decref(payload);
        return cli_fail_status("publish", st);
    }
    cli_print_problems(&problems, strict ? "" : "warning: ");
    if (strict && problems.errors + problems.notes > 0) {
        json_decref(payload);
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
