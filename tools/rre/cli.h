/*
 * cli.h - what the command functions of the rre tool share.
 */
#ifndef RRE_CLI_H
#define RRE_CLI_H

#include <rre/rre.h>

#include <getopt.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define CLI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct cli_globals {
    const char *db_path; /* --db (anywhere), else RRE_DB, else NULL: the default location */
    bool db_from_env;    /* db_path came from RRE_DB */
};

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(const struct cli_globals *g, int argc, char **argv);
    void (*help)(FILE *out); /* the command's help text: --help, rre help, the man page */
};

/* The commands. */
int cmd_catalog(const struct cli_globals *g, int argc, char **argv);
int cmd_validate(const struct cli_globals *g, int argc, char **argv);
int cmd_config_key(const struct cli_globals *g, int argc, char **argv);
int cmd_demo(const struct cli_globals *g, int argc, char **argv);
int cmd_flow(const struct cli_globals *g, int argc, char **argv);
int cmd_publish(const struct cli_globals *g, int argc, char **argv);
int cmd_tail(const struct cli_globals *g, int argc, char **argv);
int cmd_stats(const struct cli_globals *g, int argc, char **argv);
int cmd_purge(const struct cli_globals *g, int argc, char **argv);
int cmd_dlq(const struct cli_globals *g, int argc, char **argv);
int cmd_bridge(const struct cli_globals *g, int argc, char **argv);
int cmd_serve_metrics(const struct cli_globals *g, int argc, char **argv);
int cmd_top(const struct cli_globals *g, int argc, char **argv);

/* Each command's help text, as `rre COMMAND --help` prints it: usage lines
 * ("usage: rre ..."), a blank line, then the description. The man page is
 * made from these (rre --help-all, through help2man), so they are the one
 * source of what each command takes. */
void cmd_catalog_help(FILE *out);
void cmd_validate_help(FILE *out);
void cmd_config_key_help(FILE *out);
void cmd_demo_help(FILE *out);
void cmd_flow_help(FILE *out);
void cmd_publish_help(FILE *out);
void cmd_tail_help(FILE *out);
void cmd_stats_help(FILE *out);
void cmd_purge_help(FILE *out);
void cmd_dlq_help(FILE *out);
void cmd_bridge_help(FILE *out);
void cmd_serve_metrics_help(FILE *out);
void cmd_top_help(FILE *out);

/* ---- options: one parser (getopt_long) for every command ---------------- */

/* One option of a command. */
struct cli_option {
    const char *name; /* the long name, without "--" */
    char short_name;  /* its one-letter form, or 0 */
    bool has_value;   /* takes a value: --name VALUE, --name=VALUE, -x VALUE, -xVALUE */
    bool repeatable;  /* may be given more than once (--type T --type U); else twice is
                         wrong usage */
};

#define CLI_MAX_OPTIONS 40
#define CLI_MAX_OPERANDS 64

/* The parser of one command's arguments: options anywhere among the
 * operands (GNU getopt_long), "--" ends them, a long name may be shortened
 * to a unique prefix, short flags combine (-fn5). -h and --help are always
 * known. */
struct cli_getopt {
    const char *cmd; /* "tail", "dlq list": the prefix of messages */
    const struct cli_option *opts;
    size_t nopts;
    unsigned char seen[CLI_MAX_OPTIONS];
    char shorts[2 * CLI_MAX_OPTIONS + 4];
    struct option longs[CLI_MAX_OPTIONS + 2];
    int first_operand; /* after CLI_OPT_END: argv[first_operand..argc) are the operands */
    char *operands[CLI_MAX_OPERANDS]; /* gathered while parsing */
    size_t noperands;
};

enum {
    CLI_OPT_END = -1,   /* no more options: the operands follow */
    CLI_OPT_USAGE = -2, /* wrong usage, already reported: return CLI_USAGE */
    CLI_OPT_HELP = -3,  /* -h or --help: print the command's help, return CLI_OK */
};

/* Starts parsing argv[1..argc) (argv[0] is the command's name) for the
 * `nopts` options `opts` (at most CLI_MAX_OPTIONS). */
void cli_getopt_init(struct cli_getopt *p, const char *cmd, const struct cli_option *opts,
                     size_t nopts);

/* Options only before the first operand, as POSIX has it: what follows it
 * is all operands (for a command whose operands may begin with '-', such
 * as a negative number). Call right after cli_getopt_init(). */
void cli_getopt_stop_at_operand(struct cli_getopt *p);

/* The next option: its index in `opts`, with *value its value (NULL for a
 * flag); or CLI_OPT_END, CLI_OPT_USAGE (an unknown option, with the closest
 * one suggested; a value missing, or given to a flag; a single-valued option
 * given twice: reported on stderr) or CLI_OPT_HELP. At CLI_OPT_END the
 * operands are argv[first_operand..argc), in their order (argv is
 * rearranged; also with POSIXLY_CORRECT set). More than CLI_MAX_OPERANDS
 * operands are wrong usage. */
int cli_getopt_next(struct cli_getopt *p, int argc, char **argv, const char **value);

/* Prints "rre: <message>" to stderr and returns CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "rre: <message>" to stderr and returns CLI_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "rre: <what>: <strerror>: <detail>" for a failed library call and
 * returns CLI_FAIL. */
int cli_fail_status(const char *what, rre_status st);

/* Parses "<number>[smhd]" (a decimal number such as 90 or 1.5; units
 * seconds, minutes, hours, days; no unit: seconds) into seconds; false when
 * malformed, negative or too large. */
bool cli_parse_duration(const char *text, double *out);

/* Reads a payload from `arg` (JSON text), or from standard input when `arg`
 * is NULL or "-", and parses it (rre_payload_parse). On failure prints the
 * reason prefixed by `cmd` and returns CLI_FAIL; CLI_OK otherwise. */
int cli_read_payload(const char *cmd, const char *arg, json_t **out);

/* Prints validation problems to stderr, one per line, then "... and N more
 * problems" when not all of them were kept. Errors get `error_prefix` (such
 * as "warning: ", or ""); notes print as "note: ..." already. */
void cli_print_problems(const rre_problems *problems, const char *error_prefix);

/* Opens the queue at --db (or the default location), with its maintenance
 * thread only when `maintenance`. On failure prints the reason and returns
 * CLI_FAIL. */
int cli_open_queue(const struct cli_globals *g, const char *cmd, bool maintenance, rre_queue **out);

/* The same, read-only (no maintenance, nothing written): for commands that
 * only look, so they work on a file they cannot write. */
int cli_open_queue_read_only(const struct cli_globals *g, const char *cmd, rre_queue **out);

/* For the commands that only look at or tidy an existing queue (stats,
 * purge): CLI_OK when the database file exists, else prints "no queue
 * database at PATH" and returns CLI_FAIL, so a mistyped --db creates
 * nothing. */
int cli_require_queue_file(const struct cli_globals *g, const char *cmd);

/* True when standard output is a pipe or socket whose reader has gone, or a
 * terminal that hung up: nothing written there will be read. */
bool cli_stdout_gone(void);

/* A copy of `s` (NULL: "") fit for a terminal: C0 controls, DEL and C1
 * controls (U+0080..U+009F) written as \xNN and \u00NN, and backslashes
 * doubled when `escape_backslash` (not for JSON text, whose escapes must
 * stay as they are). NULL when out of memory; release with free(). */
char *cli_safe_text(const char *s, bool escape_backslash);

/* The formats of `rre tail`. */
enum cli_tail_format { CLI_TAIL_JSON, CLI_TAIL_TEXT, CLI_TAIL_CLOUDEVENTS };

/* One line of `rre tail` output for `ev` (no newline), malloc'd; NULL when
 * out of memory. Always valid UTF-8; the text format holds no control
 * character; the others are one JSON object. */
char *cli_tail_line(const rre_event *ev, enum cli_tail_format format);

/* How the text format looks: plain (all zero) when the output is not a
 * terminal. */
struct cli_tail_style {
    bool color;      /* ANSI colours: the id dim, the type by category */
    bool local_time; /* times in the local zone (with its offset), not UTC */
    int width;       /* the terminal's columns: the payload is shortened to fit; 0: whole */
};

/* The text format's line for `ev` in `style` (no newline), malloc'd; NULL
 * when out of memory. Columns: id, time, type, source@host, payload. */
char *cli_tail_text(const rre_event *ev, const struct cli_tail_style *style);

/* Writes the figures of rre_queue_stats() `s` in the Prometheus text
 * exposition format to `out`. CLI_OK, or CLI_FAIL when writing failed. */
int cli_stats_prometheus(FILE *out, const json_t *s);

/* A /metrics endpoint (libmicrohttpd, a thread of its own): `fn` writes
 * the exposition for each scrape. cli_metrics_start() returns NULL with the
 * reason in `why` when `listen` ("ADDR:PORT", "[ADDR6]:PORT", ":PORT") is
 * malformed or cannot be bound. */
typedef void (*cli_metrics_fn)(FILE *out, void *user_data);
struct cli_metrics_server;
bool cli_metrics_listen_valid(const char *listen);
struct cli_metrics_server *cli_metrics_start(const char *listen, cli_metrics_fn fn, void *user_data,
                                             char *why, size_t why_cap);
void cli_metrics_stop(struct cli_metrics_server *srv);

/* The canonical NAME closest to a misspelt type (a few letters off, any
 * case), or NULL. */
const char *cli_suggest_type(const char *spelling);

/* Reports a failed type lookup: for an unknown type "unknown event type
 * 'X' (did you mean NAME?)" when one is close. Returns CLI_FAIL. */
int cli_fail_type(const char *cmd, const char *spelling, rre_status st);

/* The first candidate that `word` (3 characters or more) begins, else the
 * closest one (case-insensitive edit distance, at most 1, 2 or 3 edits by
 * its length), or NULL when none is close. */
const char *cli_suggest(const char *word, const char *const *candidates, size_t n);

/* `bytes` for people: "512 bytes", "3.2 MiB" (binary units, one decimal). */
void cli_human_bytes(long long bytes, char *out, size_t cap);

/* Reports an unknown category, with a suggestion when one is close. */
int cli_fail_category(const char *cmd, const char *spelling);

/* Reads all of standard input (up to `max` bytes). Returns NULL with errno
 * EFBIG when there is more, or the reason of a failed read or allocation. */
char *cli_read_stdin(size_t max, size_t *len);

#endif
