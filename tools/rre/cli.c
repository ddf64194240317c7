/*
 * cli.c - helpers shared by the command functions.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 1, 0))) static void vreport(const char *fmt, va_list ap)
{
    fputs("rre: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_FAIL;
}

int cli_fail_status(const char *what, rre_status st)
{
    const char *detail = rre_last_error();
    if (detail[0] != '\0')
        return cli_fail("%s: %s: %s", what, rre_strerror(st), detail);
    return cli_fail("%s: %s", what, rre_strerror(st));
}

bool cli_stdout_gone(void)
{
    /* With no events asked for, poll reports only the error conditions. */
    struct pollfd p = {STDOUT_FILENO, 0, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

char *cli_read_stdin(size_t max, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(buf);
                errno = EFBIG;
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        errno = 0;
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(stdin)) {
        int err = errno != 0 ? errno : EIO;
        free(buf);
        errno = err;
        return NULL;
    }
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

bool cli_parse_duration(const char *text, double *out)
{
    /* Decimal digits with at most one point: strtod alone would also take
     * leading blanks, a sign, hexadecimal ("0x10"), "inf" and exponents. */
    size_t digits = strspn(text, "0123456789."), points = 0;
    for (size_t i = 0; i < digits; i++)
        points += text[i] == '.';
    if (digits == 0 || points > 1 || (digits == 1 && points == 1))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end != text + digits || errno != 0 || !isfinite(v) || v < 0.0)
        return false;
    double unit = 1.0;
    if (*end != '\0') {
        switch (*end) {
        case 's':
            unit = 1.0;
            break;
        case 'm':
            unit = 60.0;
            break;
        case 'h':
            unit = 3600.0;
            break;
        case 'd':
            unit = 86400.0;
            break;
        default:
            return false;
        }
        if (end[1] != '\0')
            return false;
    }
    if (!isfinite(v * unit))
        return false;
    *out = v * unit;
    return true;
}

int cli_read_payload(const char *cmd, const char *arg, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    const char *json_text = arg;
    if (arg == NULL || strcmp(arg, "-") == 0) {
        text = cli_read_stdin(RRE_PAYLOAD_MAX_BYTES, &len);
        if (text == NULL && errno == EFBIG)
            return cli_fail("%s: the payload on standard input is larger than %u bytes", cmd,
                            RRE_PAYLOAD_MAX_BYTES);
        if (text == NULL)
            return cli_fail("%s: cannot read the payload from standard input: %s", cmd,
                            strerror(errno));
        json_text = text;
    } else {
        len = strlen(arg);
    }
    rre_status st = rre_payload_parse(json_text, len, out);
    free(text);
    if (st != RRE_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s: payload", cmd);
        return cli_fail_status(what, st);
    }
    return CLI_OK;
}

int cli_open_queue(const struct cli_globals *g, const char *cmd, bool maintenance, rre_queue **out)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = g->db_path;
    /* A short-lived command leaves retention to the processes that stay. */
    o.maintenance_interval_ms = maintenance ? 0 : -1;
    rre_status st = rre_queue_create(out, &o);
    if (st != RRE_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s: opening the queue", cmd);
        return cli_fail_status(what, st);
    }
    return CLI_OK;
}

int cli_open_queue_read_only(const struct cli_globals *g, const char *cmd, rre_queue **out)
{
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = g->db_path;
    o.maintenance_interval_ms = -1;
    o.read_only = true;
    rre_status st = rre_queue_create(out, &o);
    if (st != RRE_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s: opening the queue", cmd);
        return cli_fail_status(what, st);
    }
    return CLI_OK;
}

int cli_require_queue_file(const struct cli_globals *g, const char *cmd)
{
    char path[4096];
    if (g->db_path != NULL) {
        snprintf(path, sizeof path, "%s", g->db_path);
    } else {
        rre_status st = rre_queue_default_path(path, sizeof path);
        if (st != RRE_OK)
            return cli_fail_status(cmd, st);
    }
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cli_fail("%s: no queue database at '%s' (%s)", cmd, path, strerror(errno));
    return CLI_OK;
}

void cli_print_problems(const rre_problems *problems, const char *error_prefix)
{
    for (size_t i = 0; i < problems->count; i++) {
        char line[256];
        rre_problem_format(&problems->items[i], line, sizeof line);
        bool note = problems->items[i].kind == RRE_PROBLEM_UNKNOWN_FIELD;
        fprintf(stderr, "%s%s\n", note ? "" : error_prefix, line);
    }
    size_t shown = problems->count, total = problems->errors + problems->notes;
    if (total > shown)
        fprintf(stderr, "... and %zu more problems\n", total - shown);
}

char *cli_safe_text(const char *s, bool escape_backslash)
{
    if (s == NULL)
        s = "";
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    char *out = malloc(len * 6 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned c = u[i];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)sprintf(out + o, "\\x%02x", c);
        } else if (c == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
            o += (size_t)sprintf(out + o, "\\u%04x", u[i + 1]); /* a C1 control */
            i++;
        } else if (c == '\\' && escape_backslash) {
            out[o++] = '\\';
            out[o++] = '\\';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return out;
}

/* Edit distance between a and b, letters compared without regard to case;
 * stops counting past `cap`. */
static size_t distance(const char *a, const char *b, size_t cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0], best = row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            int ca = a[i - 1], cb = b[j - 1];
            if (ca >= 'a' && ca <= 'z')
                ca -= 32;
            if (cb >= 'a' && cb <= 'z')
                cb -= 32;
            size_t v = diag + (ca != cb);
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            if (up + 1 < v)
                v = up + 1;
            row[j] = v;
            diag = up;
            if (v < best)
                best = v;
        }
        if (best > cap)
            return cap + 1;
    }
    return row[lb];
}

const char *cli_suggest_type(const char *spelling)
{
    if (spelling == NULL || spelling[0] == '\0')
        return NULL;
    size_t len = strlen(spelling);
    size_t cap = len < 8 ? 1 : len < 16 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = cap + 1;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (info == NULL || info->alias_of != RRE_EV_NONE)
            continue;
        const char *names[] = {info->name, info->value};
        for (size_t k = 0; k < 2; k++) {
            size_t d = distance(spelling, names[k], best_d);
            if (d < best_d) {
                best_d = d;
                best = info->name;
            }
        }
    }
    return best;
}

const char *cli_suggest(const char *word, const char *const *candidates, size_t n)
{
    if (word == NULL || word[0] == '\0')
        return NULL;
    size_t len = strlen(word);
    size_t cap = len < 3 ? 1 : len < 10 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = cap + 1;
    /* A word that begins a candidate ("training" of "training_pipeline"). */
    for (size_t i = 0; i < n && len >= 3; i++)
        if (strncasecmp(candidates[i], word, len) == 0)
            return candidates[i];
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(word, candidates[i], best_d);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

int cli_fail_category(const char *cmd, const char *spelling)
{
    const char *names[RRE_CATEGORY_COUNT];
    for (int c = 0; c < RRE_CATEGORY_COUNT; c++)
        names[c] = rre_category_name((rre_category)c);
    const char *guess = cli_suggest(spelling, names, RRE_CATEGORY_COUNT);
    char *safe = cli_safe_text(spelling, true);
    if (guess != NULL)
        cli_fail("%s: unknown event category '%s' (did you mean %s?)", cmd,
                 safe != NULL ? safe : "?", guess);
    else {
        char list[512] = "";
        for (int c = 0; c < RRE_CATEGORY_COUNT; c++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", c > 0 ? ", " : "",
                     names[c]);
        cli_fail("%s: unknown event category '%s' (categories: %s)", cmd, safe != NULL ? safe : "?",
                 list);
    }
    free(safe);
    return CLI_FAIL;
}

int cli_fail_type(const char *cmd, const char *spelling, rre_status st)
{
    if (st != RRE_EUNKNOWN_TYPE)
        return cli_fail_status(cmd, st);
    const char *guess = cli_suggest_type(spelling);
    char *safe = cli_safe_text(spelling, true);
    if (guess != NULL)
        cli_fail("%s: unknown event type '%s' (did you mean %s?)", cmd, safe != NULL ? safe : "?",
                 guess);
    else
        cli_fail("%s: unknown event type '%s' (rre catalog lists them)", cmd,
                 safe != NULL ? safe : "?");
    free(safe);
    return CLI_FAIL;
}

void cli_human_bytes(long long bytes, char *out, size_t cap)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)(bytes > 0 ? bytes : 0);
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%lld bytes", bytes > 0 ? bytes : 0);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

/* ---- options ------------------------------------------------------------- */

void cli_getopt_init(struct cli_getopt *p, const char *cmd, const struct cli_option *opts,
                     size_t nopts)
{
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->opts = opts;
    p->nopts = nopts < CLI_MAX_OPTIONS ? nopts : CLI_MAX_OPTIONS;
    /* "-" first: getopt hands each operand over in order (code 1) and the
     * operands are gathered here, whatever POSIXLY_CORRECT says; ":" next:
     * a missing value is told apart from an unknown option. */
    size_t k = 0;
    p->shorts[k++] = '-';
    p->shorts[k++] = ':';
    p->shorts[k++] = 'h';
    size_t n = 0;
    for (size_t i = 0; i < p->nopts; i++) {
        p->longs[n++] =
            (struct option){opts[i].name, opts[i].has_value ? required_argument : no_argument, NULL,
                            (int)(256 + i)};
        if (opts[i].short_name != 0) {
            p->shorts[k++] = opts[i].short_name;
            if (opts[i].has_value)
                p->shorts[k++] = ':';
        }
    }
    p->longs[n++] = (struct option){"help", no_argument, NULL, 'h'};
    p->longs[n] = (struct option){NULL, 0, NULL, 0};
    p->shorts[k] = '\0';
    optind = 0; /* glibc: start afresh, also after an earlier parse */
    opterr = 0;
}

void cli_getopt_stop_at_operand(struct cli_getopt *p)
{
    p->shorts[0] = '+';
}

/* The option text at fault, for a message: "--name" without its value, or
 * "-x" for a short one (the letter may sit in a group such as -fx, whose
 * argv entry optind does not point past yet). */
static void offending(char **argv, int argc, char *out, size_t cap)
{
    if (optopt != 0 && optopt < 256) {
        unsigned char c = (unsigned char)optopt;
        if (c > ' ' && c < 0x7f)
            snprintf(out, cap, "-%c", c);
        else
            snprintf(out, cap, "-(byte 0x%02x)", c);
        return;
    }
    int i = optind - 1;
    const char *a = i >= 0 && i < argc ? argv[i] : "?";
    size_t len = strcspn(a, "=");
    snprintf(out, cap, "%.*s", (int)(len < 64 ? len : 64), a);
}

/* The end of the options: the operands gathered (in order) go just before
 * those after a "--", which getopt leaves at the end, so that they are
 * argv[first_operand..argc) together. Slots before optind were read
 * already and may be written. */
static int end_of_options(struct cli_getopt *p, char **argv)
{
    int rest = optind;
    p->first_operand = rest - (int)p->noperands;
    for (size_t i = 0; i < p->noperands; i++)
        argv[p->first_operand + (int)i] = p->operands[i];
    return CLI_OPT_END;
}

int cli_getopt_next(struct cli_getopt *p, int argc, char **argv, const char **value)
{
    *value = NULL;
    int c;
    while ((c = getopt_long(argc, argv, p->shorts, p->longs, NULL)) == 1) {
        if (p->noperands == CLI_MAX_OPERANDS) {
            cli_usage_error("%s: too many arguments (at most %d)", p->cmd, CLI_MAX_OPERANDS);
            return CLI_OPT_USAGE;
        }
        p->operands[p->noperands++] = optarg;
    }
    if (c == -1)
        return end_of_options(p, argv);
    if (c == 'h')
        return CLI_OPT_HELP;
    size_t idx = p->nopts;
    if (c >= 256)
        idx = (size_t)c - 256;
    else if (c != '?' && c != ':')
        for (size_t i = 0; i < p->nopts; i++)
            if (p->opts[i].short_name == c)
                idx = i;
    if (idx < p->nopts) {
        const struct cli_option *o = &p->opts[idx];
        if (o->has_value && !o->repeatable && p->seen[idx]++ > 0) {
            cli_usage_error("%s: --%s is given twice", p->cmd, o->name);
            return CLI_OPT_USAGE;
        }
        *value = optarg;
        return (int)idx;
    }
    char what[80];
    offending(argv, argc, what, sizeof what);
    char *safe = cli_safe_text(what, true);
    const char *shown = safe != NULL ? safe : "?";
    /* What a long name stands for: the one it is a prefix of, if only one. */
    const struct option *match = NULL;
    size_t matches = 0;
    if (strncmp(what, "--", 2) == 0 && what[2] != '\0')
        for (const struct option *l = p->longs; l->name != NULL; l++)
            if (strncmp(l->name, what + 2, strlen(what + 2)) == 0) {
                matches++;
                if (match == NULL || strcmp(l->name, what + 2) == 0)
                    match = l;
            }
    bool ambiguous = matches > 1 && strcmp(match->name, what + 2) != 0;
    if (c == ':') {
        cli_usage_error("%s: %s needs a value", p->cmd, shown);
    } else if (ambiguous) {
        cli_usage_error("%s: option '%s' is ambiguous (see rre help %s)", p->cmd, shown, p->cmd);
    } else if (match != NULL && match->has_arg == no_argument && optind > 0 && optind <= argc &&
               strchr(argv[optind - 1], '=') != NULL) {
        cli_usage_error("%s: --%s takes no value", p->cmd, match->name);
    } else {
        const char *names[CLI_MAX_OPTIONS + 1];
        size_t n = 0;
        for (const struct option *l = p->longs; l->name != NULL; l++)
            names[n++] = l->name;
        const char *guess = strncmp(what, "--", 2) == 0 ? cli_suggest(what + 2, names, n) : NULL;
        if (guess != NULL)
            cli_usage_error("%s: unknown option '%s' (did you mean --%s?)", p->cmd, shown, guess);
        else
            cli_usage_error("%s: unknown option '%s' (see rre help %s)", p->cmd, shown, p->cmd);
    }
    free(safe);
    return CLI_OPT_USAGE;
}
