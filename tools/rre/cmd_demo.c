/*
 * cmd_demo.c - `rre demo`: the catalog's pipeline, run by cooperating processes
 * over the embedded SQLite queue.
 *
 *   rre demo [--configs hex8_2p,square8_4p,...] [--iterations N] [--db PATH]
 *            [--timeout SECONDS] [--storm N] [--pace MS] [--quiet] [--keep]
 *            [--hosts N [--nats URL]]
 *
 * The driver forks one process per coordinator (demo_roles.c), then follows
 * the queue itself: it shows progress per config, measures the latency from
 * publish in one process to delivery in this one, and feeds every event of
 * the run (not those of other producers of the database) to the flow
 * checker. When every config has run its iterations it publishes
 * COORDINATOR_SHUTDOWN for "demo"; each coordinator answers with a
 * COORDINATOR_SHUTDOWN of its own carrying its statistics, and exits. The
 * summary lists events by type, latency p50/p99, duplicates prevented,
 * handler failures, the faults injected and the flow checker's verdict. The
 * exit status is 0 only when everything went as the flows say.
 *
 * With --hosts N the coordinators are spread over N simulated hosts, each
 * with its own queue file and host name and a bridge to one JetStream stream
 * (demo_hosts.c): training, evaluation, promotion, distribution, export, the
 * quality monitor and the rollback manager on the first host, a selfplay and
 * a sync coordinator on each of the others, which share the configs out. The
 * driver runs the bridges on threads of its own and follows the first host's
 * queue, which sees every host's events; the summary adds the cross-host
 * latency and the events carried per direction.
 *
 * SIGINT, SIGTERM and SIGHUP end a run early: the coordinators are asked to
 * stop, then killed after a short grace, the live lines are left in their
 * last state, the summary says "interrupted" (and lists as injected only the
 * faults that were), a temporary database is removed (unless --keep), and
 * the exit status is 128 + the signal's number (130 for a Ctrl-C), as a
 * shell reports it. The driver keeps
 * these signals blocked in all its threads (the threads the library starts
 * inherit the mask) and takes them in its wait loop with sigtimedwait(). The
 * coordinators ignore SIGINT, so a Ctrl-C on the terminal, which reaches the
 * whole process group, is handled once, by the driver; a coordinator whose
 * driver died (even by SIGKILL) notices and exits.
 */
#include "cli.h"
#include "demo.h"

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIGS "hex8_2p,square8_4p,hexagonal_3p"
#define DEFAULT_ITERATIONS 3

struct config_progress {
    int iteration;       /* latest iteration seen */
    int done;            /* iterations ended */
    rre_event_type last; /* latest event type of that iteration */
    char outcome[64];    /* how that iteration ended, or what it did; "" while it runs */
};

struct driver {
    struct demo_config cfg;
    bool tty, quiet;
    pthread_mutex_t mu; /* guards everything below: the link's reader thread writes it */
    struct config_progress progress[DEMO_MAX_CONFIGS];
    uint64_t by_type[RRE_EVENT_TYPE_COUNT];
    uint64_t events;
    double *latency_ms; /* from another process of the same host */
    size_t latency_count, latency_cap;
    double *host_latency_ms; /* from another host, through the bridges */
    size_t host_latency_count, host_latency_cap;
    rre_flow_checker *flow;
    json_t *shutdowns;          /* coordinator name -> state_snapshot */
    bool injected[FAULT_COUNT]; /* the fault's first consequence was seen */
    bool drawn;
    bool frozen; /* the run is over: the live lines are not drawn again */
};

/* The event that shows a fault was injected, at its config and iteration. */
static const rre_event_type fault_marker[FAULT_COUNT] = {
    [FAULT_STORM] = RRE_EV_QUALITY_SCORE_UPDATED, /* published right after the echo loop */
    [FAULT_TRAINING_FAILURE] = RRE_EV_TRAINING_FAILED,
    [FAULT_QUALITY_DROP] = RRE_EV_QUALITY_DEGRADED,
    [FAULT_REGRESSION] = RRE_EV_REGRESSION_DETECTED,
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" into Unix seconds; 0 on failure. */
static double parse_timestamp(const char *s)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return 0;
    double frac = 0;
    if (*rest == '.') {
        double scale = 0.1;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, scale /= 10)
            frac += (*rest - '0') * scale;
    }
    return (double)timegm(&tm) + frac;
}

static int config_of(const struct driver *d, const json_t *payload)
{
    const char *key = json_string_value(json_object_get(payload, "config_key"));
    for (size_t i = 0; key != NULL && i < d->cfg.config_count; i++)
        if (strcmp(d->cfg.configs[i], key) == 0)
            return (int)i;
    return -1;
}

static void draw(struct driver *d)
{
    if (d->quiet || !d->tty || d->frozen)
        return;
    if (d->drawn)
        printf("\033[%zuA", d->cfg.config_count);
    for (size_t i = 0; i < d->cfg.config_count; i++) {
        const struct config_progress *p = &d->progress[i];
        printf("\r\033[K  %-14s iteration %d/%d  %-30s %s\n", d->cfg.configs[i], p->iteration,
               d->cfg.iterations, p->last == RRE_EV_NONE ? "waiting" : rre_event_name(p->last),
               p->outcome);
    }
    fflush(stdout);
    d->drawn = true;
}

static void iteration_ended(struct driver *d, int ci, int iteration, const char *outcome)
{
    struct config_progress *p = &d->progress[ci];
    p->done++;
    if (iteration == p->iteration) /* a late end of an earlier one does not show */
        snprintf(p->outcome, sizeof p->outcome, "%s", outcome);
    if (!d->quiet && !d->tty)
        printf("  %s iteration %d/%d: %s\n", d->cfg.configs[ci], iteration, d->cfg.iterations,
               outcome);
}

static int driver_handler(const rre_event *ev, void *user_data)
{
    struct driver *d = user_data;
    double now = now_seconds();
    if (!demo_is_own_event(ev->payload, d->cfg.run_id))
        return 0; /* not this run's: the database has other producers */
    pthread_mutex_lock(&d->mu);
    d->events++;
    d->by_type[ev->type]++;
    if (ev->origin != RRE_ORIGIN_LOCAL) {
        double sent = parse_timestamp(ev->timestamp);
        bool remote = ev->origin == RRE_ORIGIN_HOST;
        double **list = remote ? &d->host_latency_ms : &d->latency_ms;
        size_t *count = remote ? &d->host_latency_count : &d->latency_count;
        size_t *cap = remote ? &d->host_latency_cap : &d->latency_cap;
        if (sent > 0) {
            if (*count == *cap) {
                size_t grow = *cap ? *cap * 2 : 1024;
                double *grown = realloc(*list, grow * sizeof *grown);
                if (grown != NULL) {
                    *list = grown;
                    *cap = grow;
                }
            }
            if (*count < *cap)
                (*list)[(*count)++] = (now - sent) * 1000.0;
        }
    }
    rre_flow_feed(d->flow, ev);

    if (ev->type == RRE_EV_COORDINATOR_SHUTDOWN) {
        const char *who = json_string_value(json_object_get(ev->payload, "coordinator_name"));
        json_t *snap = json_object_get(ev->payload, "state_snapshot");
        if (who != NULL && json_is_object(snap))
            json_object_set(d->shutdowns, who, snap);
    }
    int ci = config_of(d, ev->payload);
    if (ci >= 0) {
        struct config_progress *p = &d->progress[ci];
        int iteration = (int)json_integer_value(json_object_get(ev->payload, "iteration"));
        for (int f = 0; f < FAULT_COUNT; f++)
            if (ev->type == fault_marker[f] && d->cfg.fault_iteration[f] == iteration &&
                d->cfg.fault_config[f] == (size_t)ci &&
                (f != FAULT_STORM || d->cfg.storm_repeats > 0)) /* --storm 0: no echo */
                d->injected[f] = true;
        /* The line shows the latest iteration: its stage and, once it ended,
         * how; an earlier iteration's late events do not change it. */
        if (iteration > p->iteration) {
            p->iteration = iteration;
            p->outcome[0] = '\0';
        }
        if (iteration == p->iteration)
            p->last = ev->type;
        char outcome[64];
        switch (ev->type) {
        case RRE_EV_MODEL_DISTRIBUTION_COMPLETE:
            iteration_ended(d, ci, iteration, "promoted and distributed");
            break;
        case RRE_EV_CACHE_INVALIDATED:
            iteration_ended(d, ci, iteration, "regression rolled back");
            break;
        case RRE_EV_TRAINING_FAILED:
            iteration_ended(d, ci, iteration, "training failed");
            break;
        case RRE_EV_SELFPLAY_RATE_CHANGED:
            snprintf(outcome, sizeof outcome, "selfplay rate x%.2f",
                     json_number_value(json_object_get(ev->payload, "new_rate")));
            if (iteration == p->iteration)
                snprintf(p->outcome, sizeof p->outcome, "%s", outcome);
            break;
        default:
            break;
        }
        draw(d);
    }
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static bool all_done(struct driver *d)
{
    pthread_mutex_lock(&d->mu);
    bool done = true;
    for (size_t i = 0; i < d->cfg.config_count; i++)
        if (d->progress[i].done < d->cfg.iterations)
            done = false;
    pthread_mutex_unlock(&d->mu);
    return done;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return sorted[i < n ? i : n - 1];
}

static bool parse_configs(struct demo_config *cfg, const char *list)
{
    char *copy = strdup(list);
    if (copy == NULL)
        return false;
    bool ok = true;
    cfg->config_count = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        rre_config_key key;
        if (rre_config_key_parse(tok, &key) != RRE_OK) {
            fprintf(stderr, "rre: demo: --configs: %s\n", rre_last_error());
            ok = false;
            break;
        }
        for (size_t i = 0; i < cfg->config_count; i++)
            if (strcmp(cfg->configs[i], tok) == 0) {
                fprintf(stderr, "rre: demo: --configs: %s given twice\n", tok);
                ok = false;
            }
        if (!ok)
            break;
        if (cfg->config_count == DEMO_MAX_CONFIGS) {
            fprintf(stderr, "rre: demo: --configs: at most %d configs\n", DEMO_MAX_CONFIGS);
            ok = false;
            break;
        }
        snprintf(cfg->configs[cfg->config_count++], RRE_CONFIG_KEY_MAX, "%s", tok);
    }
    free(copy);
    return ok && cfg->config_count > 0;
}

/* Faults go to the (iteration, config) slots in iteration-major order: the
 * storm at the first slot, a training failure at the second, a quality drop
 * at the third, and a regression at the first slot of iteration 2 or later
 * that has no training failure (a regression needs an earlier model). With
 * too few slots some faults are not injected; the summary says which. */
static void schedule_faults(struct demo_config *cfg)
{
    size_t slots = cfg->config_count * (size_t)cfg->iterations;
    enum demo_fault order[] = {FAULT_STORM, FAULT_TRAINING_FAILURE, FAULT_QUALITY_DROP};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (i < slots) {
            cfg->fault_config[order[i]] = i % cfg->config_count;
            cfg->fault_iteration[order[i]] = (int)(i / cfg->config_count) + 1;
        }
    }
    for (size_t s = cfg->config_count; s < slots; s++) {
        size_t ci = s % cfg->config_count;
        int it = (int)(s / cfg->config_count) + 1;
        if (cfg->fault_iteration[FAULT_TRAINING_FAILURE] == it &&
            cfg->fault_config[FAULT_TRAINING_FAILURE] == ci)
            continue;
        /* The config must have had a model before: its iteration 1 did not fail. */
        cfg->fault_config[FAULT_REGRESSION] = ci;
        cfg->fault_iteration[FAULT_REGRESSION] = it;
        break;
    }
}

/* Parses a whole decimal integer in [min, max]: digits only (strtol alone
 * would take "" as 0, and leading blanks or a sign). */
static bool parse_count(const char *text, long min, long max, long *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max)
        return false;
    *out = v;
    return true;
}

void cmd_demo_help(FILE *out)
{
    fprintf(out,
            "usage: rre demo [--configs LIST] [--iterations N] [--db PATH] [--timeout SECONDS]\n"
            "                [--storm N] [--pace MS] [--quiet] [--keep] [--hosts N [--nats URL]]\n"
            "\n"
            "Runs the training pipeline of the event catalog with one process per\n"
            "coordinator (selfplay, sync, export, training, evaluation, promotion,\n"
            "distribution, quality monitor, regression/rollback manager), talking only\n"
            "through events on the SQLite queue, and injects a dedup storm, a training\n"
            "failure, a quality drop and a regression. Prints a summary and the flow\n"
            "checker's verdict; exits 0 only when the whole run is clean. Ctrl-C (or\n"
            "SIGTERM) stops it early: the summary says interrupted, and the exit status is\n"
            "128 + the signal's number (130).\n"
            "\n"
            "  --configs LIST     comma-separated config keys (default %s)\n"
            "  --iterations N     pipeline iterations per config, 1..100 (default %d)\n"
            "  --db PATH          the queue database (default: a fresh temporary one);\n"
            "                     its other events and earlier runs are left alone\n"
            "  --timeout SECONDS  give up after this long (default 120)\n"
            "  --storm N          events the echo loop re-emits (default 50)\n"
            "  --pace MS          time each coordinator spends on a stage (default 40)\n"
            "  --quiet            print only the summary\n"
            "  --keep             keep the temporary database(s) and print the commands\n"
            "                     to look at them\n"
            "  --hosts N          spread the coordinators over N simulated hosts, 2..%d (training\n"
            "                     and the rest on one, selfplay and sync on the others), each\n"
            "                     with its own queue and a bridge to a NATS JetStream stream\n"
            "  --nats URL         the NATS server for --hosts (default: a private nats-server\n"
            "                     on a free loopback port, stopped at the end)\n",
            DEFAULT_CONFIGS, DEFAULT_ITERATIONS, DEMO_MAX_HOSTS);
}

/* One coordinator process: its role and the host it runs on. */
struct coordinator {
    enum demo_role role;
    int host;
};

#define MAX_COORDINATORS (ROLE_COUNT + 2 * DEMO_MAX_HOSTS)

/* Where the coordinators run: all on one host, or selfplay and sync on each
 * host but the first, and the rest on the first. */
static size_t place_coordinators(int hosts, struct coordinator *out)
{
    size_t n = 0;
    for (int r = 0; r < ROLE_COUNT; r++) {
        bool per_node = hosts > 1 && (r == ROLE_SELFPLAY || r == ROLE_SYNC);
        for (int h = per_node ? 1 : 0; h < (per_node ? hosts : 1); h++)
            out[n++] = (struct coordinator){(enum demo_role)r, h};
    }
    return n;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* True when one of `signals` (blocked) is waiting to be taken. */
static bool signal_pending(const sigset_t *signals)
{
    sigset_t pending;
    if (signals == NULL || sigpending(&pending) != 0)
        return false;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(signals, sig) == 1 && sigismember(&pending, sig) == 1)
            return true;
    return false;
}

/* Reaps the coordinators, killing those still running after `grace` seconds,
 * or at once when one of `hurry` (blocked signals, may be NULL) arrives. A
 * reaped entry of `pids` becomes -(exit code) - 1. */
static void stop_children(pid_t *pids, size_t n, double grace, const sigset_t *hurry)
{
    double deadline = now_seconds() + grace;
    size_t alive = n;
    while (alive > 0) {
        alive = 0;
        if (signal_pending(hurry))
            deadline = 0;
        for (size_t i = 0; i < n; i++) {
            if (pids[i] <= 0)
                continue;
            int status;
            pid_t r = waitpid(pids[i], &status, WNOHANG);
            if (r == pids[i]) {
                pids[i] = -(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) - 1;
            } else {
                alive++;
                if (now_seconds() > deadline)
                    kill(pids[i], SIGKILL);
            }
        }
        if (alive > 0) {
            struct timespec pause = {0, 2 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

int cmd_demo(const struct cli_globals *g, int argc, char **argv)
{
    /* The demo writes its own events: only a --db given to it says where;
     * RRE_DB (meant for the shared queue) does not. */
    const char *configs = DEFAULT_CONFIGS, *db = g->db_from_env ? NULL : g->db_path,
               *nats_url = NULL;
    long iterations = DEFAULT_ITERATIONS, storm = 50, pace = 40, hosts = 1;
    double timeout = 120;
    bool quiet = false, keep = false;
    /* --db is not one of the options here: the tool takes it wherever it
     * is, as the global option (main.c), which refuses an empty PATH. */
    enum {
        O_QUIET,
        O_KEEP,
        O_CONFIGS,
        O_ITERATIONS,
        O_STORM,
        O_PACE,
        O_HOSTS,
        O_NATS,
        O_TIMEOUT,
    };
    static const struct cli_option opts[] = {
        [O_QUIET] = {"quiet", 0, false, false},    [O_KEEP] = {"keep", 0, false, false},
        [O_CONFIGS] = {"configs", 0, true, false}, [O_ITERATIONS] = {"iterations", 0, true, false},
        [O_STORM] = {"storm", 0, true, false},     [O_PACE] = {"pace", 0, true, false},
        [O_HOSTS] = {"hosts", 0, true, false},     [O_NATS] = {"nats", 0, true, false},
        [O_TIMEOUT] = {"timeout", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "demo", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *v;
    while ((o = cli_getopt_next(&p, argc, argv, &v)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_demo_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_KEEP:
            keep = true;
            break;
        case O_QUIET:
            quiet = true;
            break;
        case O_CONFIGS:
            configs = v;
            break;
        case O_ITERATIONS:
            if (!parse_count(v, 1, 100, &iterations))
                return cli_usage_error("demo: --iterations must be 1..100, not '%s'", v);
            break;
        case O_STORM:
            if (!parse_count(v, 0, 100000, &storm))
                return cli_usage_error("demo: --storm must be 0..100000, not '%s'", v);
            break;
        case O_PACE:
            if (!parse_count(v, 0, 10000, &pace))
                return cli_usage_error("demo: --pace must be 0..10000 ms, not '%s'", v);
            break;
        case O_HOSTS:
            if (!parse_count(v, 2, DEMO_MAX_HOSTS, &hosts))
                return cli_usage_error("demo: --hosts must be 2..%d, not '%s'", DEMO_MAX_HOSTS, v);
            break;
        case O_NATS:
            if (v[0] == '\0')
                return cli_usage_error("demo: --nats needs a URL");
            nats_url = v;
            break;
        case O_TIMEOUT:
            if (!cli_parse_duration(v, &timeout) || !(timeout > 0))
                return cli_usage_error("demo: --timeout must be a positive number, not '%s'", v);
            break;
        }
    }
    if (p.first_operand < argc)
        return cli_usage_error("demo: unexpected argument '%s'", argv[p.first_operand]);

    if (nats_url != NULL && hosts < 2)
        return cli_usage_error("demo: --nats goes with --hosts N");
    if (hosts > 1 && db != NULL)
        return cli_usage_error("demo: --hosts makes a queue per host in a temporary directory; "
                               "it does not take --db");

    struct driver *d = calloc(1, sizeof *d);
    struct demo_hosts *hs = calloc(1, sizeof *hs);
    struct demo_config *host_cfg = calloc(DEMO_MAX_HOSTS, sizeof *host_cfg);
    if (d == NULL || hs == NULL || host_cfg == NULL) {
        free(d);
        free(hs);
        free(host_cfg);
        return cli_fail("demo: out of memory");
    }
    hs->count = hosts > 1 ? (int)hosts : 0;
    struct coordinator coords[MAX_COORDINATORS];
    size_t ncoord = place_coordinators((int)hosts, coords);
    d->quiet = quiet;
    d->tty = isatty(STDOUT_FILENO);
    d->cfg.iterations = (int)iterations;
    d->cfg.storm_repeats = (int)storm;
    d->cfg.pace_ms = (int)pace;
    if (!parse_configs(&d->cfg, configs)) {
        free(d);
        free(hs);
        free(host_cfg);
        return cli_usage_error("demo: --configs needs config keys such as hex8_2p,square8_4p");
    }
    for (size_t i = 0; i < d->cfg.config_count; i++)
        d->cfg.owns[i] = true;
    schedule_faults(&d->cfg);
    for (size_t i = 0; i < DEMO_MAX_CONFIGS; i++)
        d->progress[i].last = RRE_EV_NONE;

    /* From here on the stop signals wait for the loop below (see the top of
     * this file), so nothing is left behind whenever they come. */
    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);

    char tmpdir[256] = "";
    if (hs->count > 0 || db == NULL) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/rre-demo-XXXXXX", base && *base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            int err = errno;
            free(d);
            free(hs);
            free(host_cfg);
            pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
            return cli_fail("demo: cannot make a temporary directory: %s", strerror(err));
        }
        snprintf(d->cfg.db_path, sizeof d->cfg.db_path, "%s/events.db", tmpdir);
        if (hs->count > 0) {
            snprintf(hs->root, sizeof hs->root, "%s", tmpdir);
            snprintf(d->cfg.db_path, sizeof d->cfg.db_path, "%s/%s/events.db", tmpdir,
                     demo_host_name(0));
        }
    } else {
        snprintf(d->cfg.db_path, sizeof d->cfg.db_path, "%s", db);
    }
    pthread_mutex_init(&d->mu, NULL);
    d->cfg.driver_pid = getpid();
    struct timespec run_clock;
    clock_gettime(CLOCK_REALTIME, &run_clock);
    snprintf(d->cfg.run_id, sizeof d->cfg.run_id, "%lld.%09ld-%ld", (long long)run_clock.tv_sec,
             run_clock.tv_nsec, (long)d->cfg.driver_pid);

    int rc = CLI_FAIL;
    pid_t pids[MAX_COORDINATORS] = {0};
    rre_queue *queue = NULL;
    bool queue_is_hosts = false; /* the first host's queue, closed with the hosts */
    rre_router *router = NULL;
    rre_link *link = NULL;
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = d->cfg.db_path;
    qo.default_source = DEMO_DRIVER_NAME;

    /* The hosts' directories and, without --nats, a private nats-server,
     * forked before any thread exists. Each coordinator gets the settings of
     * its host. */
    if (hs->count > 0 && demo_hosts_prepare(hs, nats_url) != CLI_OK)
        goto out;
    for (int h = 0; h < hs->count; h++) {
        host_cfg[h] = d->cfg;
        snprintf(host_cfg[h].db_path, sizeof host_cfg[h].db_path, "%s", hs->host[h].db);
        snprintf(host_cfg[h].hostname, sizeof host_cfg[h].hostname, "%s", hs->host[h].name);
        for (size_t ci = 0; ci < d->cfg.config_count; ci++)
            host_cfg[h].owns[ci] = h > 0 && (int)(ci % (size_t)(hs->count - 1)) == h - 1;
        if (h == 0)
            snprintf(d->cfg.hostname, sizeof d->cfg.hostname, "%s", hs->host[0].name);
    }

    /* Create the databases and learn where this run starts, then close them:
     * the coordinators are forked with no connection and no thread open. */
    rre_status st = RRE_OK;
    for (int h = 1; h < hs->count && st == RRE_OK; h++) {
        rre_queue_options ho = qo;
        ho.path = hs->host[h].db;
        st = rre_queue_create(&queue, &ho);
        rre_queue_destroy(queue);
        queue = NULL;
    }
    if (st == RRE_OK)
        st = rre_queue_create(&queue, &qo);
    if (st == RRE_OK) {
        json_t *stats = NULL;
        st = rre_queue_stats(queue, &stats);
        if (st == RRE_OK)
            d->cfg.start_id = json_integer_value(json_object_get(stats, "last_event_id"));
        json_decref(stats);
    }
    rre_queue_destroy(queue);
    queue = NULL;
    if (st != RRE_OK) {
        cli_fail_status("demo: the queue database", st);
        goto out;
    }

    if (!quiet) {
        if (hs->count > 0)
            printf("rre demo: %zu configs x %d iterations, %zu coordinator processes on %d hosts, "
                   "NATS %s\n",
                   d->cfg.config_count, d->cfg.iterations, ncoord, hs->count, hs->servers);
        else if (tmpdir[0] == '\0' || keep)
            printf("rre demo: %zu configs x %d iterations, %zu coordinator processes, queue %s\n",
                   d->cfg.config_count, d->cfg.iterations, ncoord, d->cfg.db_path);
        else /* a path about to disappear is not worth showing */
            printf("rre demo: %zu configs x %d iterations, %zu coordinator processes, a "
                   "temporary queue (--keep keeps it)\n",
                   d->cfg.config_count, d->cfg.iterations, ncoord);
        for (int f = 0; f < FAULT_COUNT; f++)
            if (d->cfg.fault_iteration[f] > 0)
                printf("  fault: %-17s at %s iteration %d\n", demo_fault_name((enum demo_fault)f),
                       d->cfg.configs[d->cfg.fault_config[f]], d->cfg.fault_iteration[f]);
        fflush(stdout);
    }

    double started = now_seconds();
    for (size_t i = 0; i < ncoord; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            cli_fail("demo: fork: %s", strerror(errno));
            goto out;
        }
        if (pid == 0) {
            signal(SIGINT, SIG_IGN);
            pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
            _exit(
                demo_run_role(coords[i].role, hs->count > 0 ? &host_cfg[coords[i].host] : &d->cfg));
        }
        pids[i] = pid;
    }

    /* The bridges carry what each host publishes from the run's start on,
     * also what the coordinators published before every bridge was ready. */
    if (hs->count > 0 && demo_hosts_start_bridges(hs, run_clock.tv_sec - 1.0) != CLI_OK)
        goto out;
    st = rre_flow_checker_create(&d->flow, NULL);
    d->shutdowns = json_object();
    rre_router_options *ro = NULL;
    if (st == RRE_OK)
        st = rre_router_options_create(&ro);
    if (st == RRE_OK)
        st = rre_router_options_set_source(ro, DEMO_DRIVER_NAME);
    if (st == RRE_OK)
        st = rre_router_create(&router, ro);
    rre_router_options_destroy(ro);
    if (st == RRE_OK && hs->count > 0) {
        queue = hs->host[0].queue;
        queue_is_hosts = true;
    } else if (st == RRE_OK) {
        st = rre_queue_create(&queue, &qo);
    }
    if (st == RRE_OK)
        st = rre_router_subscribe_all(router, "demo-monitor", driver_handler, d, NULL);
    if (st == RRE_OK) {
        rre_link_options lo = {0};
        lo.flags = RRE_LINK_SINCE_ID;
        lo.since_id = d->cfg.start_id;
        st = rre_link_create(&link, router, queue, &lo);
    }
    if (st != RRE_OK) {
        cli_fail_status("demo", st);
        goto out;
    }

    bool finished = false;
    int interrupted = 0;
    while (now_seconds() - started < timeout) {
        if (all_done(d)) {
            finished = true;
            break;
        }
        bool child_died = false;
        for (size_t i = 0; i < ncoord; i++) {
            int status;
            if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                fprintf(stderr, "rre demo: the %s coordinator exited early (status %d)\n",
                        demo_role_name(coords[i].role), code);
                pids[i] = -code - 1;
                child_died = true;
            }
        }
        if (child_died)
            break;
        struct timespec pause = {0, 5 * 1000 * 1000};
        interrupted = sigtimedwait(&stop_signals, NULL, &pause);
        if (interrupted > 0)
            break;
        interrupted = 0;
    }
    /* The live lines end here, in their last state (an interrupted
     * config's marked so), drawn once more over the ^C the terminal echoed
     * below them; events still coming during the shutdown do not move them,
     * so no half-drawn line is left among what follows. */
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; interrupted > 0 && i < d->cfg.config_count; i++)
        if (d->progress[i].done < d->cfg.iterations)
            snprintf(d->progress[i].outcome, sizeof d->progress[i].outcome, "interrupted");
    if (d->drawn && interrupted > 0) { /* nothing else was written below the lines */
        printf("\r\033[K");
        draw(d);
    }
    d->frozen = true;
    pthread_mutex_unlock(&d->mu);
    if (interrupted > 0)
        fprintf(stderr, "rre demo: interrupted by %s; stopping the coordinators\n",
                strsignal(interrupted));
    else if (!finished)
        fprintf(stderr,
                "rre demo: the pipeline did not finish (timeout %.0f s or a coordinator "
                "failed)\n",
                timeout);

    rre_publish_result res;
    json_t *bye = json_pack("{s:s, s:s, s:i, s:s}", "coordinator_name", DEMO_DRIVER_NAME, "reason",
                            finished ? "graceful" : "error", "remaining_tasks", 0, DEMO_RUN_FIELD,
                            d->cfg.run_id);
    st = rre_router_publish_type(router, RRE_EV_COORDINATOR_SHUTDOWN, bye, NULL, &res);
    json_decref(bye);
    if (st != RRE_OK)
        cli_fail_status("demo: publishing the shutdown", st);
    stop_children(pids, ncoord, finished ? 10.0 : 2.0, &stop_signals);
    rre_link_sync(link, 5000);
    /* The other hosts' coordinators report through their bridges. */
    for (double until = now_seconds() + 10.0; hs->count > 0 && now_seconds() < until;) {
        pthread_mutex_lock(&d->mu);
        size_t reported = json_object_size(d->shutdowns);
        pthread_mutex_unlock(&d->mu);
        if (reported >= ncoord || signal_pending(&stop_signals))
            break;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        rre_link_sync(link, 1000);
    }
    /* A stop signal during the shutdown (which it cut short) still makes
     * the run an interrupted one. */
    if (interrupted == 0) {
        struct timespec zero = {0, 0};
        int late = sigtimedwait(&stop_signals, NULL, &zero);
        if (late > 0) {
            interrupted = late;
            fprintf(stderr, "rre demo: interrupted by %s during the shutdown\n", strsignal(late));
        }
    }
    double elapsed = now_seconds() - started;

    rre_link_destroy(link);
    link = NULL;
    rre_flow_finish(d->flow, now_seconds());

    /* The summary. */
    bool ok = finished;
    for (size_t i = 0; i < ncoord; i++) {
        int code = pids[i] < 0 ? -pids[i] - 1 : -1;
        if (code != 0) {
            fprintf(stderr, "rre demo: the %s coordinator%s%s %s (status %d)\n",
                    demo_role_name(coords[i].role), hs->count > 0 ? " on " : "",
                    hs->count > 0 ? hs->host[coords[i].host].name : "",
                    code < 0 ? "did not exit" : "reported failures", code);
            ok = false;
        }
    }
    uint64_t duplicates = 0, failures = 0, violations = 0, received = 0;
    const char *name;
    json_t *snap;
    json_object_foreach(d->shutdowns, name, snap)
    {
        duplicates += (uint64_t)json_integer_value(json_object_get(snap, "duplicates_prevented"));
        failures += (uint64_t)json_integer_value(json_object_get(snap, "handler_failures"));
        violations += (uint64_t)json_integer_value(json_object_get(snap, "schema_violations"));
        received += (uint64_t)json_integer_value(json_object_get(snap, "events_received"));
    }
    rre_router_stats *rs = malloc(sizeof *rs);
    if (rs != NULL && rre_router_get_stats(router, rs) == RRE_OK) {
        duplicates += rs->duplicates_prevented;
        failures += rs->handler_failures;
    }
    free(rs);
    if (json_object_size(d->shutdowns) != ncoord) {
        fprintf(stderr, "rre demo: %zu of %zu coordinators reported at shutdown\n",
                json_object_size(d->shutdowns), ncoord);
        ok = false;
    }

    qsort(d->latency_ms, d->latency_count, sizeof *d->latency_ms, compare_double);
    if (interrupted > 0)
        printf("\nsummary (interrupted by %s after %.2f s)\n", strsignal(interrupted), elapsed);
    else
        printf("\nsummary (%.2f s)\n", elapsed);
    printf("  events by type (%llu in all):\n", (unsigned long long)d->events);
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++)
        if (d->by_type[t] > 0)
            printf("    %-34s %6llu\n", rre_event_name((rre_event_type)t),
                   (unsigned long long)d->by_type[t]);
    printf("  cross-process latency: p50 %.3f ms, p99 %.3f ms (%zu events)\n",
           percentile(d->latency_ms, d->latency_count, 0.50),
           percentile(d->latency_ms, d->latency_count, 0.99), d->latency_count);
    if (hs->count > 0) {
        qsort(d->host_latency_ms, d->host_latency_count, sizeof *d->host_latency_ms,
              compare_double);
        printf("  cross-host latency: p50 %.3f ms, p99 %.3f ms (%zu events)\n",
               percentile(d->host_latency_ms, d->host_latency_count, 0.50),
               percentile(d->host_latency_ms, d->host_latency_count, 0.99), d->host_latency_count);
        demo_hosts_print_summary(hs, d->cfg.run_id);
        for (int h = 0; h < hs->count; h++) {
            rre_bridge_counters bc;
            rre_bridge_get_counters(hs->host[h].bridge, &bc);
            if (bc.in_refused > 0)
                ok = false;
        }
    }
    printf("  events received by coordinators: %llu\n", (unsigned long long)received);
    printf("  duplicates prevented: %llu\n", (unsigned long long)duplicates);
    printf("  handler failures: %llu\n", (unsigned long long)failures);
    printf("  schema violations: %llu\n", (unsigned long long)violations);
    /* Only what happened counts as injected; the others are said apart. */
    pthread_mutex_lock(&d->mu);
    bool injected[FAULT_COUNT];
    memcpy(injected, d->injected, sizeof injected);
    pthread_mutex_unlock(&d->mu);
    int n = 0;
    printf("  faults injected:");
    for (int f = 0; f < FAULT_COUNT; f++)
        if (injected[f])
            printf("%s %s", n++ ? "," : "", demo_fault_name((enum demo_fault)f));
    printf("%s\n", n == 0 ? " none" : "");
    if (n < FAULT_COUNT) {
        n = 0;
        printf("  faults not injected:");
        for (int f = 0; f < FAULT_COUNT; f++)
            if (!injected[f])
                printf("%s %s (%s)", n++ ? "," : "", demo_fault_name((enum demo_fault)f),
                       d->cfg.fault_iteration[f] == 0 ? "not scheduled: too few iterations"
                       : finished                     ? "its event never came"
                                                      : "the run ended before it");
        printf("\n");
    }
    for (int f = 0; f < FAULT_COUNT; f++)
        if (finished && d->cfg.fault_iteration[f] > 0 && !injected[f])
            ok = false; /* scheduled, and the whole run went by without it */
    if (injected[FAULT_STORM] && storm > 0 && duplicates < (uint64_t)storm) {
        fprintf(stderr, "rre demo: the storm of %ld repeats was not absorbed by dedup\n", storm);
        ok = false;
    }
    if (failures > 0 || violations > 0)
        ok = false;

    rre_flow_stats fs;
    rre_flow_get_stats(d->flow, &fs);
    bool clean = rre_flow_clean(d->flow);
    printf("  flow check: %s (%llu events, %llu violations, %llu stalls)\n",
           clean ? "clean" : "NOT CLEAN", (unsigned long long)fs.events,
           (unsigned long long)fs.violations, (unsigned long long)fs.stalls);
    for (size_t i = 0; i < rre_flow_issue_count(d->flow) && i < 20; i++) {
        const rre_flow_issue *is = rre_flow_issue_get(d->flow, i);
        printf("    %s: %s\n", rre_flow_rule_name(is->rule), is->message);
    }
    if (!clean)
        ok = false;
    if (interrupted > 0) {
        /* As a shell reports a command a signal ended: 128 + its number. */
        printf("  verdict: INTERRUPTED\n");
        rc = 128 + interrupted;
    } else {
        printf("  verdict: %s\n", ok ? "OK" : "FAILED");
        rc = ok ? CLI_OK : CLI_FAIL;
    }
out:
    for (size_t i = 0; i < ncoord; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    stop_children(pids, ncoord, 0, NULL);
    /* With --keep, whatever way the run ended, its files stay. */
    if (keep && tmpdir[0] != '\0') {
        const char *db0 = hs->count > 0 ? hs->host[0].db : d->cfg.db_path;
        printf("\nkept the run's files in %s; to look at them:\n"
               "  rre --db %s tail --format text\n"
               "  rre --db %s stats\n"
               "  rre --db %s flow check\n",
               tmpdir, db0, db0, db0);
        if (hs->count > 0)
            printf("(the other hosts' queues: %s/<host>/events.db)\n", tmpdir);
        tmpdir[0] = '\0'; /* nothing is removed */
    }
    rre_link_destroy(link);
    rre_router_destroy(router);
    if (!queue_is_hosts)
        rre_queue_destroy(queue);
    demo_hosts_destroy(hs);
    rre_flow_checker_destroy(d->flow);
    json_decref(d->shutdowns);
    free(d->latency_ms);
    free(d->host_latency_ms);
    pthread_mutex_destroy(&d->mu);
    free(d);
    free(host_cfg);
    if (hs->count > 0 && tmpdir[0] != '\0') {
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        tmpdir[0] = '\0';
    }
    free(hs);
    if (tmpdir[0] != '\0') {
        char path[300];
        const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
            snprintf(path, sizeof path, "%s/events.db%s", tmpdir, suffixes[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    /* A stop signal that came after the loop has nothing left to stop. */
    struct timespec now = {0, 0};
    while (sigtimedwait(&stop_signals, NULL, &now) > 0)
        continue;
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return rc;
}
