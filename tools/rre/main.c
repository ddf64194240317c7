/*
 * main.c - the rre command: parses the global options, runs one command
 * function, cleans up. The tool is a client of the public API only.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cli_command commands[] = {
    {"catalog", "list event types, or show one", cmd_catalog, cmd_catalog_help},
    {"validate", "check a payload against its type's schema", cmd_validate, cmd_validate_help},
    {"config-key", "parse or make a config key such as hex8_2p", cmd_config_key,
     cmd_config_key_help},
    {"demo", "run the training pipeline with one process per coordinator", cmd_demo, cmd_demo_help},
    {"flow", "check a stream of events against the lifecycles and pipeline", cmd_flow,
     cmd_flow_help},
    {"publish", "append an event to the durable queue", cmd_publish, cmd_publish_help},
    {"tail", "print queue events, or follow them as a durable subscriber", cmd_tail, cmd_tail_help},
    {"stats", "queue figures: events, types, subscribers, file size", cmd_stats, cmd_stats_help},
    {"purge", "run retention on the queue now", cmd_purge, cmd_purge_help},
    {"dlq", "dead letters: list, show, replay or drop failed events", cmd_dlq, cmd_dlq_help},
    {"bridge", "carry events between this host's queue and a NATS JetStream stream", cmd_bridge,
     cmd_bridge_help},
    {"serve-metrics", "serve the queue's figures to Prometheus over HTTP", cmd_serve_metrics,
     cmd_serve_metrics_help},
    {"top", "a live view of the queue: rates, busiest types, subscribers' lag", cmd_top,
     cmd_top_help},
    {NULL, NULL, NULL, NULL},
};

/* Wrong usage: an unknown command, with the closest one when it is close. */
static int unknown_command(const char *prefix, const char *word)
{
    const char *names[sizeof commands / sizeof commands[0]];
    size_t n = 0;
    for (const struct cli_command *c = commands; c->name != NULL; c++)
        names[n++] = c->name;
    const char *guess = cli_suggest(word, names, n);
    char *safe = cli_safe_text(word, true);
    int rc = guess != NULL ? cli_usage_error("%sunknown command '%s' (did you mean %s?)", prefix,
                                             safe != NULL ? safe : "?", guess)
                           : cli_usage_error("%sunknown command '%s' (see rre --help)", prefix,
                                             safe != NULL ? safe : "?");
    free(safe);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: rre [--db PATH] COMMAND [ARGS...]\n\ncommands:\n");
    for (const struct cli_command *c = commands; c->name != NULL; c++)
        fprintf(f, "  %-14s %s\n", c->name, c->summary);
    fprintf(f, "\n--db PATH may come anywhere (rre tail --db X); without it, RRE_DB names the\n"
               "queue, else the default location. rre -h/--help, rre -V/--version;\n"
               "rre help COMMAND or rre COMMAND --help for a command's options;\n"
               "rre --help-all for every command's.\n"
               "Exit status: 0 success, 1 failure, 2 wrong usage (demo: 128+N when stopped\n"
               "by signal N).\n");
}

/* The parts of the manual that are not one command's: written after the
 * commands by --help-all, in the layout help2man reads ("Heading:" starts a
 * section, an indented "NAME  text" is a tagged paragraph). */
static const char help_all_intro[] =
    "Works with the events of the training pipeline: publishes them to the host's\n"
    "durable queue (a SQLite file shared with the Python processes of the host),\n"
    "reads them as a durable subscriber, checks payloads against the event catalog\n"
    "and streams of events against the pipeline's lifecycles, shows the queue's\n"
    "figures, and carries events between hosts over NATS JetStream.\n"
    "\n"
    "--db PATH (or --db=PATH, spelled in full: it is taken out of the line\n"
    "before the command's options are read) may be given anywhere on the command\n"
    "line before a --; given twice, it is wrong usage. Every command parses its\n"
    "other options alike (GNU getopt_long): options may come before or after the\n"
    "operands, -- ends them, a value follows as --name VALUE or --name=VALUE\n"
    "(-n VALUE or -nVALUE for a short form), a long name may be shortened while\n"
    "it stays unique, short flags combine (-fn5), and an option that takes one\n"
    "value given twice is wrong usage. An unknown option, event type, category or\n"
    "command gets the nearest name as a suggestion.\n"
    "\n"
    "Output formats: a command whose output is a stream of records prints one JSON\n"
    "object per line (publish's results, tail's events, purge's counts), for jq\n"
    "and scripts; tail --format text is the view for people. A command that shows\n"
    "a view prints text (stats, catalog, dlq list, flow check, validate, top),\n"
    "with sizes in binary units (3.2 MiB), and --format json for scripts where it\n"
    "has one. The format never depends on whether the output is a terminal, so a\n"
    "script gets what a person saw; only colour and shortening to the width do.\n";

static const char help_all_outro[] =
    "Environment:\n"
    "  RRE_DB  The queue file when no --db is given (not used by rre demo, which\n"
    "          writes its own).\n"
    "  RINGRIFT_COORDINATION_DIR  The directory of the default queue file\n"
    "                             (events.db); else\n"
    "                             $XDG_RUNTIME_DIR/ringrift_coordination, else a\n"
    "                             private directory under /tmp.\n"
    "  NO_COLOR  When set and not empty, rre tail --format text writes no colour,\n"
    "            even on a terminal.\n"
    "  RINGRIFT_CROSS_PROCESS_RETENTION_HOURS  How long events are kept in the\n"
    "                                          queue (default 24).\n"
    "  RINGRIFT_SUBSCRIBER_TIMEOUT  Seconds after which a silent subscriber\n"
    "                               counts as gone (default 300).\n"
    "\n"
    "Exit status:\n"
    "  0  Success (for bridge and serve-metrics: stopped by SIGINT or SIGTERM).\n"
    "  1  Failure; the reason is printed on standard error.\n"
    "  2  Wrong usage.\n"
    "  128+N  rre demo stopped by signal N (130 for Ctrl-C).\n"
    "\n"
    "Examples:\n"
    "  rre publish TRAINING_COMPLETED --payload - < payload.json\n"
    "\n"
    "  rre tail --subscriber ops --format text --follow\n"
    "\n"
    "  rre tail --since 1h --type TRAINING_COMPLETED --format text\n"
    "\n"
    "  rre stats --format prometheus > /var/lib/prometheus/node-exporter/rre.prom\n"
    "\n"
    "  rre bridge --nats nats://nats-1:4222 --metrics-listen 127.0.0.1:9464\n";

/* Writes one command's help for the manual: its heading ("rre NAME:"),
 * each of its usage lines as a paragraph of one line (continuations
 * joined, "usage:" left out), then its text as it is. */
static bool help_for_manual(FILE *out, const struct cli_command *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL)
        return false;
    c->help(mem);
    if (fclose(mem) != 0) {
        free(text);
        return false;
    }
    fprintf(out, "\nrre %s:", c->name);
    bool in_usage = true;
    int usages = 0;
    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (in_usage && line[0] == '\0') {
            in_usage = false;
            fputs("\n", out);
        }
        if (!in_usage) {
            fprintf(out, "%s\n", line);
            continue;
        }
        const char *words = line + strspn(line, " ");
        if (strncmp(words, "usage: ", 7) == 0)
            words += 7;
        if (strncmp(words, "rre ", 4) == 0) /* a usage of its own, a paragraph */
            fprintf(out, "%s  %s", usages++ > 0 ? "\n\n" : "\n", words);
        else
            fprintf(out, " %s", words); /* the one before goes on */
    }
    if (in_usage)
        fputs("\n", out);
    free(text);
    return true;
}

/* rre --help-all: the whole manual as text, from which the man page is made
 * (help2man --help-option=--help-all), so the page and the help texts say
 * the same. */
static int help_all(FILE *out)
{
    fprintf(out,
            "Usage: rre [--db PATH] COMMAND [ARGS...]\n"
            "  or:  rre help COMMAND\n"
            "  or:  rre -h|--help|--help-all|-V|--version\n\n%s\nCommands:\n",
            help_all_intro);
    for (const struct cli_command *c = commands; c->name != NULL; c++)
        fprintf(out, "  %-14s %s\n", c->name, c->summary);
    for (const struct cli_command *c = commands; c->name != NULL; c++)
        if (!help_for_manual(out, c)) {
            fprintf(stderr, "rre: out of memory\n");
            return CLI_FAIL;
        }
    fprintf(out, "\n%s", help_all_outro);
    return CLI_OK;
}

/* Flushes standard output and turns a failed write (a full disk, a closed
 * pipe) into a failure: a script must not take output it never got for a
 * success. A reader that went away needs no message. */
static int finish_output(int rc)
{
    errno = 0;
    bool flushed = fflush(stdout) == 0;
    int err = errno;
    if (flushed && !ferror(stdout))
        return rc;
    if (err != EPIPE && !cli_stdout_gone())
        fprintf(stderr, "rre: cannot write standard output: %s\n",
                flushed ? "an earlier write failed" : strerror(err));
    return rc == CLI_OK ? CLI_FAIL : rc;
}

static void log_to_stderr(rre_log_level level, const char *component, const char *message,
                          void *user_data)
{
    (void)user_data;
    char *safe = cli_safe_text(message, false);
    fprintf(stderr, "rre: %s: %s: %s\n", level >= RRE_LOG_ERROR ? "error" : "warning", component,
            safe != NULL ? safe : message);
    free(safe);
}

/* Takes --db PATH / --db=PATH out of argv wherever it is (before a "--"),
 * so `rre tail --db X` means what `rre --db X tail` does. Returns CLI_OK,
 * or the status of a usage error (no PATH, an empty one, given twice). */
static int take_db_option(int *argc, char **argv, struct cli_globals *g)
{
    int out = 1;
    bool rest = false;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (!rest && strcmp(a, "--") == 0)
            rest = true;
        if (rest || (strcmp(a, "--db") != 0 && strncmp(a, "--db=", 5) != 0)) {
            argv[out++] = argv[i];
            continue;
        }
        /* An empty PATH would mean the default location: a script's unset
         * variable must not send it to the shared database. */
        const char *path = NULL;
        if (a[4] == '=') /* --db=PATH, or "--db=" with nothing after it */
            path = a + 5;
        else if (i + 1 < *argc)
            path = argv[++i];
        if (path == NULL || path[0] == '\0')
            return cli_usage_error("--db needs a PATH");
        if (g->db_path != NULL)
            return cli_usage_error("--db is given twice");
        g->db_path = path;
    }
    argv[out] = NULL;
    *argc = out;
    return CLI_OK;
}

int main(int argc, char **argv)
{
    struct cli_globals g = {0};
    int rc = take_db_option(&argc, argv, &g);
    if (rc != CLI_OK)
        return rc;
    if (g.db_path == NULL && getenv("RRE_DB") != NULL && getenv("RRE_DB")[0] != '\0') {
        g.db_path = getenv("RRE_DB");
        g.db_from_env = true;
    }
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return finish_output(CLI_OK);
        } else if (strcmp(argv[i], "--help-all") == 0) {
            return finish_output(help_all(stdout));
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("rre %s\n", rre_version());
            return finish_output(CLI_OK);
        } else if (argv[i][0] == '-') {
            return cli_usage_error("unknown option '%s'", argv[i]);
        } else {
            break;
        }
    }
    /* rre help [COMMAND]: the command's own --help. */
    if (i < argc && strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return finish_output(CLI_OK);
        }
        for (const struct cli_command *c = commands; c->name != NULL; c++)
            if (strcmp(argv[i + 1], c->name) == 0) {
                c->help(stdout);
                return finish_output(CLI_OK);
            }
        return unknown_command("help: ", argv[i + 1]);
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    /* What the library reports (a poison row skipped, a setting ignored) is
     * said on standard error. The bridge installs its own logger (the
     * library keeps a replaced one for good, so only one is installed). */
    if (strcmp(argv[i], "bridge") != 0)
        rre_set_logger(log_to_stderr, NULL, RRE_LOG_WARN);
    for (const struct cli_command *c = commands; c->name != NULL; c++)
        if (strcmp(argv[i], c->name) == 0)
            return finish_output(c->run(&g, argc - i, argv + i));
    return unknown_command("", argv[i]);
}
