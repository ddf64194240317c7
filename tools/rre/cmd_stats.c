/*
 * cmd_stats.c - `rre stats [--format text|json]`: figures of the durable
 * queue: events and their id range, events by type, each subscriber with
 * how far behind it is and who holds it, dedup entries, poison rows, file
 * size. JSON is one object on one line (see rre_queue_stats()); text is for
 * people. Exit 0, 1 on failure, 2 on wrong usage.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

void cmd_stats_help(FILE *out)
{
    fputs("usage: rre [--db PATH] stats [--format text|json|prometheus]\n"
          "\n"
          "Queue figures: events, events by type, subscribers and how far behind each\n"
          "is, dedup entries, poison rows, retrying events and dead letters, file size\n"
          "(database and WAL).\n",
          out);
}

/* Prints `text` made safe for a terminal (see cli_safe_text), left-aligned
 * in `width` columns (0: as it is). */
static void print_safe(int width, const char *text)
{
    char *safe = cli_safe_text(text, true);
    printf("%-*s", width, safe != NULL ? safe : "?");
    free(safe);
}

static void print_text(const json_t *s)
{
    printf("database: ");
    print_safe(0, json_string_value(json_object_get(s, "path")));
    printf("\n");
    char size[32], wal[32];
    long long bytes = (long long)json_integer_value(json_object_get(s, "file_bytes"));
    cli_human_bytes(bytes, size, sizeof size);
    cli_human_bytes((long long)json_integer_value(json_object_get(s, "wal_bytes")), wal,
                    sizeof wal);
    printf("file size: %s (%lld bytes; WAL %s)\n", size, bytes, wal);
    printf("events: %lld (ids %lld..%lld)\n",
           (long long)json_integer_value(json_object_get(s, "events")),
           (long long)json_integer_value(json_object_get(s, "first_event_id")),
           (long long)json_integer_value(json_object_get(s, "last_event_id")));
    printf("dedup entries: %lld, poison rows: %lld\n",
           (long long)json_integer_value(json_object_get(s, "dedup_entries")),
           (long long)json_integer_value(json_object_get(s, "poison_rows")));
    printf("retrying: %lld, dead letters: %lld\n",
           (long long)json_integer_value(json_object_get(s, "retrying")),
           (long long)json_integer_value(json_object_get(s, "dead_letters")));
    const char *name;
    json_t *v;
    printf("by type:\n");
    json_object_foreach((json_t *)json_object_get(s, "by_type"), name, v)
    {
        printf("  ");
        print_safe(40, name);
        printf(" %lld\n", (long long)json_integer_value(v));
    }
    printf("subscribers:\n");
    size_t i;
    json_array_foreach(json_object_get(s, "subscribers"), i, v)
    {
        const char *host = json_string_value(json_object_get(v, "holder_host"));
        printf("  ");
        print_safe(40, json_string_value(json_object_get(v, "id")));
        printf(" %-6s cursor %lld, behind %lld, %s", json_string_value(json_object_get(v, "kind")),
               (long long)json_integer_value(json_object_get(v, "cursor")),
               (long long)json_integer_value(json_object_get(v, "behind")),
               json_is_true(json_object_get(v, "alive")) ? "alive" : "not running");
        if (json_integer_value(json_object_get(v, "retrying")) > 0 ||
            json_integer_value(json_object_get(v, "dead_letters")) > 0)
            printf(", retrying %lld, dead letters %lld",
                   (long long)json_integer_value(json_object_get(v, "retrying")),
                   (long long)json_integer_value(json_object_get(v, "dead_letters")));
        if (host != NULL) {
            printf(" (pid %lld on",
                   (long long)json_integer_value(json_object_get(v, "holder_pid")));
            printf(" ");
            print_safe(0, host);
            printf(")");
        }
        printf("\n");
    }
}

int cmd_stats(const struct cli_globals *g, int argc, char **argv)
{
    const char *format = "text";
    enum { O_FORMAT };
    static const struct cli_option opts[] = {
        [O_FORMAT] = {"format", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "stats", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_stats_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_FORMAT:
            format = val;
            if (strcmp(format, "text") != 0 && strcmp(format, "json") != 0 &&
                strcmp(format, "prometheus") != 0)
                return cli_usage_error("stats: unknown format '%s' (text, json or prometheus)",
                                       format);
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("stats: unexpected argument '%s'", argv[p.first_operand]);
    rre_queue *q = NULL;
    if (cli_require_queue_file(g, "stats") != CLI_OK ||
        cli_open_queue_read_only(g, "stats", &q) != CLI_OK)
        return CLI_FAIL;
    json_t *s = NULL;
    rre_status st = rre_queue_stats(q, &s);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("stats", st);
    int rc = CLI_OK;
    if (strcmp(format, "prometheus") == 0) {
        rc = cli_stats_prometheus(stdout, s);
    } else if (strcmp(format, "json") == 0) {
        char *text = json_dumps(s, JSON_COMPACT);
        if (text != NULL)
            printf("%s\n", text);
        free(text);
    } else {
        print_text(s);
    }
    json_decref(s);
    return rc;
}
