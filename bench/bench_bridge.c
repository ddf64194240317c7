/*
 * bench_bridge.c - figures of the NATS JetStream bridge between two
 * simulated hosts on one machine, against a local nats-server:
 *
 *  - host-to-host throughput: N events published on host A's queue (one
 *    thread, rre_queue_publish_batch() in batches of 500, so the producer is
 *    not the bottleneck), timed from the first publish until all N are
 *    committed in host B's queue; with the moments A's queue had them all
 *    and A's bridge had them all confirmed by the stream;
 *  - the reference in the same run: bare libnats asynchronous JetStream
 *    publish (js_PublishMsgAsync, the subjects, headers, bodies and
 *    Nats-Msg-Id the bridge sends, the same number pending at most) of N
 *    messages to a fresh stream, until js_PublishAsyncComplete(); measured
 *    before and after the bridge runs, and the ratio bridge / bare;
 *  - latency from a publish on A to a handler on B at 1,000 events/s: a
 *    router linked to B's queue (rre_link_create) whose handler records
 *    CLOCK_REALTIME now minus the send time carried in the payload (p50,
 *    p99, max);
 *  - the resident memory of each bridge process (VmRSS, VmHWM) after the
 *    throughput run;
 *  - CPU time per event of each process on the path (bridge A, bridge B,
 *    nats-server, the producer thread) and per message of the reference,
 *    from /proc, which stays meaningful when other work shares the CPUs;
 *    the size of both queue files; both bridges' counters.
 *
 * Each host is a directory with its own queue file and host name ("hostA",
 * "hostB"); each bridge runs in a process of its own (this program started
 * again with --bridge), so its memory figure is its own and the bridges,
 * the producer and nats-server compete for the CPUs as they would on a
 * real host. Performance is printed, never asserted; the load average at
 * start and end says how busy the machine was.
 *
 * Usage: bench_bridge [EVENTS] [NATS_URL]   (default 100000 events; without
 * a URL a private `nats-server -js` is started on a free loopback port with
 * its store in a fresh directory under $TMPDIR or /tmp, and stopped at the
 * end; the program is taken from $RRE_NATS_SERVER, else PATH, else
 * /usr/sbin/nats-server. A server given by URL must have no stream on
 * rre.>: the streams made here take it, and are deleted afterwards.)
 * RRE_BENCH_FETCH_BATCH and RRE_BENCH_MAX_IN_FLIGHT, when set, are given to
 * both bridges as fetch_batch and max_in_flight (to try other settings).
 */
#include <rre/rre.h>

#include <nats/nats.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PUBLISH_BATCH 500
#define LATENCY_RATE 1000  /* events per second */
#define LATENCY_WARMUP 500 /* events sent first and not counted */
#define LATENCY_EVENTS 3000
#define BARE_STREAM "RRE_BENCH_BARE"
#define BRIDGE_STREAM "RRE_BENCH_BRIDGE"
#define DAY_S (24.0 * 3600)
#define DEDUP_WINDOW_S 3600.0 /* the queue's default, which the bridge gives its stream */

static char dir[256];
static char url[128];
static char bare_stream[64], bridge_stream[64];
static pid_t server_pid;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* CPU seconds (user + system, all threads) that process `pid` used so far;
 * 0 for pid 0 (unknown). */
static double cpu_seconds(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool is_parent; /* the bench itself, not a bridge process */

_Noreturn static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_bridge: %s: %s\n", what, why);
    if (is_parent) {
        /* The bridge processes end with this one (PR_SET_PDEATHSIG). */
        if (server_pid > 0) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, NULL, 0);
        }
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (dir[0] != '\0' && system(cmd) != 0)
            fprintf(stderr, "bench_bridge: could not remove %s\n", dir);
    }
    exit(1);
}

static void die_rre(const char *what, rre_status st)
{
    char why[600];
    snprintf(why, sizeof why, "%s: %s", rre_strerror(st), rre_last_error());
    die(what, why);
}

static void die_nats(const char *what, natsStatus s)
{
    const char *last = nats_GetLastError(NULL);
    die(what, last != NULL && last[0] ? last : natsStatus_GetText(s));
}

static void print_load(const char *when)
{
    char buf[128] = "unknown\n";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fgets(buf, sizeof buf, f) == NULL)
            snprintf(buf, sizeof buf, "unknown\n");
        fclose(f);
    }
    printf("load average at %s (1, 5, 15 min; running/threads; last pid): %s", when, buf);
    fflush(stdout);
}

/* An 11-field TRAINING_COMPLETED payload, unique per seq (as bench_queue). */
static json_t *payload(long seq)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:i,s:f,s:i,s:s,s:f,s:b,s:I}", "config_key", "hex8_2p",
                     "board_type", "hex8", "num_players", 2, "model_path",
                     "/models/hex8_2p/latest.pth", "epochs", 20, "final_loss", 0.0423,
                     "samples_trained", 250000, "job_id", "job-42", "duration_seconds", 311.5,
                     "early_stopped", 0, "seq", (json_int_t)seq);
}

/* ------------------------------------------------------------------------ */
/* A private nats-server                                                     */
/* ------------------------------------------------------------------------ */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("finding a free port", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether the server at `url` accepts a connection and answers JetStream. */
static bool server_ready(void)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsAccountInfo *ai = NULL;
    bool ok = natsConnection_ConnectTo(&nc, url) == NATS_OK &&
              natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
              js_GetAccountInfo(&ai, js, NULL, NULL) == NATS_OK;
    jsAccountInfo_Destroy(ai);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return ok;
}

static void start_server(void)
{
    const char *prog = getenv("RRE_NATS_SERVER");
    char store[300], log[300];
    snprintf(store, sizeof store, "%s/nats-store", dir);
    snprintf(log, sizeof log, "%s/nats-server.log", dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        char port_s[16];
        snprintf(port_s, sizeof port_s, "%d", port);
        snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            die("fork", strerror(errno));
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            if (prog != NULL)
                execl(prog, prog, "-js", "-a", "127.0.0.1", "-p", port_s, "-sd", store,
                      (char *)NULL);
            execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port_s, "-sd",
                   store, (char *)NULL);
            execl("/usr/sbin/nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port_s,
                  "-sd", store, (char *)NULL);
            _exit(127);
        }
        server_pid = pid;
        double deadline = now_s() + 15;
        while (now_s() < deadline) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                server_pid = 0;
                if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                    die("starting nats-server", "no nats-server program (set RRE_NATS_SERVER)");
                break; /* the port was taken meanwhile, perhaps: another one */
            }
            if (server_ready())
                return;
            sleep_ms(50);
        }
        if (server_pid > 0) {
            kill(server_pid, SIGKILL);
            waitpid(server_pid, NULL, 0);
            server_pid = 0;
        }
    }
    die("starting nats-server", "it did not become ready (see its log in the bench directory)");
}

static void stop_server(void)
{
    if (server_pid <= 0)
        return;
    kill(server_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(server_pid, NULL, WNOHANG) == server_pid) {
            server_pid = 0;
            return;
        }
        sleep_ms(50);
    }
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    server_pid = 0;
}

/* ------------------------------------------------------------------------ */
/* JetStream helpers                                                         */
/* ------------------------------------------------------------------------ */

static natsConnection *connect_nats(void)
{
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, url);
    if (s != NATS_OK)
        die_nats("connecting to NATS", s);
    return nc;
}

/* Deletes `stream` if it exists. */
static void delete_stream(const char *stream)
{
    natsConnection *nc = connect_nats();
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsConnection_JetStream(&js, nc, NULL);
    if (s == NATS_OK)
        s = js_DeleteStream(js, stream, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        die_nats("deleting a stream", s);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* ------------------------------------------------------------------------ */
/* The reference: bare libnats asynchronous JetStream publish                */
/* ------------------------------------------------------------------------ */

struct bare_msgs {
    long n;
    char subject[128], source[128], type[64], when[64];
    char **bodies; /* canonical JSON of each payload */
    int *lens;
    char (*hex)[RRE_HASH_HEX_SIZE]; /* its content hash */
};

static atomic_long bare_acked, bare_failed;

static void bare_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pae;
    (void)closure;
    atomic_fetch_add(pa != NULL ? &bare_acked : &bare_failed, 1);
    natsMsg_Destroy(msg);
}

/* What build_message() in src/bridge_nats.c makes of the payloads host A
 * publishes: subject rre.<host token>.<category>.<TYPE>, the canonical JSON
 * as the body, the content hash as Nats-Msg-Id and ce-id. Built before the
 * timed part: canonical JSON and hashing are the bridge's own work. */
static void bare_prepare(struct bare_msgs *m, long n, const char *host)
{
    const rre_event_info *info = rre_event_get(RRE_EV_TRAINING_COMPLETED);
    m->n = n;
    snprintf(m->subject, sizeof m->subject, "rre.%s.%s.%s", host, rre_category_name(info->category),
             info->name);
    snprintf(m->source, sizeof m->source, "/ringrift/%s/bench", host);
    snprintf(m->type, sizeof m->type, "ringrift.%s", info->name);
    snprintf(m->when, sizeof m->when, "2026-01-02T03:04:05.678901Z");
    m->bodies = malloc(sizeof(char *) * (size_t)n);
    m->lens = malloc(sizeof(int) * (size_t)n);
    m->hex = malloc(sizeof *m->hex * (size_t)n);
    if (m->bodies == NULL || m->lens == NULL || m->hex == NULL)
        die("bare reference", "out of memory");
    for (long i = 0; i < n; i++) {
        json_t *p = payload(i);
        size_t len = 0;
        uint8_t hash[RRE_HASH_SIZE];
        rre_status st = rre_canonical_json(p, &m->bodies[i], &len);
        if (st == RRE_OK)
            st = rre_content_hash(RRE_EV_TRAINING_COMPLETED, p, hash);
        if (st != RRE_OK)
            die_rre("bare reference: canonical JSON", st);
        m->lens[i] = (int)len;
        rre_hash_to_hex(hash, m->hex[i]);
        json_decref(p);
    }
}

static void bare_free(struct bare_msgs *m)
{
    for (long i = 0; i < m->n; i++)
        free(m->bodies[i]);
    free(m->bodies);
    free(m->lens);
    free(m->hex);
}

struct bare_result {
    double rate;                   /* messages/s */
    double cpu_client, cpu_server; /* CPU seconds of this process and of nats-server */
};

/* Publishes the messages to a fresh stream with the settings the bridge
 * gives its own, `pending` at most awaiting their PubAck; gives messages/s
 * from the first publish until js_PublishAsyncComplete(). The stream is
 * deleted afterwards. */
static struct bare_result bench_bare(const struct bare_msgs *m, int pending)
{
    natsConnection *nc = connect_nats();
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.MaxPending = pending;
    jo.PublishAsync.AckHandler = bare_ack;
    natsStatus s = natsConnection_JetStream(&js, nc, &jo);
    if (s != NATS_OK)
        die_nats("bare reference: JetStream", s);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {RRE_BRIDGE_SUBJECTS};
    cfg.Name = bare_stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.MaxAge = (int64_t)(7 * DAY_S * 1e9);
    cfg.Duplicates = (int64_t)(DEDUP_WINDOW_S * 1e9);
    cfg.Replicas = 1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (s != NATS_OK)
        die_nats("bare reference: making the stream (is another stream on rre.>?)", s);
    jsStreamInfo_Destroy(si);
    atomic_store(&bare_acked, 0);
    atomic_store(&bare_failed, 0);

    double c0 = cpu_seconds(getpid()), s0 = cpu_seconds(server_pid);
    double t0 = now_s();
    for (long i = 0; i < m->n; i++) {
        natsMsg *msg = NULL;
        s = natsMsg_Create(&msg, m->subject, NULL, m->bodies[i], m->lens[i]);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "Nats-Msg-Id", m->hex[i]);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-specversion", "1.0");
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-id", m->hex[i]);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-source", m->source);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-type", m->type);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-time", m->when);
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "ce-datacontenttype", "application/json");
        if (s == NATS_OK)
            s = natsMsgHeader_Set(msg, "Rre-Origin-Host", "hostA");
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = m->hex[i];
        po.MaxWait = 5000;
        if (s == NATS_OK)
            s = js_PublishMsgAsync(js, &msg, &po);
        if (s != NATS_OK)
            die_nats("bare reference: publish", s);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    s = js_PublishAsyncComplete(js, &po);
    double el = now_s() - t0;
    struct bare_result r = {(double)m->n / el, cpu_seconds(getpid()) - c0,
                            cpu_seconds(server_pid) - s0};
    if (s != NATS_OK)
        die_nats("bare reference: waiting for the PubAcks", s);
    if (atomic_load(&bare_acked) != m->n || atomic_load(&bare_failed) != 0) {
        char why[128];
        snprintf(why, sizeof why, "%ld PubAcks and %ld failures for %ld messages",
                 atomic_load(&bare_acked), atomic_load(&bare_failed), m->n);
        die("bare reference", why);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    delete_stream(bare_stream);
    return r;
}

/* ------------------------------------------------------------------------ */
/* A host's bridge, in a process of its own                                  */
/* ------------------------------------------------------------------------ */

static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? atoi(v) : 0;
}

static rre_queue *open_host_queue(const char *host)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/events.db", dir, host);
    rre_queue_options o;
    rre_queue_options_init(&o);
    o.path = path;
    o.hostname = host;
    rre_queue *q = NULL;
    rre_status st = rre_queue_create(&q, &o);
    if (st != RRE_OK)
        die_rre("opening a host's queue", st);
    return q;
}

struct run_arg {
    rre_bridge *b;
    rre_status st;
};

static void *run_bridge(void *arg)
{
    struct run_arg *a = arg;
    a->st = rre_bridge_run(a->b);
    return NULL;
}

/* The child: runs the bridge of `host` until ctl_fd reaches end of file,
 * then writes the bridge's counters to out_fd. */
_Noreturn static void bridge_child(const char *host, int ready_fd, int ctl_fd, int out_fd)
{
    rre_queue *q = open_host_queue(host);
    rre_bridge_options o;
    rre_bridge_options_init(&o);
    o.servers = url;
    o.stream = bridge_stream;
    o.host = host;
    o.fetch_batch = env_int("RRE_BENCH_FETCH_BATCH");
    o.max_in_flight = env_int("RRE_BENCH_MAX_IN_FLIGHT");
    struct run_arg a = {NULL, RRE_OK};
    rre_status st = rre_bridge_create(&a.b, q, &o);
    if (st != RRE_OK)
        die_rre("making a bridge", st);
    pthread_t th;
    if (pthread_create(&th, NULL, run_bridge, &a) != 0)
        die("bridge", "cannot start a thread");
    st = rre_bridge_wait_ready(a.b, 30000);
    if (st != RRE_OK)
        die_rre("the bridge is not ready", st);
    char one = 1;
    if (write(ready_fd, &one, 1) != 1)
        exit(1);
    close(ready_fd);
    char c;
    while (read(ctl_fd, &c, 1) > 0)
        ;
    rre_bridge_stop(a.b);
    pthread_join(th, NULL);
    rre_bridge_counters counters;
    rre_bridge_get_counters(a.b, &counters);
    if (write(out_fd, &counters, sizeof counters) != (ssize_t)sizeof counters)
        exit(1);
    rre_bridge_destroy(a.b);
    rre_queue_destroy(q);
    exit(a.st == RRE_OK ? 0 : 1);
}

struct host {
    const char *name;
    pid_t pid;
    int ctl, out; /* closing ctl stops the bridge; out brings its counters */
};

/* Starts the bridge of `h` as a fresh program (so its memory is its own,
 * not what it would inherit from this process through fork) and waits
 * until it is ready. */
static void start_bridge(struct host *h)
{
    char hdir[300];
    snprintf(hdir, sizeof hdir, "%s/%s", dir, h->name);
    mkdir(hdir, 0700);
    int ready[2], ctl[2], out[2];
    /* Close-on-exec, so the other bridge does not inherit this one's
     * control pipe (its end of file is the signal to stop). */
    if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(ctl, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        die("pipe", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fcntl(ready[1], F_SETFD, 0);
        fcntl(ctl[0], F_SETFD, 0);
        fcntl(out[1], F_SETFD, 0);
        char rfd[16], cfd[16], ofd[16];
        snprintf(rfd, sizeof rfd, "%d", ready[1]);
        snprintf(cfd, sizeof cfd, "%d", ctl[0]);
        snprintf(ofd, sizeof ofd, "%d", out[1]);
        execl("/proc/self/exe", "bench_bridge", "--bridge", dir, url, bridge_stream, h->name, rfd,
              cfd, ofd, (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    close(ctl[0]);
    close(out[1]);
    h->pid = pid;
    h->ctl = ctl[1];
    h->out = out[0];
    char c;
    if (read(ready[0], &c, 1) != 1)
        die("starting a bridge", "the bridge process ended before it was ready");
    close(ready[0]);
}

static void stop_bridge(struct host *h, rre_bridge_counters *c)
{
    memset(c, 0, sizeof *c);
    close(h->ctl);
    if (read(h->out, c, sizeof *c) != (ssize_t)sizeof *c)
        fprintf(stderr, "bench_bridge: the bridge of %s ended without its counters\n", h->name);
    close(h->out);
    int status = 0;
    waitpid(h->pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "bench_bridge: the bridge of %s failed (status %d)\n", h->name, status);
}

struct memory {
    long rss, hwm, anon, file; /* KiB; -1 unknown */
};

static struct memory memory_of(pid_t pid)
{
    struct memory m = {-1, -1, -1, -1};
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return m;
    while (fgets(line, sizeof line, f) != NULL) {
        long v;
        if (sscanf(line, "VmRSS: %ld kB", &v) == 1)
            m.rss = v;
        else if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
            m.hwm = v;
        else if (sscanf(line, "RssAnon: %ld kB", &v) == 1)
            m.anon = v;
        else if (sscanf(line, "RssFile: %ld kB", &v) == 1)
            m.file = v;
    }
    fclose(f);
    return m;
}

/* ------------------------------------------------------------------------ */
/* Throughput                                                                */
/* ------------------------------------------------------------------------ */

struct producer {
    rre_queue *q;
    long n;
    double t0, t_done; /* monotonic seconds */
    double cpu;        /* CPU seconds of the producer thread */
    atomic_llong last_id;
    pthread_t thread;
};

static void *producer_main(void *arg)
{
    struct producer *p = arg;
    rre_event evs[PUBLISH_BATCH];
    json_t *seqs[PUBLISH_BATCH];
    memset(evs, 0, sizeof evs);
    for (int i = 0; i < PUBLISH_BATCH; i++) {
        evs[i].type = RRE_EV_TRAINING_COMPLETED;
        evs[i].payload = payload(0);
        evs[i].source = "bench";
        seqs[i] = json_object_get(evs[i].payload, "seq");
    }
    double c0 = thread_cpu_seconds();
    p->t0 = now_s();
    long long last = 0;
    for (long i = 0; i < p->n; i += PUBLISH_BATCH) {
        size_t k = p->n - i < PUBLISH_BATCH ? (size_t)(p->n - i) : PUBLISH_BATCH;
        for (size_t j = 0; j < k; j++)
            json_integer_set(seqs[j], (json_int_t)(i + (long)j));
        rre_status st = rre_queue_publish_batch(p->q, evs, k, NULL);
        if (st != RRE_OK)
            die_rre("publishing on host A", st);
        last = evs[k - 1].event_id;
    }
    p->t_done = now_s();
    p->cpu = thread_cpu_seconds() - c0;
    atomic_store(&p->last_id, last);
    for (int i = 0; i < PUBLISH_BATCH; i++)
        json_decref(evs[i].payload);
    return NULL;
}

static sqlite3 *open_readonly(const char *host)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/events.db", dir, host);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        die("opening a queue file", sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static int64_t query_int(sqlite3_stmt *st)
{
    int64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

struct throughput {
    double rate;       /* events/s, first publish to all in B's queue */
    double published;  /* seconds until A's queue had them all */
    double confirmed;  /* ... until A's bridge recorded them all as confirmed */
    double arrived;    /* ... until B's queue had them all */
    long in_b;         /* rows of hostA in B's queue at the end */
    double window_min; /* the slowest and fastest 250 ms of arrivals in B, events/s */
    double window_max;
    /* CPU seconds from the first publish until all were in B's queue */
    double cpu_a, cpu_b, cpu_server, cpu_producer;
};

static struct throughput bench_throughput(rre_queue *qa, long n, pid_t pid_a, pid_t pid_b)
{
    struct throughput r = {0};
    sqlite3 *da = open_readonly("hostA"), *db = open_readonly("hostB");
    sqlite3_stmt *cursor_st, *max_st, *count_st;
    if (sqlite3_prepare_v2(da,
                           "SELECT last_event_id FROM rre_cursors WHERE subscriber_id ="
                           " 'hostA:stable:" RRE_BRIDGE_SUBSCRIBER "'",
                           -1, &cursor_st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT coalesce(max(event_id), 0) FROM events", -1, &max_st,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE hostname = 'hostA'", -1,
                           &count_st, NULL) != SQLITE_OK)
        die("preparing the progress queries", sqlite3_errmsg(da));
    int64_t b_start = query_int(max_st);

    struct producer p = {.q = qa, .n = n};
    atomic_init(&p.last_id, 0);
    double ca = cpu_seconds(pid_a), cb = cpu_seconds(pid_b), cs = cpu_seconds(server_pid);
    double t0 = now_s();
    if (pthread_create(&p.thread, NULL, producer_main, &p) != 0)
        die("producer", "cannot start a thread");
    double last_progress = t0, window_t = t0;
    int64_t last_b = b_start, window_b = b_start;
    r.window_min = -1;
    bool confirmed = false;
    for (;;) {
        sleep_ms(2);
        double t = now_s();
        long long last_a = atomic_load(&p.last_id);
        if (!confirmed && last_a > 0 && query_int(cursor_st) >= last_a) {
            confirmed = true;
            r.confirmed = t - t0;
        }
        int64_t b = query_int(max_st);
        if (b != last_b) {
            last_b = b;
            last_progress = t;
        }
        if (t - window_t >= 0.25 && b - b_start < n) {
            double rate = (double)(b - window_b) / (t - window_t);
            if (window_b > b_start) { /* whole windows after the first arrival */
                if (r.window_min < 0 || rate < r.window_min)
                    r.window_min = rate;
                if (rate > r.window_max)
                    r.window_max = rate;
            }
            window_t = t;
            window_b = b;
        }
        if (b - b_start >= n) {
            r.arrived = t - t0;
            r.cpu_a = cpu_seconds(pid_a) - ca;
            r.cpu_b = cpu_seconds(pid_b) - cb;
            r.cpu_server = cpu_seconds(server_pid) - cs;
            break;
        }
        if (t - last_progress > 30) {
            char why[160];
            snprintf(why, sizeof why, "no progress in 30 s: %lld of %ld in B's queue",
                     (long long)(b - b_start), n);
            die("throughput", why);
        }
    }
    pthread_join(p.thread, NULL);
    r.published = p.t_done - p.t0;
    r.cpu_producer = p.cpu;
    /* The producer's clock started a moment after t0: time from its start. */
    r.arrived -= p.t0 - t0;
    if (confirmed)
        r.confirmed -= p.t0 - t0;
    r.rate = (double)n / r.arrived;
    r.in_b = (long)query_int(count_st);
    sqlite3_finalize(cursor_st);
    sqlite3_finalize(max_st);
    sqlite3_finalize(count_st);
    sqlite3_close(da);
    sqlite3_close(db);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Latency                                                                   */
/* ------------------------------------------------------------------------ */

struct latency_state {
    int64_t *lat; /* ns, by event index after the warm-up */
    long want;
    atomic_long got;
};

static int latency_handler(const rre_event *ev, void *ud)
{
    struct latency_state *s = ud;
    int64_t now = real_ns();
    json_t *sent = json_object_get(ev->payload, "sent_ns");
    json_t *idx = json_object_get(ev->payload, "latency_i");
    if (sent == NULL || idx == NULL)
        return 0;
    long i = (long)json_integer_value(idx) - LATENCY_WARMUP;
    if (i >= 0 && i < s->want)
        s->lat[i] = now - (int64_t)json_integer_value(sent);
    atomic_fetch_add(&s->got, 1);
    return 0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Publishes on A at LATENCY_RATE, one event per call, each carrying its
 * send time; a router linked to B's queue records when its handler runs.
 * Fills p50, p99 and max in microseconds; returns the events counted. */
static long bench_latency(rre_queue *qa, double *p50, double *p99, double *max)
{
    rre_queue *qb = open_host_queue("hostB");
    rre_router_options *ro = NULL;
    rre_router *r = NULL;
    rre_link *link = NULL;
    struct latency_state s = {calloc(LATENCY_EVENTS, sizeof(int64_t)), LATENCY_EVENTS, 0};
    if (s.lat == NULL)
        die("latency", "out of memory");
    rre_status st = rre_router_options_create(&ro);
    if (st == RRE_OK)
        st = rre_router_options_set_validation(ro, RRE_VALIDATE_OFF);
    if (st == RRE_OK)
        st = rre_router_options_set_source(ro, "bench");
    if (st == RRE_OK)
        st = rre_router_create(&r, ro);
    if (st == RRE_OK)
        st = rre_router_subscribe(r, RRE_EV_TRAINING_COMPLETED, "latency", latency_handler, &s,
                                  NULL);
    if (st == RRE_OK)
        st = rre_link_create(&link, r, qb, NULL);
    if (st != RRE_OK)
        die_rre("latency: the router on B", st);
    rre_router_options_destroy(ro);

    long total = LATENCY_WARMUP + LATENCY_EVENTS;
    json_t *p = payload(0);
    double start = now_s();
    for (long i = 0; i < total; i++) {
        double due = start + (double)i / LATENCY_RATE;
        double wait = due - now_s();
        if (wait > 0) {
            struct timespec ts = {0, (long)(wait * 1e9)};
            nanosleep(&ts, NULL);
        }
        json_object_set_new(p, "seq", json_integer((json_int_t)(10000000 + i)));
        json_object_set_new(p, "latency_i", json_integer((json_int_t)i));
        json_object_set_new(p, "sent_ns", json_integer((json_int_t)real_ns()));
        st = rre_queue_publish(qa, RRE_EV_TRAINING_COMPLETED, p, "bench", NULL, NULL, NULL);
        if (st != RRE_OK)
            die_rre("latency: publishing on A", st);
    }
    json_decref(p);
    double deadline = now_s() + 30;
    while (atomic_load(&s.got) < total && now_s() < deadline)
        sleep_ms(5);
    rre_link_destroy(link);
    rre_router_destroy(r);
    rre_queue_destroy(qb);
    long got = atomic_load(&s.got) - LATENCY_WARMUP;
    if (got < LATENCY_EVENTS) {
        char why[128];
        snprintf(why, sizeof why, "only %ld of %d events reached B's handler", got, LATENCY_EVENTS);
        die("latency", why);
    }
    qsort(s.lat, LATENCY_EVENTS, sizeof(int64_t), cmp64);
    *p50 = (double)s.lat[LATENCY_EVENTS / 2] / 1e3;
    *p99 = (double)s.lat[(LATENCY_EVENTS * 99) / 100] / 1e3;
    *max = (double)s.lat[LATENCY_EVENTS - 1] / 1e3;
    free(s.lat);
    return LATENCY_EVENTS;
}

/* ------------------------------------------------------------------------ */

static double file_mib(const char *host, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/events.db%s", dir, host, suffix);
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
}

static void print_memory(const struct host *h)
{
    struct memory m = memory_of(h->pid);
    printf("bridge process of %s, resident memory after the throughput run: VmRSS %ld KiB "
           "(%.1f MiB; %ld KiB file-backed: program and shared libraries; %ld KiB anonymous: "
           "heap and stacks), peak VmHWM %ld KiB (%.1f MiB) (goal: under 20 MiB)\n",
           h->name, m.rss, (double)m.rss / 1024, m.file, m.anon, m.hwm, (double)m.hwm / 1024);
}

static void print_bare_cpu(const struct bare_result *r, long n)
{
    char server_cpu[64] = "not measured (not started here)";
    if (server_pid > 0)
        snprintf(server_cpu, sizeof server_cpu, "%.0f us", r->cpu_server / (double)n * 1e6);
    printf("  CPU per message: publisher (this process) %.0f us, nats-server %s\n",
           r->cpu_client / (double)n * 1e6, server_cpu);
}

static void print_counters(const char *name, const rre_bridge_counters *c)
{
    printf("bridge of %s, counters: out published %llu, duplicates %llu, failures %llu, "
           "passed %llu; in messages %llu, imported %llu, duplicates %llu, own %llu, "
           "refused %llu, consumer resets %llu; backoffs %llu\n",
           name, (unsigned long long)c->out_published, (unsigned long long)c->out_duplicates,
           (unsigned long long)c->out_failures, (unsigned long long)c->out_passed,
           (unsigned long long)c->in_messages, (unsigned long long)c->in_imported,
           (unsigned long long)c->in_duplicates, (unsigned long long)c->in_own,
           (unsigned long long)c->in_refused, (unsigned long long)c->in_consumer_resets,
           (unsigned long long)c->backoffs);
}

int main(int argc, char **argv)
{
    if (argc == 9 && strcmp(argv[1], "--bridge") == 0) {
        snprintf(dir, sizeof dir, "%s", argv[2]);
        snprintf(url, sizeof url, "%s", argv[3]);
        snprintf(bridge_stream, sizeof bridge_stream, "%s", argv[4]);
        bridge_child(argv[5], atoi(argv[6]), atoi(argv[7]), atoi(argv[8]));
    }
    is_parent = true;
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n < 1000)
        n = 1000;
    signal(SIGPIPE, SIG_IGN);
    print_load("start");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rre-bench-bridge-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (argc > 2) {
        snprintf(url, sizeof url, "%s", argv[2]);
        snprintf(bare_stream, sizeof bare_stream, "%s_%d", BARE_STREAM, (int)getpid());
        snprintf(bridge_stream, sizeof bridge_stream, "%s_%d", BRIDGE_STREAM, (int)getpid());
        printf("nats-server at %s (given)\n", url);
    } else {
        snprintf(bare_stream, sizeof bare_stream, "%s", BARE_STREAM);
        snprintf(bridge_stream, sizeof bridge_stream, "%s", BRIDGE_STREAM);
        start_server();
        printf("nats-server: a private one at %s, JetStream file store under %s\n", url, dir);
    }
    int fetch = env_int("RRE_BENCH_FETCH_BATCH"), inflight = env_int("RRE_BENCH_MAX_IN_FLIGHT");
    int pending = (inflight > 0 ? inflight : 1024) + 64; /* what the bridge gives libnats */
    printf("bridge settings: fetch_batch %d, max_in_flight %d%s\n", fetch > 0 ? fetch : 256,
           inflight > 0 ? inflight : 1024,
           fetch > 0 || inflight > 0 ? " (from the environment)" : " (the defaults)");

    /* The reference, first. */
    struct bare_msgs bm;
    bare_prepare(&bm, n, "hostA");
    struct bare_result bare1 = bench_bare(&bm, pending);
    printf("reference: bare libnats async JetStream publish (js_PublishMsgAsync with the bridge's "
           "subject, headers, body and Nats-Msg-Id, %d pending at most, until "
           "js_PublishAsyncComplete), %ld messages: %.0f messages/s\n",
           pending, n, bare1.rate);
    print_bare_cpu(&bare1, n);

    /* The two hosts. */
    struct host a = {.name = "hostA"}, b = {.name = "hostB"};
    start_bridge(&a);
    start_bridge(&b);
    rre_queue *qa = open_host_queue("hostA");

    struct throughput t = bench_throughput(qa, n, a.pid, b.pid);
    printf("bridge host to host: %ld events published on A (batches of %d per call), all "
           "committed in B's queue after %.2f s: %.0f events/s (goal: at least 50000)\n",
           n, PUBLISH_BATCH, t.arrived, t.rate);
    printf("  A's queue had them all after %.2f s (%.0f events/s); A's bridge had them all "
           "confirmed by the stream after %.2f s (%.0f events/s); B's queue took them at "
           "%.0f to %.0f events/s (slowest and fastest 250 ms)\n",
           t.published, (double)n / t.published, t.confirmed,
           t.confirmed > 0 ? (double)n / t.confirmed : 0.0, t.window_min, t.window_max);
    double total = t.cpu_a + t.cpu_b + t.cpu_server + t.cpu_producer;
    char server_cpu[64] = "not measured (not started here)";
    if (server_pid > 0)
        snprintf(server_cpu, sizeof server_cpu, "%.0f us", t.cpu_server / (double)n * 1e6);
    printf("  CPU per event over that time: bridge A %.0f us, bridge B %.0f us, nats-server %s, "
           "producer %.0f us; together %.0f us (on average %.2f of the %ld CPUs busy with them)\n",
           t.cpu_a / (double)n * 1e6, t.cpu_b / (double)n * 1e6, server_cpu,
           t.cpu_producer / (double)n * 1e6, total / (double)n * 1e6, total / t.arrived,
           sysconf(_SC_NPROCESSORS_ONLN));
    if (t.in_b != n)
        printf("  note: B's queue holds %ld rows of hostA, not %ld\n", t.in_b, n);
    printf("  queue files after it: A events.db %.1f MiB + -wal %.1f MiB, B events.db %.1f MiB + "
           "-wal %.1f MiB\n",
           file_mib("hostA", ""), file_mib("hostA", "-wal"), file_mib("hostB", ""),
           file_mib("hostB", "-wal"));
    print_memory(&a);
    print_memory(&b);

    double p50, p99, pmax;
    long m = bench_latency(qa, &p50, &p99, &pmax);
    printf("latency publish on A -> handler on B (router linked to B's queue) at %d events/s, "
           "%ld events after %d of warm-up: p50 %.0f us, p99 %.0f us, max %.0f us "
           "(goal: p99 under 10000 us)\n",
           LATENCY_RATE, m, LATENCY_WARMUP, p50, p99, pmax);

    rre_queue_destroy(qa);
    rre_bridge_counters ca, cb;
    stop_bridge(&a, &ca);
    stop_bridge(&b, &cb);
    print_counters("hostA", &ca);
    print_counters("hostB", &cb);
    if (cb.out_passed + cb.out_published + cb.out_duplicates < cb.in_imported)
        printf("  note: B's outbound side, which reads every row of B's queue and passes over "
               "those of other hosts, had passed only %llu of the %llu rows B imported\n",
               (unsigned long long)cb.out_passed, (unsigned long long)cb.in_imported);

    /* The reference again, now that the bridges are gone. */
    delete_stream(bridge_stream);
    struct bare_result bare2 = bench_bare(&bm, pending);
    bare_free(&bm);
    double bare = (bare1.rate + bare2.rate) / 2;
    printf("reference again after the bridge run: %.0f messages/s (mean of both: %.0f)\n",
           bare2.rate, bare);
    print_bare_cpu(&bare2, n);
    printf("bridge host to host / bare libnats publish: %.2f (goal: at least 0.50)\n",
           t.rate / bare);

    stop_server();
    nats_Close();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_bridge: could not remove %s\n", dir);
    print_load("end");
    return 0;
}
