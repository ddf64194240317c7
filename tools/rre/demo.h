/*
 * demo.h - the pipeline demo of `rre demo`: the coordinators of the catalog's
 * flows, each run in a process of its own, talking only through events on
 * the durable queue.
 */
#ifndef RRE_DEMO_H
#define RRE_DEMO_H

#include <rre/rre.h>

#include <sys/types.h>

#define DEMO_MAX_CONFIGS 16

/* The coordinators, one process each. */
enum demo_role {
    ROLE_SELFPLAY,
    ROLE_SYNC,
    ROLE_EXPORT,
    ROLE_TRAINING,
    ROLE_EVALUATION,
    ROLE_PROMOTION,
    ROLE_DISTRIBUTION,
    ROLE_QUALITY,
    ROLE_ROLLBACK,
    ROLE_COUNT
};

/* Faults, each injected once at a scheduled (config, iteration). */
enum demo_fault {
    FAULT_STORM,            /* an echo loop re-emits the same event: dedup absorbs it */
    FAULT_TRAINING_FAILURE, /* TRAINING_FAILED instead of TRAINING_COMPLETED */
    FAULT_QUALITY_DROP, /* QUALITY_DEGRADED -> QUALITY_PENALTY_APPLIED -> SELFPLAY_RATE_CHANGED */
    FAULT_REGRESSION,   /* REGRESSION_DETECTED -> rollback -> recovery -> CACHE_INVALIDATED */
    FAULT_COUNT
};

struct demo_config {
    char db_path[4096];
    /* The host this coordinator runs on (--hosts): its queue writes this
     * name and the bridge of that host carries its events. "" on one host. */
    char hostname[64];
    /* Which configs the selfplay and sync coordinators of this host run
     * (several selfplay hosts share the configs out); all on one host. */
    bool owns[DEMO_MAX_CONFIGS];
    pid_t driver_pid; /* a coordinator whose parent is no longer this process stops */
    int64_t start_id; /* events after this id may belong to this run */
    /* Carried as "demo_run" in every payload of this run: it keeps the
     * payloads of a run distinct from those of an earlier run on the same
     * database (which dedup would otherwise drop), and tells this run's
     * events from those of other producers of the database. */
    char run_id[64];
    int iterations;
    size_t config_count;
    char configs[DEMO_MAX_CONFIGS][RRE_CONFIG_KEY_MAX];
    /* Where each fault happens: config index and iteration (0: not at all). */
    size_t fault_config[FAULT_COUNT];
    int fault_iteration[FAULT_COUNT];
    int storm_repeats;
    int pace_ms; /* each coordinator works this long on a stage, so people can follow */
};

/* The name of a role ("selfplay", ...). */
const char *demo_role_name(enum demo_role role);
const char *demo_fault_name(enum demo_fault fault);

/* Runs one coordinator until the demo's shutdown event arrives; returns the
 * process exit status. Call in a child process that has no other threads. */
int demo_run_role(enum demo_role role, const struct demo_config *cfg);

/* The name of the source the demo driver publishes as, and the value of
 * coordinator_name in the COORDINATOR_SHUTDOWN event that ends the demo. */
#define DEMO_DRIVER_NAME "demo"

/* The payload field that carries demo_config.run_id. */
#define DEMO_RUN_FIELD "demo_run"

/* True when `payload` carries `run_id` under DEMO_RUN_FIELD. */
bool demo_is_own_event(const json_t *payload, const char *run_id);

/* ------------------------------------------------------------------------ */
/* Several simulated hosts (demo_hosts.c)                                    */
/* ------------------------------------------------------------------------ */

#define DEMO_MAX_HOSTS 8

#include <pthread.h>

struct demo_host {
    char name[64];
    char dir[320];
    char db[400];
    rre_queue *queue;   /* the driver's handle, used by the bridge */
    rre_bridge *bridge; /* runs on `thread` in the driver */
    pthread_t thread;
    bool thread_started;
    rre_status run_status;
    char error[512];
};

struct demo_hosts {
    int count;
    char root[256];    /* the run's temporary directory */
    char servers[512]; /* the NATS URL(s) */
    pid_t nats_pid;    /* the private nats-server, 0 when --nats was given */
    struct demo_host host[DEMO_MAX_HOSTS];
};

/* "demo-trainer" for host 0, "demo-selfplay-N" for the others. */
const char *demo_host_name(int index);
/* Names the hosts, makes their directories under hs->root, and starts a
 * private nats-server unless nats_url is given. CLI_OK or CLI_FAIL (said). */
int demo_hosts_prepare(struct demo_hosts *hs, const char *nats_url);
/* Opens each host's queue and runs its bridge; waits until all are ready.
 * Each imports what the stream received from start_time on. */
int demo_hosts_start_bridges(struct demo_hosts *hs, double start_time);
/* Prints each bridge's counters and, from each host's queue, how many of
 * the run's events of each other host it holds. */
void demo_hosts_print_summary(const struct demo_hosts *hs, const char *run_id);
void demo_hosts_stop_bridges(struct demo_hosts *hs);
/* Stops the bridges, closes the queues, stops a private nats-server. */
void demo_hosts_destroy(struct demo_hosts *hs);

#endif
