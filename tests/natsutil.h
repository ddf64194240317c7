/*
 * natsutil.h - helpers for tests that need real nats-server processes: a
 * single JetStream server, a JetStream cluster on loopback, and throw-away
 * TLS certificates.
 *
 * Every server runs as a child process of the test with its configuration
 * file, JetStream store and log file in a directory that the caller owns
 * (the helpers create it, but never remove it: use tu_rmtree() or the like
 * after destroying the servers). The helpers do not depend on cmocka; they
 * use libnats only to build client options and to ask a cluster where a
 * stream's leader is.
 *
 * Servers are started with fork() and exec() and, on Linux, are killed by
 * the kernel when the thread that started them exits (PR_SET_PDEATHSIG),
 * so a crashing test leaves no server behind. Start, kill and restart
 * servers from the same thread, one that outlives them (normally the main
 * thread). None of the functions are thread-safe for the same server.
 *
 * The nats-server program is taken from the TU_NATS_SERVER environment
 * variable, else from PATH, else from /usr/sbin, /usr/local/sbin and
 * /usr/local/bin.
 */
#ifndef RRE_NATSUTIL_H
#define RRE_NATSUTIL_H

#include <stdbool.h>
#include <sys/types.h>

#include <nats/nats.h>

/* One nats-server process (running or not) and everything needed to start
 * it again. */
typedef struct tu_nats tu_nats;

/* How a server is set up; a zeroed struct (or a NULL pointer) means a plain
 * server without authentication or TLS. The strings are copied. */
typedef struct tu_nats_options {
    const char *user, *password; /* NULL user: no authentication; neither may contain '"' or
                                    '\\' (libnats 3.4.1 does not escape them in CONNECT) */
    bool tls;                    /* serve TLS with the certificates in tls_dir */
    const char *tls_dir;         /* made by tu_nats_make_certs(): ca.pem, server-cert.pem,
                                    server-key.pem, client-cert.pem, client-key.pem */
    bool tls_verify;             /* with tls: require a client certificate signed by ca.pem */
    int timeout_ms;              /* how long to wait for readiness; 0: 15 s (45 s for a cluster) */
} tu_nats_options;

/* Returns the path of the nats-server program, or NULL when there is none
 * (a test may then skip). The string is static. */
const char *tu_nats_server_path(void);

/* Starts `nats-server -c DIR/nats.conf` with JetStream (store under
 * DIR/store, 256 MB memory and 1 GB file limits) on free loopback client
 * and monitoring ports; DIR is created if missing and the server's output
 * goes to DIR/nats-server.log. Returns once the server accepts client
 * connections and its /healthz monitoring endpoint reports JetStream ready,
 * retrying with other ports when a port was taken in the meantime. Returns
 * NULL, after a message (and the server log) on stderr, when the server
 * could not be started within the timeout. opts may be NULL. */
tu_nats *tu_nats_start(const char *dir, const tu_nats_options *opts);

/* Makes certificates under ROOT/certs (tu_nats_make_certs()) and starts a
 * server under ROOT/nats that serves TLS with them and requires a client
 * certificate signed by their CA. NULL (said on stderr) on failure. */
tu_nats *tu_nats_start_tls(const char *root);

/* The client URL, "nats://127.0.0.1:PORT" ("tls://..." with TLS). */
const char *tu_nats_url(const tu_nats *n);
/* The client port, the monitoring (HTTP) port, and the cluster port (0
 * outside a cluster). */
int tu_nats_port(const tu_nats *n);
int tu_nats_http_port(const tu_nats *n);
int tu_nats_cluster_port(const tu_nats *n);
/* The server's server_name (unique per process and server; JetStream
 * reports stream and meta leaders by this name). */
const char *tu_nats_name(const tu_nats *n);
/* The process id, or 0 while the server is not running. */
pid_t tu_nats_pid(const tu_nats *n);
/* Whether the server process is alive (it is reaped if it has exited). */
bool tu_nats_running(tu_nats *n);
/* The directory given to tu_nats_start() and the server's log file. */
const char *tu_nats_dir(const tu_nats *n);
const char *tu_nats_log_path(const tu_nats *n);

/* Sends `sig` to the server and waits until the process has exited and is
 * reaped. A signal that does not end nats-server (SIGHUP reloads its
 * configuration, SIGUSR2 starts lame duck mode) is followed by SIGKILL
 * after 30 s, with a message on stderr, so that the call always returns.
 * Nothing happens when the server is not running. */
void tu_nats_kill(tu_nats *n, int sig);

/* Sends `sig` (e.g. SIGSTOP or SIGCONT) to the running server without
 * waiting for anything; returns false when the server is not running. */
bool tu_nats_signal(tu_nats *n, int sig);

/* Starts a server that is not running (after tu_nats_kill() or a crash)
 * again with the same configuration, ports and store, and waits until it
 * is ready as tu_nats_start() does. Returns false, after a message on
 * stderr, when it could not be started or did not become ready. */
bool tu_nats_restart(tu_nats *n);

/* The two halves of tu_nats_restart(): starting the process, and waiting
 * at most timeout_ms (<= 0: the server's default timeout) until it accepts
 * connections and /healthz is ok. A node of a cluster only becomes ready
 * once a quorum of its cluster is up, hence the split. */
bool tu_nats_spawn(tu_nats *n);
bool tu_nats_wait_ready(tu_nats *n, int timeout_ms);

/* Stops the server (SIGTERM, then SIGKILL after 5 s), reaps it and frees
 * `n`. The directory is left as it is. NULL is ignored. */
void tu_nats_destroy(tu_nats *n);

/* Prints the server's log file (its last 64 KiB) to stderr. */
void tu_nats_dump_log(const tu_nats *n);

/* Client options for the server: its URL, the user and password, and with
 * TLS the CA and the client certificate. Returns NULL on failure; the
 * caller destroys the options with natsOptions_Destroy(). */
natsOptions *tu_nats_client_options(const tu_nats *n);

/* Connects to the server with tu_nats_client_options(); returns NULL,
 * after a message on stderr, on failure. */
natsConnection *tu_nats_connect(const tu_nats *n);

/* A JetStream cluster of nats-server processes on loopback. */
typedef struct tu_nats_cluster tu_nats_cluster;

/* Starts a cluster of `nodes` servers (1 to 32) with JetStream: node i
 * (0-based) has its directory DIR/n<i+1>, its own client, monitoring and
 * cluster ports, and routes to all the other nodes. Returns once every node
 * accepts connections and reports /healthz ok, which in a cluster means
 * that a JetStream meta leader has been elected and is known to every node.
 * Returns NULL, after a message on stderr, on failure. */
tu_nats_cluster *tu_nats_cluster_start(const char *dir, int nodes);
/* The same with options (authentication and client TLS apply to every
 * node; the routes between the nodes are plain). opts may be NULL. */
tu_nats_cluster *tu_nats_cluster_start_opts(const char *dir, int nodes,
                                            const tu_nats_options *opts);

/* The number of nodes and node i (0-based; NULL when out of range). The
 * node belongs to the cluster: kill and restart it, but do not destroy it. */
int tu_nats_cluster_size(const tu_nats_cluster *c);
tu_nats *tu_nats_cluster_node(tu_nats_cluster *c, int i);

/* All client URLs, comma-separated: "nats://127.0.0.1:p1,nats://127.0.0.1:p2,...". */
const char *tu_nats_cluster_urls(const tu_nats_cluster *c);

/* Client options for the whole cluster (all URLs), as
 * tu_nats_client_options() gives for one server. */
natsOptions *tu_nats_cluster_client_options(const tu_nats_cluster *c);

/* Spawns every node that is not running, then waits until all nodes are
 * ready; returns false, after a message on stderr, on failure. */
bool tu_nats_cluster_restart(tu_nats_cluster *c);

/* The index of the node that leads JetStream stream `stream`, found by a
 * stream info request through the running nodes, or -1 when the stream
 * has no leader (or does not exist, or no node answers). */
int tu_nats_cluster_stream_leader(tu_nats_cluster *c, const char *stream);

/* Calls tu_nats_cluster_stream_leader() until it finds a leader that is
 * not `not_node` (-1: any leader) or timeout_ms have passed; returns the
 * leader's index or -1. */
int tu_nats_cluster_wait_stream_leader(tu_nats_cluster *c, const char *stream, int not_node,
                                       int timeout_ms);

/* Stops all nodes (SIGTERM to all at once, then SIGKILL after 5 s), reaps
 * them and frees the cluster. NULL is ignored. */
void tu_nats_cluster_destroy(tu_nats_cluster *c);

/* Prints every node's log to stderr. */
void tu_nats_cluster_dump_logs(const tu_nats_cluster *c);

/* Makes, with the openssl command line, a CA and certificates signed by it
 * in dir (created if missing): ca.pem and ca-key.pem; server-cert.pem and
 * server-key.pem for 127.0.0.1 and localhost; client-cert.pem and
 * client-key.pem for client authentication. Keys are ECDSA P-256 and the
 * certificates are valid for ten years. Returns false, after a message on
 * stderr, on failure. */
bool tu_nats_make_certs(const char *dir);

#endif
