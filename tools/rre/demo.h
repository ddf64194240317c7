/*
 * demo.h - the pipeline demo of `rre demo`: the coordinators of the seed's
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

#endif
