/*
 * cmd_flow.c - `rre flow check [--db PATH | --file F] [--since ID]
 * [--stall-after DURATION] [--format text|json]`.
 *
 * Runs the flow checker (include/rre/flow.h) over the events of the durable
 * queue or of a JSON-lines file (`--file -` reads standard input), then
 * prints the issues found: in text, one line per issue and a summary line;
 * in JSON, the report as one object on one line. Exit 0 when the stream is
 * clean, 1 when there is any violation, stall or unreadable line (or the
 * input cannot be read), 2 on wrong usage.
 *
 * Stalls are measured against the current time for the queue and against
 * the latest event's time for a file (a file is a record of the past).
 * --since ID checks only events after ID and accepts runs and pipelines
 * already under way at that point; --partial does the latter alone.
 * --stall-after 0 turns the stall check off.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmd_flow_help(FILE *out)
{
    fputs("usage: rre flow check [--db PATH | --file F] [--since ID] [--stall-after DURATION]\n"
          "                      [--partial] [--format text|json]\n"
          "\n"
          "Checks a stream of events against the lifecycles and the pipeline chain of the\n"
          "catalog: completions without a start, two terminal events for one run, progress\n"
          "after the end, steps and pipeline stages out of order, and runs or pipelines that\n"
          "stopped advancing for longer than --stall-after (default 1h; 30s, 5m, 2h, 1d;\n"
          "0 turns it off).\n"
          "\n"
          "  --file F     read JSON lines (as `rre tail --format json` prints them); - is stdin\n"
          "  --db PATH    read the durable queue (the default source)\n"
          "  --since ID   only events after ID; runs already under way are accepted\n"
          "  --partial    the stream may start in the middle of runs and pipelines\n"
          "  --format     text (default) or json (one object on one line)\n"
          "\n"
          "Exit status: 0 clean, 1 issues found or input unreadable, 2 wrong usage.\n",
          out);
}

/* Parses "30s", "5m", "2h", "1d" or a bare number of seconds. */
static bool parse_event_id(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

/* Feeds every line of `f` to the checker. Returns CLI_OK, or CLI_FAIL after
 * reporting a read error or an exhausted memory. */
static int feed_file(rre_flow_checker *c, FILE *f, const char *name, int64_t since)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t line_no = 0;
    int rc = CLI_OK;
    while ((n = getline(&line, &cap, f)) >= 0) {
        line_no++;
        rre_status st = rre_flow_feed_json_line(c, line, (size_t)n, line_no, since);
        if (st == RRE_ENOMEM) {
            rc = cli_fail_status("flow check", st);
            break;
        }
    }
    if (rc == CLI_OK && ferror(f))
        rc = cli_fail("flow check: cannot read %s: %s", name, strerror(errno));
    free(line);
    return rc;
}

static double wall_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct queue_feed {
    rre_flow_checker *checker;
    rre_status failure; /* the first status other than RRE_OK from the checker */
};

static rre_status on_queue_event(const rre_event *ev, void *user_data)
{
    struct queue_feed *qf = user_data;
    /* Rows are delivered as stored; rows written by other producers may use
     * the catalog's field aliases, which are normalised on a shallow copy. */
    rre_event copy = *ev;
    copy.payload = json_copy(ev->payload);
    if (copy.payload == NULL) {
        qf->failure = RRE_ENOMEM;
        return RRE_OK;
    }
    rre_payload_normalize(copy.payload);
    rre_status st = rre_flow_feed(qf->checker, &copy);
    json_decref(copy.payload);
    if (st == RRE_ENOMEM && qf->failure == RRE_OK)
        qf->failure = st;
    return RRE_OK;
}

/* Feeds every event of the durable queue after `since`, in event_id order,
 * through a transient reader (no lease, no acknowledgement) of a read-only
 * connection. */
static int feed_queue(rre_flow_checker *c, const char *path, int64_t since)
{
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = path;
    qo.read_only = true;
    qo.maintenance_interval_ms = -1;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &qo);
    if (st != RRE_OK)
        return cli_fail_status("flow check: opening the queue", st);
    rre_subscriber_options so;
    rre_subscriber_options_init(&so);
    so.since_id = since;
    rre_subscriber *s = NULL;
    st = rre_subscriber_create(&s, q, &so);
    if (st != RRE_OK) {
        rre_queue_destroy(q);
        return cli_fail_status("flow check: reading the queue", st);
    }
    struct queue_feed qf = {c, RRE_OK};
    size_t delivered;
    do {
        delivered = 0;
        st = rre_subscriber_poll(s, 0, 0, on_queue_event, &qf, &delivered);
    } while (st == RRE_OK && qf.failure == RRE_OK && delivered > 0);
    rre_subscriber_counters counters;
    rre_subscriber_get_counters(s, &counters);
    rre_subscriber_destroy(s);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("flow check: reading the queue", st);
    if (qf.failure != RRE_OK)
        return cli_fail("flow check: %s", rre_strerror(qf.failure));
    if (counters.poison > 0)
        fprintf(stderr,
                "rre: flow check: %llu rows of the queue could not be decoded and were "
                "skipped\n",
                (unsigned long long)counters.poison);
    return CLI_OK;
}

static void print_text(const rre_flow_checker *c)
{
    for (size_t i = 0; i < rre_flow_issue_count(c); i++) {
        const rre_flow_issue *is = rre_flow_issue_get(c, i);
        printf("%s %s", rre_flow_issue_kind_name(is->kind), is->flow);
        if (is->key[0] != '\0')
            printf(" %s=%s", is->key_field, is->key);
        printf(": %s", is->message);
        if (is->event_id > 0 && is->line > 0)
            printf(" [event %lld, line %llu]", (long long)is->event_id,
                   (unsigned long long)is->line);
        else if (is->event_id > 0)
            printf(" [event %lld]", (long long)is->event_id);
        else if (is->line > 0 && is->kind != RRE_FLOW_BAD_INPUT)
            printf(" [line %llu]", (unsigned long long)is->line);
        putchar('\n');
    }
    rre_flow_stats s;
    rre_flow_get_stats(c, &s);
    printf("flow check: %llu events, %llu violations, %llu stalls, %llu bad lines",
           (unsigned long long)s.events, (unsigned long long)s.violations,
           (unsigned long long)s.stalls, (unsigned long long)s.bad_input);
    if (s.issues_dropped > 0)
        printf(" (%llu issues not listed)", (unsigned long long)s.issues_dropped);
    printf(": %s\n", rre_flow_clean(c) ? "clean" : "NOT CLEAN");
}

static int flow_check(const struct cli_globals *g, int argc, char **argv)
{
    const char *file = NULL, *format = "text";
    int64_t since = 0;
    rre_flow_options opt = {0};
    /* --db is not one of the options here: the tool takes it wherever it
     * is, as the global option (main.c), into g->db_path. */
    enum {
        O_PARTIAL,
        O_FILE,
        O_SINCE,
        O_STALL_AFTER,
        O_FORMAT,
    };
    static const struct cli_option opts[] = {
        [O_PARTIAL] = {"partial", 0, false, false},
        [O_FILE] = {"file", 0, true, false},
        [O_SINCE] = {"since", 0, true, false},
        [O_STALL_AFTER] = {"stall-after", 0, true, false},
        [O_FORMAT] = {"format", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "flow check", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        if (o >= 0 && opts[o].has_value && val[0] == '\0')
            return cli_usage_error("flow check: --%s needs a value", opts[o].name);
        switch (o) {
        case CLI_OPT_HELP:
            cmd_flow_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_PARTIAL:
            opt.flags |= RRE_FLOW_PARTIAL_HISTORY;
            break;
        case O_FILE:
            file = val;
            break;
        case O_SINCE:
            if (!parse_event_id(val, &since))
                return cli_usage_error("flow check: --since needs an event id, not '%s'", val);
            opt.flags |= RRE_FLOW_PARTIAL_HISTORY;
            break;
        case O_STALL_AFTER:
            if (!cli_parse_duration(val, &opt.stall_after))
                return cli_usage_error("flow check: --stall-after needs a duration such as "
                                       "30s, 5m, 2h or 1d, not '%s'",
                                       val);
            if (opt.stall_after == 0.0)
                opt.stall_after = -1.0;
            break;
        case O_FORMAT:
            if (strcmp(val, "text") != 0 && strcmp(val, "json") != 0)
                return cli_usage_error("flow check: --format is text or json, not '%s'", val);
            format = val;
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("flow check: unexpected argument '%s'", argv[p.first_operand]);
    /* --db anywhere on the line (the tool takes it as the global option) is
     * a choice of source; RRE_DB is only a default. */
    const char *db = g->db_path != NULL && !g->db_from_env ? g->db_path : NULL;
    if (file != NULL && db != NULL)
        return cli_usage_error("flow check: --db and --file are exclusive");
    rre_flow_checker *c = NULL;
    rre_status st = rre_flow_checker_create(&c, &opt);
    if (st != RRE_OK)
        return cli_fail_status("flow check", st);
    int rc;
    double now = 0.0; /* a file: the latest event's time */
    if (file == NULL) {
        now = wall_clock();
        rc = feed_queue(c, g->db_path, since);
    } else if (strcmp(file, "-") == 0) {
        rc = feed_file(c, stdin, "standard input", since);
    } else {
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            rc = cli_fail("flow check: cannot open %s: %s", file, strerror(errno));
            rre_flow_checker_destroy(c);
            return rc;
        }
        rc = feed_file(c, f, file, since);
        fclose(f);
    }
    if (rc == CLI_OK) {
        st = rre_flow_finish(c, now);
        if (st != RRE_OK)
            rc = cli_fail_status("flow check", st);
    }
    if (rc == CLI_OK) {
        if (strcmp(format, "json") == 0) {
            json_t *report = NULL;
            st = rre_flow_report_json(c, &report);
            if (st != RRE_OK) {
                rc = cli_fail_status("flow check", st);
            } else {
                char *text = json_dumps(report, JSON_COMPACT);
                json_decref(report);
                if (text == NULL) {
                    rc = cli_fail("flow check: out of memory");
                } else {
                    puts(text);
                    free(text);
                }
            }
        } else {
            print_text(c);
        }
    }
    if (rc == CLI_OK && !rre_flow_clean(c))
        rc = CLI_FAIL;
    rre_flow_checker_destroy(c);
    return rc;
}

int cmd_flow(const struct cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("flow: missing sub-command (check; see rre flow --help)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        cmd_flow_help(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "check") == 0)
        return flow_check(g, argc - 1, argv + 1);
    return cli_usage_error("flow: unknown sub-command '%s' (see rre flow --help)", argv[1]);
}
