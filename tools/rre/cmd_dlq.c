/*
 * cmd_dlq.c - `rre dlq`: the dead letters of durable subscribers (events
 * their handler failed on every retry, or rejected).
 *
 *   rre dlq list [--subscriber S] [--format text|json]
 *   rre dlq show ID
 *   rre dlq replay ID|--all [--subscriber S]
 *   rre dlq drop ID|--older-than DURATION [--subscriber S]
 *
 * S is a durable name (the subscriber of that name on this host) or a full
 * subscriber id ("host:stable:name"). `list` and `show` open the queue
 * read-only. `list --format json` writes one object per line; `show` one
 * object with the event's payload. `replay` sends each letter back to its
 * own subscriber only, due at once; `replay` and `drop` print how many they
 * moved or deleted as {"replayed":N} or {"dropped":N}. Exit 0, 1 on failure
 * (an unknown ID included), 2 on wrong usage.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmd_dlq_help(FILE *out)
{
    fputs("usage: rre [--db PATH] dlq list [--subscriber S] [--format text|json]\n"
          "       rre [--db PATH] dlq show ID\n"
          "       rre [--db PATH] dlq replay ID|--all [--subscriber S]\n"
          "       rre [--db PATH] dlq drop ID|--older-than DURATION [--subscriber S]\n"
          "\n"
          "The dead letters: events a durable subscriber's handler failed on after every\n"
          "retry, or rejected. S is a subscriber name on this host or a full id\n"
          "(host:stable:name). replay sends a letter back to its own subscriber only;\n"
          "drop deletes letters by ID or by age (DURATION: a number with an optional unit\n"
          "s, m, h or d).\n",
          out);
}

/* A positive dead-letter id, or 0 when `text` is not one. */
static int64_t parse_id(const char *text)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v <= 0)
        return 0;
    return (int64_t)v;
}

static void print_time(double t)
{
    time_t secs = (time_t)t;
    struct tm tm;
    char buf[32];
    if (t >= 0 && t < 253402300800.0 && gmtime_r(&secs, &tm) != NULL &&
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        printf("%s", buf);
    else
        printf("-");
}

static void print_safe(const char *text)
{
    char *safe = cli_safe_text(text != NULL ? text : "", true);
    printf("%s", safe != NULL ? safe : "?");
    free(safe);
}

static int dlq_list(const struct cli_globals *g, const char *sub, bool json)
{
    rre_queue *q = NULL;
    if (cli_open_queue_read_only(g, "dlq", &q) != CLI_OK)
        return CLI_FAIL;
    json_t *list = NULL;
    rre_status st = rre_queue_dlq_list(q, sub, &list);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("dlq list", st);
    size_t i;
    json_t *d;
    if (!json && json_array_size(list) > 0)
        printf("%-6s %-10s %-28s %-8s %-20s %s\n", "ID", "EVENT", "TYPE", "ATTEMPTS", "DEAD AT",
               "SUBSCRIBER: ERROR");
    json_array_foreach(list, i, d)
    {
        if (json) {
            char *line = json_dumps(d, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (line == NULL) {
                json_decref(list);
                return cli_fail("dlq list: out of memory");
            }
            puts(line);
            free(line);
            continue;
        }
        printf("%-6lld %-10lld ", (long long)json_integer_value(json_object_get(d, "id")),
               (long long)json_integer_value(json_object_get(d, "event_id")));
        char *type = cli_safe_text(json_string_value(json_object_get(d, "event_type")), true);
        printf("%-28s %-8lld ", type != NULL ? type : "?",
               (long long)json_integer_value(json_object_get(d, "attempts")));
        free(type);
        print_time(json_number_value(json_object_get(d, "dead_at")));
        printf(" ");
        print_safe(json_string_value(json_object_get(d, "subscriber")));
        printf(": ");
        print_safe(json_string_value(json_object_get(d, "error")));
        printf("\n");
    }
    json_decref(list);
    return CLI_OK;
}

static int dlq_show(const struct cli_globals *g, int64_t id)
{
    rre_queue *q = NULL;
    if (cli_open_queue_read_only(g, "dlq", &q) != CLI_OK)
        return CLI_FAIL;
    json_t *d = NULL;
    rre_status st = rre_queue_dlq_get(q, id, &d);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("dlq show", st);
    char *text = json_dumps(d, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(d);
    if (text == NULL)
        return cli_fail("dlq show: out of memory");
    puts(text);
    free(text);
    return CLI_OK;
}

int cmd_dlq(const struct cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("dlq: give list, show, replay or drop (rre dlq --help)");
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
        cmd_dlq_help(stdout);
        return CLI_OK;
    }
    bool is_list = strcmp(verb, "list") == 0, is_show = strcmp(verb, "show") == 0;
    bool is_replay = strcmp(verb, "replay") == 0, is_drop = strcmp(verb, "drop") == 0;
    if (!is_list && !is_show && !is_replay && !is_drop)
        return cli_usage_error("dlq: unknown action '%s' (list, show, replay or drop)", verb);
    enum {
        O_SUBSCRIBER,
        O_FORMAT,
        O_ALL,
        O_OLDER_THAN,
        O_COUNT,
    };
    static const struct cli_option all_opts[] = {
        [O_SUBSCRIBER] = {"subscriber", 0, true, false},
        [O_FORMAT] = {"format", 0, true, false},
        [O_ALL] = {"all", 0, false, false},
        [O_OLDER_THAN] = {"older-than", 0, true, false},
    };
    /* The options of the action: list --subscriber --format, show none,
     * replay --subscriber --all, drop --subscriber --older-than; any other
     * is wrong usage. */
    unsigned takes = is_list     ? (1u << O_SUBSCRIBER) | (1u << O_FORMAT)
                     : is_replay ? (1u << O_SUBSCRIBER) | (1u << O_ALL)
                     : is_drop   ? (1u << O_SUBSCRIBER) | (1u << O_OLDER_THAN)
                                 : 0u;
    struct cli_option opts[O_COUNT];
    int which[O_COUNT]; /* opts[i] is all_opts[which[i]] */
    size_t nopts = 0;
    for (int k = 0; k < O_COUNT; k++)
        if (takes & (1u << k)) {
            which[nopts] = k;
            opts[nopts++] = all_opts[k];
        }
    char cmd[16];
    snprintf(cmd, sizeof cmd, "dlq %s", verb);
    const char *sub = NULL, *format = NULL;
    int64_t id = 0;
    bool all = false;
    double older = -1;
    /* The action's own arguments follow it: argv[0] is now the action. */
    argc--;
    argv++;
    struct cli_getopt p;
    cli_getopt_init(&p, cmd, opts, nopts);
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o < 0 ? o : which[o]) {
        case CLI_OPT_HELP:
            cmd_dlq_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_SUBSCRIBER:
            sub = val;
            break;
        case O_FORMAT:
            format = val;
            if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
                return cli_usage_error("dlq list: unknown format '%s' (text or json)", format);
            break;
        case O_ALL:
            all = true;
            break;
        case O_OLDER_THAN:
            if (!cli_parse_duration(val, &older) || older < 0)
                return cli_usage_error("dlq drop: '%s' is not a duration (a number with an "
                                       "optional unit s, m, h or d)",
                                       val);
            break;
        }
    }
    /* The operands: the ID of show, replay and drop; list takes none. */
    int i = p.first_operand;
    if (!is_list && i < argc) {
        if ((id = parse_id(argv[i])) == 0)
            return cli_usage_error("dlq %s: '%s' is not a dead-letter id (a positive "
                                   "integer, as `rre dlq list` shows)",
                                   verb, argv[i]);
        i++;
    }
    if (i < argc)
        return cli_usage_error("dlq %s: unexpected argument '%s'", verb, argv[i]);
    if (sub != NULL && sub[0] == '\0')
        return cli_usage_error("dlq %s: --subscriber must not be empty", verb);
    if (is_list)
        return dlq_list(g, sub, format != NULL && strcmp(format, "json") == 0);
    if (is_show) {
        if (id == 0)
            return cli_usage_error("dlq show: give the ID of a dead letter");
        return dlq_show(g, id);
    }
    if (is_replay && (id == 0) == !all)
        return cli_usage_error("dlq replay: give one ID or --all");
    if (is_drop && (id == 0) == (older < 0))
        return cli_usage_error("dlq drop: give one ID or --older-than DURATION");

    rre_queue *q = NULL;
    if (cli_require_queue_file(g, "dlq") != CLI_OK || cli_open_queue(g, "dlq", false, &q) != CLI_OK)
        return CLI_FAIL;
    uint64_t n = 0;
    rre_status st = is_replay ? rre_queue_dlq_replay(q, id, sub, &n)
                              : rre_queue_dlq_drop(q, id, older, sub, &n);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status(is_replay ? "dlq replay" : "dlq drop", st);
    printf("{\"%s\":%llu}\n", is_replay ? "replayed" : "dropped", (unsigned long long)n);
    return CLI_OK;
}
