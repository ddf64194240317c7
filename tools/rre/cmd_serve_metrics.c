/*
 * cmd_serve_metrics.c - `rre serve-metrics`: the queue's figures for
 * Prometheus at http://ADDR:PORT/metrics, on a host that runs no bridge
 * (a bridge serves them itself with --metrics-listen). Read-only: each
 * scrape reads the queue file as `rre stats --format prometheus` does.
 * Runs until SIGINT or SIGTERM (exit 0).
 */
#include "cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

void cmd_serve_metrics_help(FILE *out)
{
    fputs("usage: rre [--db PATH] serve-metrics --metrics-listen ADDR:PORT\n"
          "\n"
          "Serves the queue's figures (those of `rre stats --format prometheus`) at\n"
          "http://ADDR:PORT/metrics until SIGINT or SIGTERM. ADDR:PORT such as\n"
          "127.0.0.1:9465, :9465 (every address) or [::1]:9465. The queue is opened\n"
          "read-only. Exit status: 0 stopped by a signal, 1 failure, 2 wrong usage.\n",
          out);
}

static void write_metrics(FILE *out, void *user_data)
{
    rre_queue *q = user_data;
    json_t *s = NULL;
    if (rre_queue_stats(q, &s) == RRE_OK)
        cli_stats_prometheus(out, s);
    else
        fprintf(out, "# the queue's figures could not be read: %s\n", rre_last_error());
    json_decref(s);
}

int cmd_serve_metrics(const struct cli_globals *g, int argc, char **argv)
{
    const char *listen = NULL;
    static const struct cli_option opts[] = {{"metrics-listen", 0, true, false}};
    struct cli_getopt p;
    cli_getopt_init(&p, "serve-metrics", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *v;
    while ((o = cli_getopt_next(&p, argc, argv, &v)) != CLI_OPT_END) {
        if (o == CLI_OPT_HELP) {
            cmd_serve_metrics_help(stdout);
            return CLI_OK;
        }
        if (o == CLI_OPT_USAGE)
            return CLI_USAGE;
        listen = v;
    }
    if (p.first_operand < argc)
        return cli_usage_error("serve-metrics: unexpected argument '%s'", argv[p.first_operand]);
    if (listen == NULL)
        return cli_usage_error("serve-metrics: --metrics-listen ADDR:PORT is required");
    if (!cli_metrics_listen_valid(listen))
        return cli_usage_error("serve-metrics: --metrics-listen takes ADDR:PORT (such as "
                               "127.0.0.1:9465 or :9465), not '%s'",
                               listen);
    /* The signals are waited for here; every thread started from now on
     * (the HTTP server's) inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    rre_queue *q = NULL;
    if (cli_require_queue_file(g, "serve-metrics") != CLI_OK ||
        cli_open_queue_read_only(g, "serve-metrics", &q) != CLI_OK)
        return CLI_FAIL;
    char why[256];
    struct cli_metrics_server *srv = cli_metrics_start(listen, write_metrics, q, why, sizeof why);
    if (srv == NULL) {
        rre_queue_destroy(q);
        return cli_fail("serve-metrics: --metrics-listen: %s", why);
    }
    fprintf(stderr, "rre serve-metrics: serving http://%s/metrics\n", listen);
    int sig = 0;
    sigwait(&set, &sig);
    cli_metrics_stop(srv);
    rre_queue_destroy(q);
    return CLI_OK;
}
