/*
 * natsutil.c - see natsutil.h.
 *
 * A server is ready when (1) its process is alive, (2) its client port
 * answers with an INFO line that carries this server's server_name (so a
 * port that another process grabbed is not mistaken for ours), and (3) its
 * monitoring endpoint /healthz answers 200 {"status":"ok"}. nats-server
 * starts its monitoring listener before JetStream and its client listener
 * after, so /healthz alone can be ok before clients are accepted; in a
 * cluster /healthz is only ok once a JetStream meta leader is known.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "natsutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define DEFAULT_TIMEOUT_MS 15000
#define DEFAULT_CLUSTER_TIMEOUT_MS 45000
#define STOP_GRACE_MS 5000
#define KILL_GRACE_MS 30000
#define START_ATTEMPTS 5
#define MAX_CLUSTER_NODES 32
#define LOG_TAIL_BYTES 65536

struct tu_nats {
    char *dir;       /* the caller's directory */
    char *conf_path; /* dir/nats.conf */
    char *log_path;  /* dir/nats-server.log */
    char *store_dir; /* dir/store (JetStream puts its files in store/jetstream) */
    char *user, *password, *tls_dir;
    bool tls, tls_verify;
    int timeout_ms;
    char name[64];         /* server_name */
    char cluster_name[64]; /* empty outside a cluster */
    char url[64];
    int port, http_port, cluster_port;
    pid_t pid;       /* 0 while not running */
    int last_status; /* wait status of the last exit, -1 if none */
    off_t log_mark;  /* size of the log when the process was last spawned */
    bool info_ok;    /* the client port answered with our INFO since the last spawn */
    char why[256];   /* why the server is not ready yet (last check) */
};

struct tu_nats_cluster {
    char *dir;
    int count;
    tu_nats **nodes;
    char *urls;
};

static atomic_int seq_counter;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("natsutil: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL) {
        say("out of memory");
        abort();
    }
    return d;
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0) {
        say("out of memory");
        abort();
    }
    return s;
}

/* Creates `path` and its missing parents; true when it exists afterwards. */
static bool mkdir_p(const char *path)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            say("cannot create %s: %s", p, strerror(errno));
            free(p);
            return false;
        }
        *s = '/';
    }
    bool ok = mkdir(p, 0755) == 0 || errno == EEXIST;
    if (!ok)
        say("cannot create %s: %s", p, strerror(errno));
    free(p);
    return ok;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rmtree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Finds an executable: `env` (if set and non-empty) wins, then each PATH
 * directory, then the fallback directories. Returns a malloc'ed path or
 * NULL. */
static char *find_program(const char *name, const char *env)
{
    const char *e = env ? getenv(env) : NULL;
    if (e != NULL && e[0] != '\0')
        return access(e, X_OK) == 0 ? xstrdup(e) : NULL;
    const char *path = getenv("PATH");
    char *dirs = xasprintf("%s:/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/bin:/sbin:/bin",
                           path ? path : "");
    char *save = NULL, *found = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        if (d[0] == '\0')
            continue;
        char *cand = xasprintf("%s/%s", d, name);
        if (access(cand, X_OK) == 0) {
            found = cand;
            break;
        }
        free(cand);
    }
    free(dirs);
    return found;
}

const char *tu_nats_server_path(void)
{
    static char path[PATH_MAX];
    char *p = find_program("nats-server", "TU_NATS_SERVER");
    if (p == NULL || strlen(p) >= sizeof path) {
        free(p);
        return NULL;
    }
    strcpy(path, p);
    free(p);
    return path;
}

/* ---- processes ---- */

/* Forks and execs argv[0] with standard input from /dev/null and standard
 * output and error appended to `log_path`. In the child only
 * async-signal-safe calls are made: everything is prepared here. */
static pid_t spawn_process(char *const argv[], const char *log_path, bool die_with_parent)
{
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        say("cannot open %s: %s", log_path, strerror(errno));
        return -1;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        say("cannot open /dev/null: %s", strerror(errno));
        close(logfd);
        return -1;
    }
    /* Where the child stops closing inherited descriptors when it has no
     * close_range(). */
    struct rlimit rl;
    int maxfd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)maxfd)
        maxfd = (int)rl.rlim_cur;
    sigset_t empty;
    sigemptyset(&empty);
    static const int reset_sigs[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGPIPE,
                                     SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD};
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
#ifdef __linux__
        if (die_with_parent) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
        }
#else
        (void)die_with_parent;
        (void)parent;
#endif
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
#ifdef SYS_close_range
        if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
#endif
            for (int fd = 3; fd < maxfd; fd++)
                close(fd);
        /* Ignored signals stay ignored across exec; the server needs its own. */
        for (size_t i = 0; i < sizeof reset_sigs / sizeof reset_sigs[0]; i++)
            signal(reset_sigs[i], SIG_DFL);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execv(argv[0], argv);
        static const char msg[] = "natsutil: exec failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int err = errno;
    close(logfd);
    close(nullfd);
    if (pid < 0) {
        say("fork failed: %s", strerror(err));
        return -1;
    }
    return pid;
}

/* Waits for `pid` at most timeout_ms (< 0: forever); true when it exited
 * (its wait status in *status, -1 if it was reaped elsewhere). */
static bool wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long long deadline = now_ms() + timeout_ms;
    int pause = 2;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid) {
            *status = st;
            return true;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *status = -1;
            return true;
        }
        if (now_ms() >= deadline)
            return false;
        sleep_ms(pause);
        if (pause < 50)
            pause *= 2;
    }
}

static void describe_status(int status, char *buf, size_t len)
{
    if (status == -1)
        snprintf(buf, len, "exited (reaped elsewhere)");
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "ended with wait status %d", status);
}

/* Runs a program to completion with its output appended to log_path;
 * true when it exited with status 0. */
static bool run_program(char *const argv[], const char *log_path)
{
    pid_t pid = spawn_process(argv, log_path, true);
    if (pid < 0)
        return false;
    int status;
    wait_exit(pid, -1, &status);
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- sockets ---- */

/* Connects to 127.0.0.1:port within timeout_ms; returns a non-blocking
 * socket or -1. */
static int connect_local(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int r;
    while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    int err = 0;
    socklen_t elen = sizeof err;
    if (r != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads into buf (NUL-terminated) until EOF, a full buffer, the deadline,
 * or - when `until` is not NULL - until `until` appears. Returns the length. */
static size_t read_until(int fd, char *buf, size_t cap, const char *until, long long deadline)
{
    size_t len = 0;
    buf[0] = '\0';
    while (len + 1 < cap) {
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (until != NULL && strstr(buf, until) != NULL)
            break;
    }
    return len;
}

static bool send_all(int fd, const char *data, size_t len, long long deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            long long left = deadline - now_ms();
            struct pollfd p = {fd, POLLOUT, 0};
            if (left <= 0 || poll(&p, 1, (int)left) == 0)
                return false;
            continue;
        }
        return false;
    }
    return true;
}

/* A plain HTTP/1.0 GET of http://127.0.0.1:port/path; returns the status
 * code (-1 when there was no answer) with the body in body[cap]. */
static int http_get(int port, const char *path, char *body, size_t cap, int timeout_ms)
{
    body[0] = '\0';
    long long deadline = now_ms() + timeout_ms;
    int fd = connect_local(port, timeout_ms);
    if (fd < 0)
        return -1;
    char req[512];
    int rl =
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    if (rl < 0 || (size_t)rl >= sizeof req || !send_all(fd, req, (size_t)rl, deadline)) {
        close(fd);
        return -1;
    }
    char *resp = malloc(cap + 1024);
    if (resp == NULL) {
        close(fd);
        return -1;
    }
    read_until(fd, resp, cap + 1024, NULL, deadline);
    close(fd);
    int code = -1;
    if (strncmp(resp, "HTTP/1.", 7) == 0 && strlen(resp) > 12)
        code = atoi(resp + 9);
    const char *b = strstr(resp, "\r\n\r\n");
    if (b != NULL)
        snprintf(body, cap, "%s", b + 4);
    free(resp);
    return code;
}

/* Picks `count` distinct free loopback ports: all are bound at once (so
 * they differ) and closed before returning. */
static bool pick_ports(int *ports, int count)
{
    int *fds = calloc((size_t)count, sizeof *fds);
    bool ok = fds != NULL;
    int opened = 0;
    for (int i = 0; ok && i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
            say("cannot pick a free port: %s", strerror(errno));
            if (fd >= 0)
                close(fd);
            ok = false;
            break;
        }
        fds[opened++] = fd;
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    free(fds);
    return ok;
}

/* ---- configuration ---- */

/* Writes s as a double-quoted nats-server configuration string. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

static void put_key(FILE *f, const char *indent, const char *key, const char *value)
{
    fprintf(f, "%s%s: ", indent, key);
    put_quoted(f, value);
    fputc('\n', f);
}

/* Writes n's configuration file; `routes` are the cluster ports of the
 * other nodes of its cluster. */
static bool write_config(const tu_nats *n, const int *routes, int nroutes)
{
    FILE *f = fopen(n->conf_path, "w");
    if (f == NULL) {
        say("cannot write %s: %s", n->conf_path, strerror(errno));
        return false;
    }
    char buf[64];
    fputs("# Written by tests/natsutil.c for one test run.\n", f);
    put_key(f, "", "server_name", n->name);
    snprintf(buf, sizeof buf, "127.0.0.1:%d", n->port);
    put_key(f, "", "listen", buf);
    snprintf(buf, sizeof buf, "127.0.0.1:%d", n->http_port);
    put_key(f, "", "http", buf);
    fputs("logtime: true\n", f);
    fputs("jetstream {\n", f);
    put_key(f, "    ", "store_dir", n->store_dir);
    fputs("    max_memory_store: 268435456\n", f);
    fputs("    max_file_store: 1073741824\n", f);
    fputs("}\n", f);
    if (n->user != NULL) {
        fputs("authorization {\n", f);
        put_key(f, "    ", "user", n->user);
        put_key(f, "    ", "password", n->password ? n->password : "");
        fputs("    timeout: 10\n", f);
        fputs("}\n", f);
    }
    if (n->tls) {
        char *cert = xasprintf("%s/server-cert.pem", n->tls_dir);
        char *key = xasprintf("%s/server-key.pem", n->tls_dir);
        char *ca = xasprintf("%s/ca.pem", n->tls_dir);
        fputs("tls {\n", f);
        put_key(f, "    ", "cert_file", cert);
        put_key(f, "    ", "key_file", key);
        put_key(f, "    ", "ca_file", ca);
        fprintf(f, "    verify: %s\n", n->tls_verify ? "true" : "false");
        fputs("    timeout: 10\n", f);
        fputs("}\n", f);
        free(cert);
        free(key);
        free(ca);
    }
    if (n->cluster_name[0] != '\0') {
        fputs("cluster {\n", f);
        put_key(f, "    ", "name", n->cluster_name);
        snprintf(buf, sizeof buf, "127.0.0.1:%d", n->cluster_port);
        put_key(f, "    ", "listen", buf);
        fputs("    routes: [\n", f);
        for (int i = 0; i < nroutes; i++) {
            snprintf(buf, sizeof buf, "nats-route://127.0.0.1:%d", routes[i]);
            fputs("        ", f);
            put_quoted(f, buf);
            fputs(",\n", f);
        }
        fputs("    ]\n", f);
        fputs("}\n", f);
    }
    bool ok = !ferror(f);
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        say("cannot write %s", n->conf_path);
    return ok;
}

static void set_ports(tu_nats *n, int port, int http_port, int cluster_port)
{
    n->port = port;
    n->http_port = http_port;
    n->cluster_port = cluster_port;
    snprintf(n->url, sizeof n->url, "%s://127.0.0.1:%d", n->tls ? "tls" : "nats", port);
}

static void node_free(tu_nats *n)
{
    if (n == NULL)
        return;
    free(n->dir);
    free(n->conf_path);
    free(n->log_path);
    free(n->store_dir);
    free(n->user);
    free(n->password);
    free(n->tls_dir);
    free(n);
}

/* Allocates a server that is not running yet, with its directory made. */
static tu_nats *node_new(const char *dir, const tu_nats_options *opts, const char *name,
                         const char *cluster_name, int default_timeout)
{
    tu_nats_options none = {0};
    if (opts == NULL)
        opts = &none;
    if (opts->tls && opts->tls_dir == NULL) {
        say("tls asked without tls_dir");
        return NULL;
    }
    /* libnats 3.4.1 puts user and password into its CONNECT JSON without
     * escaping them, so the server would reject the connection. */
    if ((opts->user && strpbrk(opts->user, "\"\\") != NULL) ||
        (opts->password && strpbrk(opts->password, "\"\\") != NULL)) {
        say("user and password must not contain '\"' or '\\' (libnats does not escape them)");
        return NULL;
    }
    if (!mkdir_p(dir))
        return NULL;
    tu_nats *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->dir = xstrdup(dir);
    n->conf_path = xasprintf("%s/nats.conf", dir);
    n->log_path = xasprintf("%s/nats-server.log", dir);
    n->store_dir = xasprintf("%s/store", dir);
    n->user = xstrdup(opts->user);
    n->password = xstrdup(opts->password);
    n->tls = opts->tls;
    n->tls_verify = opts->tls && opts->tls_verify;
    n->tls_dir = xstrdup(opts->tls_dir);
    n->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : default_timeout;
    n->last_status = -1;
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->cluster_name, sizeof n->cluster_name, "%s", cluster_name ? cluster_name : "");
    return n;
}

/* ---- one server ---- */

static bool reap_if_exited(tu_nats *n)
{
    if (n->pid <= 0)
        return true;
    int status;
    if (!wait_exit(n->pid, 0, &status))
        return false;
    n->pid = 0;
    n->last_status = status;
    return true;
}

/* True when the log written since the last spawn says a port was taken. */
static bool log_says_addr_in_use(const tu_nats *n)
{
    FILE *f = fopen(n->log_path, "r");
    if (f == NULL)
        return false;
    bool found = false;
    if (fseeko(f, n->log_mark, SEEK_SET) == 0) {
        char line[1024];
        while (!found && fgets(line, sizeof line, f) != NULL)
            found = strstr(line, "address already in use") != NULL;
    }
    fclose(f);
    return found;
}

bool tu_nats_spawn(tu_nats *n)
{
    if (n == NULL)
        return false;
    if (!reap_if_exited(n)) {
        say("%s is already running (pid %d)", n->name, (int)n->pid);
        return false;
    }
    const char *prog = tu_nats_server_path();
    if (prog == NULL) {
        say("nats-server not found (set TU_NATS_SERVER or PATH)");
        return false;
    }
    struct stat st;
    n->log_mark = stat(n->log_path, &st) == 0 ? st.st_size : 0;
    FILE *log = fopen(n->log_path, "a");
    if (log != NULL) {
        fprintf(log, "---- natsutil: starting %s -c %s (client port %d, monitor port %d) ----\n",
                prog, n->conf_path, n->port, n->http_port);
        fclose(log);
    }
    char *argv[] = {(char *)prog, (char *)"-c", n->conf_path, NULL};
    pid_t pid = spawn_process(argv, n->log_path, true);
    if (pid < 0)
        return false;
    n->pid = pid;
    n->info_ok = false;
    snprintf(n->why, sizeof n->why, "not checked yet");
    return true;
}

/* Copies the JSON string value of "key" in text (pretty-printed or not)
 * into out; false when there is none. */
static bool json_string(const char *text, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(text, pat);
    if (p == NULL)
        return false;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p++ != '"')
        return false;
    size_t i = 0;
    while (*p != '\0' && *p != '"' && i + 1 < len)
        out[i++] = *p++;
    out[i] = '\0';
    return *p == '"';
}

/* With TLS the client port is checked with a real libnats connection: a
 * bare probe that reads INFO and hangs up makes nats-server log "TLS
 * handshake error: EOF", which misleads whoever reads the log. The monitor
 * port (plain HTTP) tells this server's id, which the connection must see. */
static bool check_info_tls(tu_nats *n)
{
    char *varz = malloc(65536);
    if (varz == NULL)
        return false;
    char name[64], id[128] = "", got[128] = "";
    int code = http_get(n->http_port, "/varz", varz, 65536, 2000);
    bool ours = code == 200 && json_string(varz, "server_name", name, sizeof name) &&
                strcmp(name, n->name) == 0 && json_string(varz, "server_id", id, sizeof id);
    free(varz);
    if (!ours) {
        snprintf(n->why, sizeof n->why, "monitor port %d does not show this server (/varz %d)",
                 n->http_port, code);
        return false;
    }
    natsOptions *o = tu_nats_client_options(n);
    if (o == NULL) {
        snprintf(n->why, sizeof n->why, "no client options");
        return false;
    }
    natsOptions_SetAllowReconnect(o, false);
    natsOptions_SetTimeout(o, 2000);
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_Connect(&nc, o);
    if (s == NATS_OK)
        s = natsConnection_GetConnectedServerId(nc, got, sizeof got);
    if (s != NATS_OK)
        snprintf(n->why, sizeof n->why, "cannot connect to %s: %s (%.150s)", n->url,
                 natsStatus_GetText(s), nats_GetLastError(NULL));
    else if (strcmp(got, id) != 0)
        snprintf(n->why, sizeof n->why, "client port %d is served by another server", n->port);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return s == NATS_OK && strcmp(got, id) == 0;
}

/* The client port answers with an INFO line naming this server. */
static bool check_info(tu_nats *n)
{
    if (n->tls)
        return check_info_tls(n);
    int fd = connect_local(n->port, 1000);
    if (fd < 0) {
        snprintf(n->why, sizeof n->why, "client port %d does not accept connections", n->port);
        return false;
    }
    char buf[4096];
    read_until(fd, buf, sizeof buf, "\r\n", now_ms() + 2000);
    close(fd);
    char name[64];
    if (strncmp(buf, "INFO ", 5) != 0) {
        snprintf(n->why, sizeof n->why, "client port %d sent no INFO line", n->port);
        return false;
    }
    if (!json_string(buf, "server_name", name, sizeof name) || strcmp(name, n->name) != 0) {
        snprintf(n->why, sizeof n->why, "client port %d is served by another server", n->port);
        return false;
    }
    return true;
}

static bool check_health(tu_nats *n)
{
    char body[1024];
    int code = http_get(n->http_port, "/healthz", body, sizeof body, 2000);
    if (code == 200 && strstr(body, "\"ok\"") != NULL)
        return true;
    body[strcspn(body, "\r\n")] = '\0';
    if (code < 0)
        snprintf(n->why, sizeof n->why, "monitor port %d does not answer", n->http_port);
    else
        snprintf(n->why, sizeof n->why, "/healthz answered %d %.200s", code, body);
    return false;
}

enum { W_READY, W_EXITED, W_TIMEOUT };

/* Waits until all `count` servers are ready or `deadline` passes. A server
 * that exits ends the wait with W_EXITED (*failed is its index) unless
 * `respawn` is set and its log says its port was taken: it is then started
 * again after a pause. */
static int wait_all(tu_nats **nodes, int count, long long deadline, bool respawn, int *failed)
{
    int pause = 20;
    for (;;) {
        bool all = true;
        for (int i = 0; i < count; i++) {
            tu_nats *n = nodes[i];
            if (n->pid <= 0 || reap_if_exited(n)) {
                if (respawn && n->pid == 0 && log_says_addr_in_use(n) && now_ms() < deadline) {
                    sleep_ms(250);
                    if (tu_nats_spawn(n)) {
                        all = false;
                        continue;
                    }
                }
                *failed = i;
                return W_EXITED;
            }
            if (!n->info_ok)
                n->info_ok = check_info(n);
            if (!n->info_ok || !check_health(n))
                all = false;
        }
        if (all)
            return W_READY;
        if (now_ms() >= deadline) {
            for (int i = 0; i < count; i++) {
                /* Report the first node that is still not ready. */
                if (!nodes[i]->info_ok || !check_health(nodes[i])) {
                    *failed = i;
                    return W_TIMEOUT;
                }
            }
            return W_READY;
        }
        sleep_ms(pause);
        if (pause < 200)
            pause += 20;
    }
}

static void report(const tu_nats *n, int result, int timeout_ms)
{
    if (result == W_EXITED) {
        char st[96];
        describe_status(n->last_status, st, sizeof st);
        say("nats-server %s (%s) %s before it was ready", n->name, n->dir, st);
    } else {
        say("nats-server %s (%s) not ready after %d ms: %s", n->name, n->dir, timeout_ms, n->why);
    }
    tu_nats_dump_log(n);
}

/* Stops a server: `sig` (plus SIGCONT, so that a stopped server sees it),
 * then SIGKILL after grace_ms; the process is reaped. */
static void stop(tu_nats *n, int sig, int grace_ms)
{
    if (n == NULL || n->pid <= 0)
        return;
    kill(n->pid, sig);
    if (sig != SIGKILL && sig != SIGSTOP)
        kill(n->pid, SIGCONT);
    int status;
    if (!wait_exit(n->pid, grace_ms, &status)) {
        if (sig != SIGTERM)
            say("nats-server %s did not exit %d ms after signal %d; killing it", n->name, grace_ms,
                sig);
        kill(n->pid, SIGKILL);
        wait_exit(n->pid, -1, &status);
    }
    n->pid = 0;
    n->last_status = status;
}

bool tu_nats_wait_ready(tu_nats *n, int timeout_ms)
{
    if (n == NULL)
        return false;
    if (timeout_ms <= 0)
        timeout_ms = n->timeout_ms;
    int failed;
    int r = wait_all(&n, 1, now_ms() + timeout_ms, false, &failed);
    if (r != W_READY)
        report(n, r, timeout_ms);
    return r == W_READY;
}

tu_nats *tu_nats_start(const char *dir, const tu_nats_options *opts)
{
    char name[64];
    snprintf(name, sizeof name, "tu-%d-%d", (int)getpid(), atomic_fetch_add(&seq_counter, 1) + 1);
    tu_nats *n = node_new(dir, opts, name, NULL, DEFAULT_TIMEOUT_MS);
    if (n == NULL)
        return NULL;
    long long deadline = now_ms() + n->timeout_ms;
    for (int attempt = 1;; attempt++) {
        int ports[2];
        if (!pick_ports(ports, 2))
            break;
        set_ports(n, ports[0], ports[1], 0);
        if (!write_config(n, NULL, 0) || !tu_nats_spawn(n))
            break;
        int failed;
        int r = wait_all(&n, 1, deadline, false, &failed);
        if (r == W_READY)
            return n;
        if (r == W_EXITED && attempt < START_ATTEMPTS && log_says_addr_in_use(n)) {
            say("nats-server %s: a port was taken, retrying with others", n->name);
            continue;
        }
        report(n, r, n->timeout_ms);
        break;
    }
    stop(n, SIGKILL, STOP_GRACE_MS);
    node_free(n);
    return NULL;
}

bool tu_nats_restart(tu_nats *n)
{
    if (n == NULL || !tu_nats_spawn(n))
        return false;
    int failed;
    int r = wait_all(&n, 1, now_ms() + n->timeout_ms, true, &failed);
    if (r == W_READY)
        return true;
    report(n, r, n->timeout_ms);
    return false;
}

const char *tu_nats_url(const tu_nats *n)
{
    return n->url;
}

int tu_nats_port(const tu_nats *n)
{
    return n->port;
}

int tu_nats_http_port(const tu_nats *n)
{
    return n->http_port;
}

int tu_nats_cluster_port(const tu_nats *n)
{
    return n->cluster_port;
}

const char *tu_nats_name(const tu_nats *n)
{
    return n->name;
}

pid_t tu_nats_pid(const tu_nats *n)
{
    return n->pid;
}

bool tu_nats_running(tu_nats *n)
{
    return n != NULL && !reap_if_exited(n);
}

const char *tu_nats_dir(const tu_nats *n)
{
    return n->dir;
}

const char *tu_nats_log_path(const tu_nats *n)
{
    return n->log_path;
}

void tu_nats_kill(tu_nats *n, int sig)
{
    stop(n, sig, KILL_GRACE_MS);
}

bool tu_nats_signal(tu_nats *n, int sig)
{
    if (!tu_nats_running(n))
        return false;
    return kill(n->pid, sig) == 0;
}

void tu_nats_destroy(tu_nats *n)
{
    if (n == NULL)
        return;
    stop(n, SIGTERM, STOP_GRACE_MS);
    node_free(n);
}

void tu_nats_dump_log(const tu_nats *n)
{
    if (n == NULL)
        return;
    FILE *f = fopen(n->log_path, "r");
    fprintf(stderr, "---- %s: %s ----\n", n->name, n->log_path);
    if (f == NULL) {
        fprintf(stderr, "(cannot open: %s)\n", strerror(errno));
    } else {
        if (fseeko(f, 0, SEEK_END) == 0) {
            off_t size = ftello(f);
            if (size > LOG_TAIL_BYTES) {
                fseeko(f, size - LOG_TAIL_BYTES, SEEK_SET);
                fprintf(stderr, "(last %d bytes)\n", LOG_TAIL_BYTES);
            } else {
                fseeko(f, 0, SEEK_SET);
            }
        }
        char chunk[4096];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
            fwrite(chunk, 1, got, stderr);
        fclose(f);
    }
    fprintf(stderr, "---- end of %s ----\n", n->name);
    fflush(stderr);
}

/* ---- clients ---- */

/* Client options for `count` URLs and the authentication and TLS
 * settings of `cfg`. */
static natsOptions *client_options(const char **urls, int count, const tu_nats *cfg)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, urls, count);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 5000);
    if (s == NATS_OK && cfg->user != NULL)
        s = natsOptions_SetUserInfo(o, cfg->user, cfg->password ? cfg->password : "");
    if (s == NATS_OK && cfg->tls) {
        char *ca = xasprintf("%s/ca.pem", cfg->tls_dir);
        char *cert = xasprintf("%s/client-cert.pem", cfg->tls_dir);
        char *key = xasprintf("%s/client-key.pem", cfg->tls_dir);
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(o, ca);
        if (s == NATS_OK)
            s = natsOptions_LoadCertificatesChain(o, cert, key);
        free(ca);
        free(cert);
        free(key);
    }
    if (s != NATS_OK) {
        say("cannot make client options: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
        natsOptions_Destroy(o);
        return NULL;
    }
    return o;
}

natsOptions *tu_nats_client_options(const tu_nats *n)
{
    const char *url = n->url;
    return client_options(&url, 1, n);
}

natsConnection *tu_nats_connect(const tu_nats *n)
{
    natsOptions *o = tu_nats_client_options(n);
    if (o == NULL)
        return NULL;
    natsConnection *nc = NULL;
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        say("cannot connect to %s: %s (%s)", n->url, natsStatus_GetText(s),
            nats_GetLastError(NULL));
        return NULL;
    }
    return nc;
}

/* ---- clusters ---- */

static void cluster_free(tu_nats_cluster *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->count; i++)
        node_free(c->nodes[i]);
    free(c->nodes);
    free(c->urls);
    free(c->dir);
    free(c);
}

/* Stops every running node: `sig` to all first, then each is reaped, with
 * SIGKILL for those still running grace_ms after the signal. */
static void cluster_stop(tu_nats_cluster *c, int sig, int grace_ms)
{
    for (int i = 0; i < c->count; i++) {
        tu_nats *n = c->nodes[i];
        if (n->pid > 0) {
            kill(n->pid, sig);
            if (sig != SIGKILL)
                kill(n->pid, SIGCONT);
        }
    }
    long long deadline = now_ms() + grace_ms;
    for (int i = 0; i < c->count; i++) {
        long long left = deadline - now_ms();
        stop(c->nodes[i], SIGKILL, left > 0 ? (int)left : 0);
    }
}

/* Picks ports for every node and writes the configuration files. */
static bool cluster_configure(tu_nats_cluster *c)
{
    int *ports = calloc((size_t)c->count * 3, sizeof *ports);
    int *routes = calloc((size_t)c->count, sizeof *routes);
    bool ok = ports != NULL && routes != NULL && pick_ports(ports, c->count * 3);
    for (int i = 0; ok && i < c->count; i++)
        set_ports(c->nodes[i], ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
    for (int i = 0; ok && i < c->count; i++) {
        int nr = 0;
        for (int j = 0; j < c->count; j++)
            if (j != i)
                routes[nr++] = c->nodes[j]->cluster_port;
        ok = write_config(c->nodes[i], routes, nr);
    }
    free(ports);
    free(routes);
    if (ok) {
        free(c->urls);
        size_t len = (size_t)c->count * 64 + 1;
        c->urls = malloc(len);
        if (c->urls == NULL)
            return false;
        c->urls[0] = '\0';
        for (int i = 0; i < c->count; i++) {
            if (i > 0)
                strcat(c->urls, ",");
            strcat(c->urls, c->nodes[i]->url);
        }
    }
    return ok;
}

tu_nats_cluster *tu_nats_cluster_start(const char *dir, int nodes)
{
    return tu_nats_cluster_start_opts(dir, nodes, NULL);
}

tu_nats_cluster *tu_nats_cluster_start_opts(const char *dir, int nodes, const tu_nats_options *opts)
{
    if (nodes < 1 || nodes > MAX_CLUSTER_NODES) {
        say("a cluster has 1 to %d nodes, not %d", MAX_CLUSTER_NODES, nodes);
        return NULL;
    }
    if (!mkdir_p(dir))
        return NULL;
    tu_nats_cluster *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->dir = xstrdup(dir);
    c->nodes = calloc((size_t)nodes, sizeof *c->nodes);
    if (c->nodes == NULL) {
        cluster_free(c);
        return NULL;
    }
    int id = atomic_fetch_add(&seq_counter, 1) + 1;
    char cluster_name[64];
    snprintf(cluster_name, sizeof cluster_name, "tu-%d-%d", (int)getpid(), id);
    for (int i = 0; i < nodes; i++) {
        char *ndir = xasprintf("%s/n%d", dir, i + 1);
        char name[64];
        snprintf(name, sizeof name, "n%d-%d-%d", i + 1, (int)getpid(), id);
        c->nodes[i] = node_new(ndir, opts, name, cluster_name, DEFAULT_CLUSTER_TIMEOUT_MS);
        free(ndir);
        if (c->nodes[i] == NULL) {
            cluster_free(c);
            return NULL;
        }
        c->count = i + 1;
    }
    int timeout = c->nodes[0]->timeout_ms;
    long long deadline = now_ms() + timeout;
    for (int attempt = 1;; attempt++) {
        if (!cluster_configure(c))
            break;
        bool spawned = true;
        for (int i = 0; spawned && i < nodes; i++)
            spawned = tu_nats_spawn(c->nodes[i]);
        if (!spawned)
            break;
        int failed = 0;
        int r = wait_all(c->nodes, nodes, deadline, false, &failed);
        if (r == W_READY)
            return c;
        if (r == W_EXITED && attempt < START_ATTEMPTS && log_says_addr_in_use(c->nodes[failed])) {
            say("cluster %s: a port was taken, retrying with others", cluster_name);
            cluster_stop(c, SIGKILL, STOP_GRACE_MS);
            /* A fresh start: no JetStream state from the attempt before. */
            for (int i = 0; i < nodes; i++)
                rmtree(c->nodes[i]->store_dir);
            continue;
        }
        report(c->nodes[failed], r, timeout);
        for (int i = 0; i < nodes; i++)
            if (i != failed)
                tu_nats_dump_log(c->nodes[i]);
        break;
    }
    cluster_stop(c, SIGKILL, STOP_GRACE_MS);
    cluster_free(c);
    return NULL;
}

int tu_nats_cluster_size(const tu_nats_cluster *c)
{
    return c->count;
}

tu_nats *tu_nats_cluster_node(tu_nats_cluster *c, int i)
{
    return c != NULL && i >= 0 && i < c->count ? c->nodes[i] : NULL;
}

const char *tu_nats_cluster_urls(const tu_nats_cluster *c)
{
    return c->urls;
}

natsOptions *tu_nats_cluster_client_options(const tu_nats_cluster *c)
{
    const char *urls[MAX_CLUSTER_NODES];
    for (int i = 0; i < c->count; i++)
        urls[i] = c->nodes[i]->url;
    return client_options(urls, c->count, c->nodes[0]);
}

bool tu_nats_cluster_restart(tu_nats_cluster *c)
{
    for (int i = 0; i < c->count; i++)
        if (!tu_nats_running(c->nodes[i]) && !tu_nats_spawn(c->nodes[i]))
            return false;
    int timeout = c->nodes[0]->timeout_ms;
    int failed = 0;
    int r = wait_all(c->nodes, c->count, now_ms() + timeout, true, &failed);
    if (r == W_READY)
        return true;
    report(c->nodes[failed], r, timeout);
    return false;
}

/* One stream info request, answered within wait_ms, through the running
 * nodes. */
static int stream_leader(tu_nats_cluster *c, const char *stream, int wait_ms)
{
    const char *urls[MAX_CLUSTER_NODES];
    int count = 0;
    for (int i = 0; i < c->count; i++)
        if (tu_nats_running(c->nodes[i]))
            urls[count++] = c->nodes[i]->url;
    if (count == 0)
        return -1;
    natsOptions *o = client_options(urls, count, c->nodes[0]);
    if (o == NULL)
        return -1;
    natsOptions_SetAllowReconnect(o, false);
    natsOptions_SetTimeout(o, 2000);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    int leader = -1;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = wait_ms;
    jsErrCode jerr = 0;
    if (natsConnection_Connect(&nc, o) == NATS_OK &&
        natsConnection_JetStream(&js, nc, &jo) == NATS_OK &&
        js_GetStreamInfo(&si, js, stream, NULL, &jerr) == NATS_OK && si->Cluster != NULL &&
        si->Cluster->Leader != NULL) {
        for (int i = 0; i < c->count; i++)
            if (strcmp(si->Cluster->Leader, c->nodes[i]->name) == 0)
                leader = i;
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return leader;
}

int tu_nats_cluster_stream_leader(tu_nats_cluster *c, const char *stream)
{
    return stream_leader(c, stream, 3000);
}

int tu_nats_cluster_wait_stream_leader(tu_nats_cluster *c, const char *stream, int not_node,
                                       int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        /* A stream without a leader leaves the request unanswered: keep the
         * wait short to notice a new leader soon. */
        int leader = stream_leader(c, stream, 1000);
        if (leader >= 0 && leader != not_node)
            return leader;
        if (now_ms() >= deadline)
            return -1;
        sleep_ms(100);
    }
}

void tu_nats_cluster_destroy(tu_nats_cluster *c)
{
    if (c == NULL)
        return;
    cluster_stop(c, SIGTERM, STOP_GRACE_MS);
    cluster_free(c);
}

void tu_nats_cluster_dump_logs(const tu_nats_cluster *c)
{
    for (int i = 0; c != NULL && i < c->count; i++)
        tu_nats_dump_log(c->nodes[i]);
}

/* ---- certificates ---- */

static const char openssl_conf[] = "# Written by tests/natsutil.c.\n"
                                   "[req]\n"
                                   "distinguished_name = dn\n"
                                   "[dn]\n"
                                   "[ca_ext]\n"
                                   "basicConstraints = critical, CA:TRUE\n"
                                   "keyUsage = critical, keyCertSign, cRLSign\n"
                                   "subjectKeyIdentifier = hash\n"
                                   "[server_ext]\n"
                                   "basicConstraints = critical, CA:FALSE\n"
                                   "keyUsage = critical, digitalSignature\n"
                                   "extendedKeyUsage = serverAuth\n"
                                   "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                                   "subjectKeyIdentifier = hash\n"
                                   "authorityKeyIdentifier = keyid\n"
                                   "[client_ext]\n"
                                   "basicConstraints = critical, CA:FALSE\n"
                                   "keyUsage = critical, digitalSignature\n"
                                   "extendedKeyUsage = clientAuth\n"
                                   "subjectAltName = DNS:tu-nats-client\n"
                                   "subjectKeyIdentifier = hash\n"
                                   "authorityKeyIdentifier = keyid\n";

/* Makes `base`-key.pem and a certificate `base`-cert.pem signed by the CA
 * in dir, with the extensions of section `ext`. */
static bool make_signed_cert(const char *openssl, const char *dir, const char *conf,
                             const char *log, const char *base, const char *cn, const char *ext,
                             long serial)
{
    char *key = xasprintf("%s/%s-key.pem", dir, base);
    char *csr = xasprintf("%s/%s.csr", dir, base);
    char *cert = xasprintf("%s/%s-cert.pem", dir, base);
    char *ca = xasprintf("%s/ca.pem", dir);
    char *ca_key = xasprintf("%s/ca-key.pem", dir);
    char *subj = xasprintf("/CN=%s", cn);
    char *ser = xasprintf("%ld", serial);
    char *req[] = {(char *)openssl,
                   "req",
                   "-new",
                   "-newkey",
                   "ec",
                   "-pkeyopt",
                   "ec_paramgen_curve:prime256v1",
                   "-nodes",
                   "-keyout",
                   key,
                   "-out",
                   csr,
                   "-subj",
                   subj,
                   "-config",
                   (char *)conf,
                   NULL};
    char *sign[] = {
        (char *)openssl, "x509",       "-req",        "-in",       csr,     "-CA",  ca,
        "-CAkey",        ca_key,       "-set_serial", ser,         "-days", "3650", "-sha256",
        "-extfile",      (char *)conf, "-extensions", (char *)ext, "-out",  cert,   NULL};
    bool ok = run_program(req, log) && run_program(sign, log);
    remove(csr);
    free(key);
    free(csr);
    free(cert);
    free(ca);
    free(ca_key);
    free(subj);
    free(ser);
    return ok;
}

bool tu_nats_make_certs(const char *dir)
{
    if (!mkdir_p(dir))
        return false;
    char *openssl = find_program("openssl", NULL);
    if (openssl == NULL) {
        say("openssl not found");
        return false;
    }
    char *conf = xasprintf("%s/openssl.cnf", dir);
    char *log = xasprintf("%s/openssl.log", dir);
    char *ca = xasprintf("%s/ca.pem", dir);
    char *ca_key = xasprintf("%s/ca-key.pem", dir);
    bool ok = false;
    FILE *f = fopen(conf, "w");
    if (f != NULL) {
        ok = fputs(openssl_conf, f) >= 0;
        ok = fclose(f) == 0 && ok;
    }
    if (!ok) {
        say("cannot write %s", conf);
    } else {
        char *mkca[] = {openssl,
                        "req",
                        "-x509",
                        "-new",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        ca_key,
                        "-out",
                        ca,
                        "-days",
                        "3650",
                        "-sha256",
                        "-subj",
                        "/CN=natsutil test CA",
                        "-config",
                        conf,
                        "-extensions",
                        "ca_ext",
                        NULL};
        /* Serial numbers only need to differ between certificates of one CA. */
        long serial = (long)time(NULL) % 1000000000L * 10;
        ok = run_program(mkca, log) &&
             make_signed_cert(openssl, dir, conf, log, "server", "localhost", "server_ext",
                              serial + 1) &&
             make_signed_cert(openssl, dir, conf, log, "client", "tu-nats-client", "client_ext",
                              serial + 2);
        if (!ok) {
            say("openssl failed making certificates in %s; its output:", dir);
            FILE *lf = fopen(log, "r");
            if (lf != NULL) {
                char chunk[4096];
                size_t got;
                while ((got = fread(chunk, 1, sizeof chunk, lf)) > 0)
                    fwrite(chunk, 1, got, stderr);
                fclose(lf);
            }
        }
    }
    free(openssl);
    free(conf);
    free(log);
    free(ca);
    free(ca_key);
    return ok;
}

tu_nats *tu_nats_start_tls(const char *root)
{
    char certs[600], dir[600];
    snprintf(certs, sizeof certs, "%s/certs", root);
    snprintf(dir, sizeof dir, "%s/nats", root);
    if (!tu_nats_make_certs(certs))
        return NULL;
    tu_nats_options o = {0};
    o.tls = true;
    o.tls_dir = certs;
    o.tls_verify = true;
    return tu_nats_start(dir, &o);
}
