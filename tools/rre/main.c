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
    {"catalog", "list event types, or show one", cmd_catalog},
    {"validate", "check a payload against its type's schema", cmd_validate},
    {"config-key", "parse or make a config key such as hex8_2p", cmd_config_key},
    {"demo", "run the training pipeline with one process per coordinator", cmd_demo},
    {"flow", "check a stream of events against the lifecycles and pipeline", cmd_flow},
    {"publish", "append an event to the durable queue", cmd_publish},
    {"tail", "print queue events, or follow them as a durable subscriber", cmd_tail},
    {"stats", "queue figures: events, types, subscribers, file size", cmd_stats},
    {"purge", "run retention on the queue now", cmd_purge},
    {"dlq", "dead letters: list, show, replay or drop failed events", cmd_dlq},
    {"bridge", "carry events between this host's queue and a NATS JetStream stream", cmd_bridge},
    {"serve-metrics", "serve the queue's figures to Prometheus over HTTP", cmd_serve_metrics},
    {"top", "a live view of the queue: rates, busiest types, subscribers' lag", cmd_top},
    {NULL, NULL, NULL},
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
               "rre help COMMAND or rre COMMAND --help for a command's options.\n"
               "Exit status: 0 success, 1 failure, 2 wrong usage.\n");
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
        if (a[4] == '=') /* not split: "--db=" with nothing after it */
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

/* Every command takes --name=value as --name value: the arguments are
 * split here once (up to a "--"), into a new argv. NULL when out of memory. */
static char **split_equals(int *argc, char **argv, char **names)
{
    size_t named = 0;
    char **out = calloc((size_t)*argc * 2 + 1, sizeof *out);
    if (out == NULL)
        return NULL;
    int n = 0;
    bool rest = false;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        if (!rest && strcmp(a, "--") == 0)
            rest = true;
        if (i > 0 && !rest && strncmp(a, "--", 2) == 0 && eq != NULL && eq > a + 2) {
            out[n] = strndup(a, (size_t)(eq - a));
            if (out[n] == NULL) {
                free(out);
                return NULL;
            }
            names[named++] = out[n];
            n++;
            out[n++] = (char *)eq + 1;
        } else {
            out[n++] = argv[i];
        }
    }
    out[n] = NULL;
    *argc = n;
    return out;
}

/* The split arguments, freed at exit (after main has returned). */
static char **split_argv;
static char **split_names; /* the names strndup'ed by split_equals, NULL-terminated */

static void free_split(void)
{
    for (char **p = split_names; p != NULL && *p != NULL; p++)
        free(*p);
    free(split_names);
    free(split_argv);
}

int main(int argc, char **argv)
{
    struct cli_globals g = {0};
    split_names = calloc((size_t)argc + 1, sizeof *split_names);
    argv = split_argv = split_names != NULL ? split_equals(&argc, argv, split_names) : NULL;
    atexit(free_split);
    if (argv == NULL) {
        fprintf(stderr, "rre: out of memory\n");
        return CLI_FAIL;
    }
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
                char *help_argv[] = {argv[i + 1], "--help", NULL};
                return finish_output(c->run(&g, 2, help_argv));
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
