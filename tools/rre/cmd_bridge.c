/*
 * cmd_bridge.c - `rre bridge`: this host's bridge between its durable queue
 * and a NATS JetStream stream (docs/BRIDGE.md). Runs until SIGINT or
 * SIGTERM (exit 0); exit 1 on a fatal error (refused credentials, a stream
 * whose settings conflict, another bridge on this queue), 2 on wrong usage.
 * Once its consumer exists it prints a ready line on standard error; the
 * library's log goes there too, one line per message.
 */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmd_bridge_help(FILE *out)
{
    fputs("usage: rre [--db PATH] bridge --nats URL[,URL...] [--stream NAME] [--replicas N]\n"
          "           [--max-age DURATION] [--dedup-window DURATION] [--host NAME]\n"
          "           [--user U --password P | --creds FILE]\n"
          "           [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]\n"
          "           [--replay-from all|DURATION] [--metrics-listen ADDR:PORT] [--verbose]\n"
          "\n"
          "Carries this host's events to the JetStream stream and the other hosts' events\n"
          "into this host's queue, until SIGINT or SIGTERM.\n"
          "\n"
          "  --nats URL[,URL...]      the NATS servers (nats://host:4222, tls://... for TLS)\n"
          "  --stream NAME            the stream (default RRE_EVENTS; created when missing)\n"
          "  --replicas N             stream replicas when creating it (default 1)\n"
          "  --max-age DURATION       how long the stream keeps events (default 7d)\n"
          "  --dedup-window DURATION  the stream's duplicate window (default: the queue's, 1h)\n"
          "  --host NAME              this host's name (default: the system host name); the\n"
          "                           queue writes it too, so give the same to every process\n"
          "  --user U --password P    user and password authentication\n"
          "  --creds FILE             a NATS credentials file\n"
          "  --tls-ca FILE            CA certificates to verify the server (enables TLS)\n"
          "  --tls-cert FILE --tls-key FILE   a client certificate\n"
          "  --replay-from all|DURATION       on this host's first start, import the events the\n"
          "                           stream holds (all) or received in the last DURATION,\n"
          "                           instead of only new ones\n"
          "  --metrics-listen ADDR:PORT   serve Prometheus metrics at http://ADDR:PORT/metrics\n"
          "                           (the bridge's counters and the queue's figures)\n"
          "  --verbose                log state changes and informational messages too\n"
          "\n"
          "An existing stream is used as it is; a setting given here that differs from it is\n"
          "an error. DURATION: a number with an optional unit s, m, h or d.\n",
          out);
}

static void log_to_stderr(rre_log_level level, const char *component, const char *message,
                          void *user_data)
{
    (void)user_data;
    fprintf(stderr, "rre bridge: %s: %s: %s\n", rre_log_level_name(level), component, message);
}

struct metrics_ctx {
    rre_bridge *bridge;
    rre_queue *queue;
};

static void counter(FILE *out, const char *name, const char *help, uint64_t v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

/* One scrape: the bridge's counters and state, then the queue's figures. */
static void write_metrics(FILE *out, void *user_data)
{
    struct metrics_ctx *m = user_data;
    /* The latency first: the bridge counts an import before it records the
     * import's latency, so read in this order a scrape never shows a latency
     * observation whose import it does not count. */
    rre_bridge_latency lat;
    rre_bridge_get_latency(m->bridge, &lat);
    rre_bridge_counters c;
    rre_bridge_get_counters(m->bridge, &c);
    fputs("# HELP rre_bridge_messages_out_total Rows of this host the stream confirmed, by "
          "result.\n# TYPE rre_bridge_messages_out_total counter\n",
          out);
    fprintf(out, "rre_bridge_messages_out_total{result=\"published\"} %llu\n",
            (unsigned long long)c.out_published);
    fprintf(out, "rre_bridge_messages_out_total{result=\"duplicate\"} %llu\n",
            (unsigned long long)c.out_duplicates);
    counter(out, "rre_bridge_publish_failures_total",
            "Publishes that failed or timed out (then retried).", c.out_failures);
    counter(out, "rre_bridge_rows_passed_total", "Rows of other hosts passed over (loop guard).",
            c.out_passed);
    counter(out, "rre_bridge_messages_in_total", "Messages received from the stream.",
            c.in_messages);
    fputs("# HELP rre_bridge_messages_in_handled_total Messages from the stream, by what became "
          "of them.\n# TYPE rre_bridge_messages_in_handled_total counter\n",
          out);
    const struct {
        const char *result;
        uint64_t v;
    } in[] = {{"imported", c.in_imported},
              {"duplicate", c.in_duplicates},
              {"own", c.in_own},
              {"refused", c.in_refused},
              {"redelivered", c.in_redelivered}};
    for (size_t i = 0; i < CLI_ARRAY_LEN(in); i++)
        fprintf(out, "rre_bridge_messages_in_handled_total{result=\"%s\"} %llu\n", in[i].result,
                (unsigned long long)in[i].v);
    counter(out, "rre_bridge_consumer_resets_total",
            "Times the consumer was made again to keep stream order.", c.in_consumer_resets);
    counter(out, "rre_bridge_reconnects_total", "NATS reconnections.", c.reconnects);
    counter(out, "rre_bridge_backoffs_total", "Times the bridge backed off after a failure.",
            c.backoffs);
    fprintf(out,
            "# HELP rre_bridge_connected 1 when the NATS connection is up.\n"
            "# TYPE rre_bridge_connected gauge\nrre_bridge_connected %d\n",
            c.connected ? 1 : 0);
    fputs("# HELP rre_bridge_state The bridge's state (1 for the current one).\n"
          "# TYPE rre_bridge_state gauge\n",
          out);
    for (int s = RRE_BRIDGE_CONNECTING; s <= RRE_BRIDGE_FAILED; s++)
        fprintf(out, "rre_bridge_state{state=\"%s\"} %d\n",
                rre_bridge_state_name((rre_bridge_state)s), c.state == (rre_bridge_state)s);
    fprintf(out,
            "# HELP rre_bridge_stream_sequence The last stream sequence stored or passed.\n"
            "# TYPE rre_bridge_stream_sequence gauge\nrre_bridge_stream_sequence %llu\n",
            (unsigned long long)c.in_stream_seq);
    const double *bounds = rre_bridge_latency_bounds();
    fputs("# HELP rre_bridge_cross_host_latency_seconds From an imported event's own time on "
          "its host to its commit here (clocks of two hosts differ).\n"
          "# TYPE rre_bridge_cross_host_latency_seconds histogram\n",
          out);
    for (int i = 0; i < RRE_BRIDGE_LATENCY_BUCKETS; i++)
        fprintf(out, "rre_bridge_cross_host_latency_seconds_bucket{le=\"%g\"} %llu\n", bounds[i],
                (unsigned long long)lat.buckets[i]);
    fprintf(out,
            "rre_bridge_cross_host_latency_seconds_bucket{le=\"+Inf\"} %llu\n"
            "rre_bridge_cross_host_latency_seconds_sum %.6f\n"
            "rre_bridge_cross_host_latency_seconds_count %llu\n",
            (unsigned long long)lat.count, lat.sum_seconds, (unsigned long long)lat.count);
    json_t *s = NULL;
    if (rre_queue_stats(m->queue, &s) == RRE_OK)
        cli_stats_prometheus(out, s);
    json_decref(s);
}

struct ready_watch {
    rre_bridge *bridge;
    const char *servers;
};

static void *watch_ready(void *arg)
{
    struct ready_watch *w = arg;
    if (rre_bridge_wait_ready(w->bridge, -1) == RRE_OK) {
        fprintf(stderr, "rre bridge: ready: consumer '%s' on %s\n",
                rre_bridge_consumer_name(w->bridge), w->servers);
        fflush(stderr);
    }
    return NULL;
}

struct signal_watch {
    rre_bridge *bridge;
    sigset_t set;
};

static void *watch_signals(void *arg)
{
    struct signal_watch *w = arg;
    int sig = 0;
    sigwait(&w->set, &sig);
    rre_bridge_stop(w->bridge);
    return NULL;
}

int cmd_bridge(const struct cli_globals *g, int argc, char **argv)
{
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    const char *replay = NULL;
    bool verbose = false;
    /* The valued options, in the order of values[]; then --verbose. */
    static const struct cli_option opts[] = {
        {"nats", 0, true, false},         {"stream", 0, true, false},
        {"replicas", 0, true, false},     {"max-age", 0, true, false},
        {"dedup-window", 0, true, false}, {"host", 0, true, false},
        {"user", 0, true, false},         {"password", 0, true, false},
        {"creds", 0, true, false},        {"tls-ca", 0, true, false},
        {"tls-cert", 0, true, false},     {"tls-key", 0, true, false},
        {"replay-from", 0, true, false},  {"metrics-listen", 0, true, false},
        {"verbose", 0, false, false},
    };
    enum { O_VERBOSE = CLI_ARRAY_LEN(opts) - 1 };
    const char *values[CLI_ARRAY_LEN(opts)] = {0};
    struct cli_getopt p;
    cli_getopt_init(&p, "bridge", opts, CLI_ARRAY_LEN(opts));
    int k;
    const char *v;
    while ((k = cli_getopt_next(&p, argc, argv, &v)) != CLI_OPT_END) {
        if (k == CLI_OPT_HELP) {
            cmd_bridge_help(stdout);
            return CLI_OK;
        }
        if (k == CLI_OPT_USAGE)
            return CLI_USAGE;
        if (k == O_VERBOSE) {
            verbose = true;
            continue;
        }
        if (v[0] == '\0')
            return cli_usage_error("bridge: --%s needs a non-empty value", opts[k].name);
        values[k] = v;
    }
    if (p.first_operand < argc)
        return cli_usage_error("bridge: unexpected argument '%s'", argv[p.first_operand]);
    o.servers = values[0];
    o.stream = values[1];
    o.host = values[5];
    o.user = values[6];
    o.password = values[7];
    o.creds_file = values[8];
    o.tls_ca = values[9];
    o.tls_cert = values[10];
    o.tls_key = values[11];
    replay = values[12];
    const char *metrics_listen = values[13];
    if (metrics_listen != NULL && !cli_metrics_listen_valid(metrics_listen))
        return cli_usage_error("bridge: --metrics-listen takes ADDR:PORT (such as "
                               "127.0.0.1:9464 or :9464), not '%s'",
                               metrics_listen);
    if (o.servers == NULL)
        return cli_usage_error("bridge: --nats URL is required");
    if (values[2] != NULL) {
        char *end;
        long r = strtol(values[2], &end, 10);
        if (*end != '\0' || r < 1 || r > 5 || values[2][0] == '+' || values[2][0] == ' ')
            return cli_usage_error("bridge: --replicas takes a number from 1 to 5, not '%s'",
                                   values[2]);
        o.replicas = (int)r;
    }
    if (values[3] != NULL && (!cli_parse_duration(values[3], &o.max_age_s) || o.max_age_s <= 0))
        return cli_usage_error("bridge: --max-age takes a positive duration such as 7d, not '%s'",
                               values[3]);
    if (values[4] != NULL &&
        (!cli_parse_duration(values[4], &o.dedup_window_s) || o.dedup_window_s <= 0))
        return cli_usage_error("bridge: --dedup-window takes a positive duration such as 1h, "
                               "not '%s'",
                               values[4]);
    if ((o.user == NULL) != (o.password == NULL))
        return cli_usage_error("bridge: --user and --password go together");
    if (o.user != NULL && o.creds_file != NULL)
        return cli_usage_error("bridge: give --user/--password or --creds, not both");
    if ((o.tls_cert == NULL) != (o.tls_key == NULL))
        return cli_usage_error("bridge: --tls-cert and --tls-key go together");
    if (replay != NULL) {
        double ago;
        if (strcmp(replay, "all") == 0) {
            o.start = RRE_BRIDGE_START_ALL;
        } else if (cli_parse_duration(replay, &ago)) {
            o.start = RRE_BRIDGE_START_TIME;
            o.start_time = (double)time(NULL) - ago;
        } else {
            return cli_usage_error("bridge: --replay-from takes 'all' or a duration such as 2h, "
                                   "not '%s'",
                                   replay);
        }
    }

    /* SIGINT and SIGTERM are taken by a thread of their own; every thread
     * started from here on (the queue's, the bridge's, the NATS library's)
     * inherits the mask. */
    struct signal_watch sw = {NULL, {{0}}};
    sigemptyset(&sw.set);
    sigaddset(&sw.set, SIGINT);
    sigaddset(&sw.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sw.set, NULL);
    /* What the library refuses is wrong usage too, and nothing is opened. */
    if (rre_bridge_options_check(&o) != RRE_OK)
        return cli_usage_error("bridge: %s", rre_last_error());
    rre_set_logger(log_to_stderr, NULL, verbose ? RRE_LOG_INFO : RRE_LOG_WARN);
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = g->db_path;
    qo.hostname = o.host;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &qo);
    if (st != RRE_OK)
        return cli_fail_status("bridge: opening the queue", st);
    rre_bridge *b = NULL;
    st = rre_bridge_create(&b, q, &o);
    if (st != RRE_OK) {
        rre_queue_destroy(q);
        return cli_fail_status("bridge", st);
    }

    struct metrics_ctx mctx = {b, q};
    struct cli_metrics_server *metrics = NULL;
    if (metrics_listen != NULL) {
        char why[256];
        metrics = cli_metrics_start(metrics_listen, write_metrics, &mctx, why, sizeof why);
        if (metrics == NULL) {
            rre_bridge_destroy(b);
            rre_queue_destroy(q);
            return cli_fail("bridge: --metrics-listen: %s", why);
        }
    }

    sw.bridge = b;
    pthread_t sig_thread, ready_thread;
    struct ready_watch rw = {b, o.servers};
    bool sig_started = pthread_create(&sig_thread, NULL, watch_signals, &sw) == 0;
    bool ready_started = pthread_create(&ready_thread, NULL, watch_ready, &rw) == 0;

    st = rre_bridge_run(b);
    char why[512];
    snprintf(why, sizeof why, "%s", rre_last_error());

    if (ready_started)
        pthread_join(ready_thread, NULL);
    if (sig_started) {
        pthread_kill(sig_thread, SIGTERM); /* ends its sigwait if no signal came */
        pthread_join(sig_thread, NULL);
    }
    cli_metrics_stop(metrics);
    rre_bridge_counters c;
    rre_bridge_get_counters(b, &c);
    rre_bridge_destroy(b);
    rre_queue_destroy(q);
    /* The logger stays set: the library keeps a replaced sink for ever
     * (a thread may still be using it), which leak checkers would report. */
    if (st != RRE_OK)
        return cli_fail("bridge: %s: %s", rre_strerror(st), why);
    fprintf(stderr,
            "rre bridge: stopped: %llu published, %llu duplicates, %llu imported, %llu refused\n",
            (unsigned long long)c.out_published, (unsigned long long)c.out_duplicates,
            (unsigned long long)c.in_imported, (unsigned long long)c.in_refused);
    return CLI_OK;
}
