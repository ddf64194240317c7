/*
 * cmd_purge.c - `rre purge [--older-than DURATION]`: runs retention on the
 * durable queue now. Without --older-than it uses the retention window
 * (RINGRIFT_CROSS_PROCESS_RETENTION_HOURS, 24 h). DURATION is a number with
 * an optional unit: s (the default), m, h or d ("90s", "30m", "24h", "7d",
 * "0"). Besides old events it deletes their acks and poison records,
 * expired dedup entries and dead subscribers. Prints one JSON object with
 * what it deleted. Exit 0, 1 on failure, 2 on wrong usage.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

void cmd_purge_help(FILE *out)
{
    fputs("usage: rre [--db PATH] purge [--older-than DURATION] [--dry-run] [--force]\n"
          "\n"
          "Deletes events older than DURATION (default: the retention window, 24 h or\n"
          "RINGRIFT_CROSS_PROCESS_RETENTION_HOURS), their acks, expired dedup entries and\n"
          "dead subscribers. DURATION: a number with an optional unit s, m, h or d;\n"
          "--older-than 0 (every event) needs --force. --dry-run counts what would go and\n"
          "deletes nothing. Prints {\"events\":N,\"acks\":N,\"dedup\":N,\"subscribers\":N,\n"
          "\"poison\":N}, with \"dry_run\":true first for a dry run.\n",
          out);
}

int cmd_purge(const struct cli_globals *g, int argc, char **argv)
{
    double older = -1;
    bool dry_run = false, force = false;
    const char *older_text = NULL;
    enum { O_OLDER_THAN, O_DRY_RUN, O_FORCE };
    static const struct cli_option opts[] = {
        [O_OLDER_THAN] = {"older-than", 0, true, false},
        [O_DRY_RUN] = {"dry-run", 0, false, false},
        [O_FORCE] = {"force", 0, false, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "purge", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_purge_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_OLDER_THAN:
            if (!cli_parse_duration(val, &older))
                return cli_usage_error("purge: '%s' is not a duration (a number with an optional "
                                       "unit s, m, h or d)",
                                       val);
            older_text = val;
            break;
        case O_DRY_RUN:
            dry_run = true;
            break;
        case O_FORCE:
            force = true;
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("purge: unexpected argument '%s'", argv[p.first_operand]);
    if (older_text != NULL && older <= 0 && !force && !dry_run)
        return cli_usage_error("purge: --older-than %s would delete every event; add --force "
                               "to mean it, or --dry-run to see what would go",
                               older_text);
    rre_queue *q = NULL;
    if (cli_require_queue_file(g, "purge") != CLI_OK ||
        (dry_run ? cli_open_queue_read_only(g, "purge", &q)
                 : cli_open_queue(g, "purge", false, &q)) != CLI_OK)
        return CLI_FAIL;
    rre_queue_purge_result r;
    rre_status st = dry_run ? rre_queue_purge_preview(q, older, &r) : rre_queue_purge(q, older, &r);
    rre_queue_destroy(q);
    if (st != RRE_OK)
        return cli_fail_status("purge", st);
    printf(
        "{%s\"events\":%llu,\"acks\":%llu,\"dedup\":%llu,\"subscribers\":%llu,\"poison\":%llu}\n",
        dry_run ? "\"dry_run\":true," : "", (unsigned long long)r.events,
        (unsigned long long)r.acks, (unsigned long long)r.dedup, (unsigned long long)r.subscribers,
        (unsigned long long)r.poison);
    return CLI_OK;
}
