/*
 * demo_hosts.c - the simulated hosts of `rre demo --hosts N`: a directory,
 * queue file and host name each, a bridge per host (run on threads of the
 * demo driver) to one JetStream stream, and a private nats-server when no
 * --nats URL is given. The coordinators of a host are processes forked by
 * the driver (cmd_demo.c); they only use their host's queue file.
 */
#include "cli.h"
#include "demo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *demo_host_name(int index)
{
    static const char *const names[DEMO_MAX_HOSTS] = {
        "demo-trainer",    "demo-selfplay-1", "demo-selfplay-2", "demo-selfplay-3",
        "demo-selfplay-4", "demo-selfplay-5", "demo-selfplay-6", "demo-selfplay-7",
    };
    return index >= 0 && index < DEMO_MAX_HOSTS ? names[index] : "demo-unknown";
}

/* The nats-server program: $RRE_NATS_SERVER, else on PATH, else where
 * Debian installs it (/usr/sbin, which is not on every user's PATH). */
static bool find_nats_server(char *out, size_t cap)
{
    const char *env = getenv("RRE_NATS_SERVER");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin:/usr/local/bin",
             path != NULL ? path : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, cap, "%s/nats-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts a private nats-server with JetStream on a free loopback port. */
static int start_nats(struct demo_hosts *hs)
{
    char bin[4096];
    if (!find_nats_server(bin, sizeof bin))
        return cli_fail("demo: --hosts needs a NATS server: install nats-server (Debian package "
                        "nats-server) or give --nats URL");
    char store[400], log[400];
    snprintf(store, sizeof store, "%s/nats", hs->root);
    snprintf(log, sizeof log, "%s/nats-server.log", hs->root);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        if (port <= 0)
            return cli_fail("demo: no free loopback port for nats-server");
        char port_text[16];
        snprintf(port_text, sizeof port_text, "%d", port);
        pid_t pid = fork();
        if (pid < 0)
            return cli_fail("demo: fork: %s", strerror(errno));
        if (pid == 0) {
            /* Its own process group, so a Ctrl-C at the terminal reaches the
             * driver only; and it ends with the driver, however that ends. */
            setpgid(0, 0);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
            sigset_t none;
            sigemptyset(&none);
            pthread_sigmask(SIG_SETMASK, &none, NULL);
            execl(bin, "nats-server", "-a", "127.0.0.1", "-p", port_text, "-js", "-sd", store,
                  (char *)NULL);
            _exit(127);
        }
        hs->nats_pid = pid;
        snprintf(hs->servers, sizeof hs->servers, "nats://127.0.0.1:%d", port);
        for (int i = 0; i < 500; i++) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                hs->nats_pid = 0;
                break; /* it exited: the port was taken meanwhile, or worse */
            }
            if (port_open(port))
                return CLI_OK;
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        if (hs->nats_pid > 0) {
            kill(hs->nats_pid, SIGKILL);
            waitpid(hs->nats_pid, NULL, 0);
            hs->nats_pid = 0;
        }
    }
    return cli_fail("demo: nats-server did not start (see %s)", log);
}

int demo_hosts_prepare(struct demo_hosts *hs, const char *nats_url)
{
    for (int h = 0; h < hs->count; h++) {
        struct demo_host *host = &hs->host[h];
        snprintf(host->name, sizeof host->name, "%s", demo_host_name(h));
        snprintf(host->dir, sizeof host->dir, "%s/%s", hs->root, host->name);
        snprintf(host->db, sizeof host->db, "%s/events.db", host->dir);
        if (mkdir(host->dir, 0700) != 0 && errno != EEXIST)
            return cli_fail("demo: cannot make %s: %s", host->dir, strerror(errno));
    }
    if (nats_url != NULL) {
        snprintf(hs->servers, sizeof hs->servers, "%s", nats_url);
        return CLI_OK;
    }
    return start_nats(hs);
}

static void *run_bridge(void *arg)
{
    struct demo_host *host = arg;
    host->run_status = rre_bridge_run(host->bridge);
    if (host->run_status != RRE_OK)
        snprintf(host->error, sizeof host->error, "%s", rre_last_error());
    return NULL;
}

int demo_hosts_start_bridges(struct demo_hosts *hs, double start_time)
{
    for (int h = 0; h < hs->count; h++) {
        struct demo_host *host = &hs->host[h];
        rre_queue_options qo;
        rre_queue_options_init(&qo);
        qo.path = host->db;
        qo.hostname = host->name;
        qo.default_source = DEMO_DRIVER_NAME;
        rre_status st = rre_queue_create(&host->queue, &qo);
        if (st != RRE_OK)
            return cli_fail_status("demo: a host's queue", st);
        rre_bridge_options bo;
        rre_bridge_options_init(&bo);
        bo.servers = hs->servers;
        bo.host = host->name;
        /* Whatever this run published before every bridge was ready is
         * carried too: each host starts at the run's start. */
        bo.start = RRE_BRIDGE_START_TIME;
        bo.start_time = start_time;
        st = rre_bridge_create(&host->bridge, host->queue, &bo);
        if (st != RRE_OK)
            return cli_fail_status("demo: a host's bridge", st);
        if (pthread_create(&host->thread, NULL, run_bridge, host) != 0)
            return cli_fail("demo: cannot start a bridge thread");
        host->thread_started = true;
    }
    for (int h = 0; h < hs->count; h++) {
        struct demo_host *host = &hs->host[h];
        rre_status st = rre_bridge_wait_ready(host->bridge, 30000);
        if (st != RRE_OK)
            return cli_fail("demo: the bridge of %s is not ready on %s: %s", host->name,
                            hs->servers, host->error[0] ? host->error : rre_last_error());
    }
    return CLI_OK;
}

struct direction_count {
    int host;
    const char *run_id;
    uint64_t *from; /* per origin host index */
    const struct demo_hosts *hs;
};

static rre_status count_origin(const rre_event *ev, void *user_data)
{
    struct direction_count *c = user_data;
    if (!demo_is_own_event(ev->payload, c->run_id))
        return RRE_OK;
    for (int o = 0; o < c->hs->count; o++)
        if (strcmp(ev->hostname, c->hs->host[o].name) == 0)
            c->from[o]++;
    return RRE_OK;
}

void demo_hosts_print_summary(const struct demo_hosts *hs, const char *run_id)
{
    printf("  hosts (stream %s on %s%s):\n", RRE_BRIDGE_DEFAULT_STREAM, hs->servers,
           hs->nats_pid > 0 ? ", a private nats-server" : "");
    for (int h = 0; h < hs->count; h++) {
        const struct demo_host *host = &hs->host[h];
        rre_bridge_counters c = {0};
        if (host->bridge != NULL)
            rre_bridge_get_counters(host->bridge, &c);
        printf("    %-16s sent %6llu (%llu already on the stream), imported %6llu "
               "(%llu duplicates), refused %llu\n",
               host->name, (unsigned long long)c.out_published,
               (unsigned long long)c.out_duplicates, (unsigned long long)c.in_imported,
               (unsigned long long)c.in_duplicates, (unsigned long long)c.in_refused);
    }
    /* Each host's queue, read like any other process reads it: how many of
     * this run's events of each origin it holds. */
    printf("  events carried per direction (origin -> host: events of the run):\n");
    for (int h = 0; h < hs->count; h++) {
        const struct demo_host *host = &hs->host[h];
        uint64_t from[DEMO_MAX_HOSTS] = {0};
        struct direction_count dc = {h, run_id, from, hs};
        rre_subscriber *s = NULL;
        if (host->queue == NULL || rre_subscriber_create(&s, host->queue, NULL) != RRE_OK)
            continue;
        size_t n;
        do {
            if (rre_subscriber_poll(s, 0, 0, count_origin, &dc, &n) != RRE_OK)
                break;
        } while (n > 0);
        rre_subscriber_destroy(s);
        for (int o = 0; o < hs->count; o++)
            if (o != h)
                printf("    %-16s -> %-16s %6llu\n", hs->host[o].name, host->name,
                       (unsigned long long)from[o]);
    }
}

void demo_hosts_stop_bridges(struct demo_hosts *hs)
{
    for (int h = 0; h < hs->count; h++)
        if (hs->host[h].bridge != NULL)
            rre_bridge_stop(hs->host[h].bridge);
    for (int h = 0; h < hs->count; h++) {
        struct demo_host *host = &hs->host[h];
        if (host->thread_started)
            pthread_join(host->thread, NULL);
        host->thread_started = false;
    }
}

void demo_hosts_destroy(struct demo_hosts *hs)
{
    demo_hosts_stop_bridges(hs);
    for (int h = 0; h < hs->count; h++) {
        struct demo_host *host = &hs->host[h];
        rre_bridge_destroy(host->bridge);
        host->bridge = NULL;
        rre_queue_destroy(host->queue);
        host->queue = NULL;
    }
    if (hs->nats_pid > 0) {
        kill(hs->nats_pid, SIGTERM);
        for (int i = 0; i < 500 && waitpid(hs->nats_pid, NULL, WNOHANG) == 0; i++) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
        kill(hs->nats_pid, SIGKILL);
        waitpid(hs->nats_pid, NULL, 0);
        hs->nats_pid = 0;
    }
}
