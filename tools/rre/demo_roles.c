/*
 * demo_roles.c - the coordinators of the pipeline demo.
 *
 * Each coordinator is a process with a router (strict validation) linked to
 * the durable queue. It subscribes to the events that start its stage and
 * publishes what the catalog's flows say that stage publishes. Every payload
 * carries config_key and iteration so that the next stage, the flow checker
 * and the progress display can follow one config through its iterations,
 * and the run's id (demo_run), so that a run on a database that holds an
 * earlier run is not taken for a repeat of it and ignores other producers.
 *
 * The iteration of a config ends with MODEL_DISTRIBUTION_COMPLETE (promoted),
 * CACHE_INVALIDATED (regression rolled back) or TRAINING_FAILED; the selfplay
 * coordinator then starts the next one until the configured count is done.
 */
#include "demo.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct role_ctx {
    enum demo_role role;
    const struct demo_config *cfg;
    rre_router *router;
    char source[160];
    atomic_bool stop;
    unsigned publish_errors;
    /* selfplay: the current rate multiplier per config (SELFPLAY_RATE_CHANGED). */
    double rate[DEMO_MAX_CONFIGS];
    /* evaluation: the best Elo per config so far. */
    double best_elo[DEMO_MAX_CONFIGS];
};

static const char *const role_names[ROLE_COUNT] = {
    "selfplay",  "sync",         "export",  "training", "evaluation",
    "promotion", "distribution", "quality", "rollback",
};

const char *demo_role_name(enum demo_role role)
{
    return role < ROLE_COUNT ? role_names[role] : "unknown";
}

const char *demo_fault_name(enum demo_fault fault)
{
    static const char *const names[FAULT_COUNT] = {"dedup storm", "training failure",
                                                   "quality drop", "regression"};
    return fault < FAULT_COUNT ? names[fault] : "unknown";
}

bool demo_is_own_event(const json_t *payload, const char *run_id)
{
    const char *tag = json_string_value(json_object_get(payload, DEMO_RUN_FIELD));
    return tag != NULL && strcmp(tag, run_id) == 0;
}

static int config_index(const struct role_ctx *ctx, const char *key)
{
    for (size_t i = 0; key != NULL && i < ctx->cfg->config_count; i++)
        if (strcmp(ctx->cfg->configs[i], key) == 0)
            return (int)i;
    return -1;
}

static bool fault_here(const struct role_ctx *ctx, enum demo_fault f, int ci, int iteration)
{
    return ctx->cfg->fault_iteration[f] == iteration && (int)ctx->cfg->fault_config[f] == ci;
}

/* Publishes `payload` (stolen) as `type`, tagged with the run's id. Failures
 * are reported on stderr and counted; the demo's summary turns them into a
 * non-zero exit. */
static void publish(struct role_ctx *ctx, rre_event_type type, json_t *payload)
{
    if (payload == NULL) {
        fprintf(stderr, "rre demo: %s: cannot build a %s payload\n", ctx->source,
                rre_event_name(type));
        ctx->publish_errors++;
        return;
    }
    json_object_set_new(payload, DEMO_RUN_FIELD, json_string(ctx->cfg->run_id));
    rre_publish_options po = {0};
    po.source = ctx->source;
    rre_publish_result res;
    rre_status st = rre_router_publish_type(ctx->router, type, payload, &po, &res);
    if (st != RRE_OK) {
        fprintf(stderr, "rre demo: %s: publishing %s failed: %s: %s\n", ctx->source,
                rre_event_name(type), rre_strerror(st), rre_last_error());
        for (size_t i = 0; i < res.problems.count && st == RRE_EINVALID_PAYLOAD; i++) {
            char line[256];
            rre_problem_format(&res.problems.items[i], line, sizeof line);
            fprintf(stderr, "  %s\n", line);
        }
        ctx->publish_errors++;
    }
    rre_payload_release(payload);
}

/* The fields every stage copies along: config_key, board_type, num_players
 * and iteration of the triggering event. */
struct stage_key {
    const char *config_key;
    char board[16];
    int players;
    int iteration;
    int ci;
};

static bool stage_key_of(const struct role_ctx *ctx, const rre_event *ev, struct stage_key *k)
{
    k->config_key = json_string_value(json_object_get(ev->payload, "config_key"));
    k->iteration = (int)json_integer_value(json_object_get(ev->payload, "iteration"));
    k->ci = config_index(ctx, k->config_key);
    rre_config_key parsed;
    if (k->ci < 0 || k->iteration <= 0 || rre_config_key_parse(k->config_key, &parsed) != RRE_OK)
        return false;
    snprintf(k->board, sizeof k->board, "%s", rre_board_name(parsed.board));
    k->players = parsed.num_players;
    return true;
}

/* The node name payloads give for this host. */
static const char *node_name(const struct role_ctx *ctx)
{
    return ctx->cfg->hostname[0] != '\0' ? ctx->cfg->hostname : "gpu-node-1";
}

static void start_selfplay(struct role_ctx *ctx, int ci, int iteration)
{
    const char *key = ctx->cfg->configs[ci];
    if (!ctx->cfg->owns[ci])
        return; /* another selfplay host runs this config */
    json_int_t games = (json_int_t)(200.0 * ctx->rate[ci]);
    json_t *p = json_pack("{s:s, s:I, s:I, s:s, s:s, s:f, s:f, s:i}", "config_key", key,
                          "games_completed", games, "total_games", games * iteration, "node_id",
                          node_name(ctx), "model_id", key, "duration_seconds", 12.5,
                          "games_per_second", (double)games / 12.5, "iteration", iteration);
    publish(ctx, RRE_EV_SELFPLAY_COMPLETE, p);
}

static void on_selfplay(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (!stage_key_of(ctx, ev, &k))
        return;
    switch (ev->type) {
    case RRE_EV_SELFPLAY_RATE_CHANGED:
        ctx->rate[k.ci] = json_number_value(json_object_get(ev->payload, "new_rate"));
        return;
    case RRE_EV_MODEL_DISTRIBUTION_COMPLETE:
    case RRE_EV_CACHE_INVALIDATED:
    case RRE_EV_TRAINING_FAILED:
        if (k.iteration < ctx->cfg->iterations)
            start_selfplay(ctx, k.ci, k.iteration + 1);
        return;
    default:
        return;
    }
}

static void on_quality(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_SELFPLAY_COMPLETE || !stage_key_of(ctx, ev, &k))
        return;
    if (fault_here(ctx, FAULT_STORM, k.ci, k.iteration)) {
        /* An echo loop: a buggy handler re-emits what it received. */
        for (int i = 0; i < ctx->cfg->storm_repeats; i++)
            publish(ctx, RRE_EV_SELFPLAY_COMPLETE, json_deep_copy(ev->payload));
    }
    json_int_t games = json_integer_value(json_object_get(ev->payload, "games_completed"));
    bool drop = fault_here(ctx, FAULT_QUALITY_DROP, k.ci, k.iteration);
    double quality = drop ? 0.42 : 0.86;
    publish(ctx, RRE_EV_QUALITY_SCORE_UPDATED,
            json_pack("{s:s, s:s, s:i, s:f, s:I, s:I, s:i}", "config_key", k.config_key,
                      "board_type", k.board, "num_players", k.players, "avg_quality", quality,
                      "total_games", games, "high_quality_games", (json_int_t)(games * quality),
                      "iteration", k.iteration));
    if (!drop) {
        publish(ctx, RRE_EV_HIGH_QUALITY_DATA_AVAILABLE,
                json_pack("{s:s, s:I, s:I, s:f, s:i}", "config_key", k.config_key,
                          "high_quality_count", (json_int_t)(games * quality), "total_count", games,
                          "avg_quality", quality, "iteration", k.iteration));
        return;
    }
    publish(ctx, RRE_EV_QUALITY_DEGRADED,
            json_pack("{s:s, s:f, s:f, s:f, s:i}", "config_key", k.config_key, "current_quality",
                      quality, "threshold", 0.6, "quality_drop_pct", 51.2, "iteration",
                      k.iteration));
    publish(ctx, RRE_EV_QUALITY_PENALTY_APPLIED,
            json_pack("{s:s, s:f, s:s, s:i}", "config_key", k.config_key, "penalty_factor", 0.5,
                      "reason", "quality_below_threshold", "iteration", k.iteration));
    publish(ctx, RRE_EV_SELFPLAY_RATE_CHANGED,
            json_pack("{s:s, s:f, s:f, s:f, s:i}", "config_key", k.config_key, "old_rate", 1.0,
                      "new_rate", 0.5, "change_pct", -50.0, "iteration", k.iteration));
}

static void on_sync(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_SELFPLAY_COMPLETE || !stage_key_of(ctx, ev, &k) || !ctx->cfg->owns[k.ci])
        return; /* each selfplay host syncs its own games */
    json_int_t games = json_integer_value(json_object_get(ev->payload, "games_completed"));
    char sync_id[64], db[128];
    snprintf(sync_id, sizeof sync_id, "sync-%s-%d", k.config_key, k.iteration);
    snprintf(db, sizeof db, "/data/games/selfplay_%s.db", k.config_key);
    publish(ctx, RRE_EV_NEW_GAMES_AVAILABLE,
            json_pack("{s:s, s:I, s:s, s:s, s:i}", "host", node_name(ctx), "new_games", games,
                      "config_key", k.config_key, "database_path", db, "iteration", k.iteration));
    publish(ctx, RRE_EV_DATA_SYNC_STARTED,
            json_pack("{s:s, s:s, s:s, s:[s,s], s:I, s:s, s:i}", "sync_id", sync_id, "sync_type",
                      "broadcast", "source", node_name(ctx), "targets", "trainer-1", "trainer-2",
                      "items_to_sync", games, "config_key", k.config_key, "iteration",
                      k.iteration));
    publish(ctx, RRE_EV_DATA_SYNC_COMPLETED,
            json_pack("{s:s, s:s, s:s, s:[s,s], s:i, s:I, s:f, s:s, s:i}", "sync_id", sync_id,
                      "sync_type", "broadcast", "source", node_name(ctx), "targets", "trainer-1",
                      "trainer-2", "files_synced", 1, "bytes_transferred", games * 4096,
                      "duration_seconds", 0.8, "config_key", k.config_key, "iteration",
                      k.iteration));
}

static void on_export(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_DATA_SYNC_COMPLETED || !stage_key_of(ctx, ev, &k))
        return;
    char out[128];
    snprintf(out, sizeof out, "/data/training/%s_iter%d.npz", k.config_key, k.iteration);
    json_int_t games = json_integer_value(json_object_get(ev->payload, "bytes_transferred")) / 4096;
    publish(ctx, RRE_EV_NPZ_EXPORT_STARTED,
            json_pack("{s:s, s:i, s:s, s:I, s:s, s:i}", "board_type", k.board, "num_players",
                      k.players, "output_path", out, "games_to_export", games, "config_key",
                      k.config_key, "iteration", k.iteration));
    publish(ctx, RRE_EV_NPZ_EXPORT_COMPLETE,
            json_pack("{s:s, s:i, s:I, s:I, s:s, s:b, s:f, s:s, s:i}", "board_type", k.board,
                      "num_players", k.players, "samples_exported", games * 60, "games_exported",
                      games, "output_path", out, "success", 1, "duration_seconds", 2.0,
                      "config_key", k.config_key, "iteration", k.iteration));
}

static void on_training(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_NPZ_EXPORT_COMPLETE || !stage_key_of(ctx, ev, &k))
        return;
    json_int_t samples = json_integer_value(json_object_get(ev->payload, "samples_exported"));
    char job[64], model[128];
    snprintf(job, sizeof job, "train-%s-%d", k.config_key, k.iteration);
    snprintf(model, sizeof model, "/models/%s/iter%d.pth", k.config_key, k.iteration);
    publish(ctx, RRE_EV_TRAINING_THRESHOLD_REACHED,
            json_pack("{s:s, s:I, s:i, s:f, s:s, s:i}", "config_key", k.config_key, "sample_count",
                      samples, "threshold", 5000, "quality_score", 0.85, "job_id", job, "iteration",
                      k.iteration));
    publish(ctx, RRE_EV_TRAINING_STARTED,
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i}", "config_key", k.config_key,
                      "node_name", "trainer-1", "job_id", job, "board_type", k.board, "num_players",
                      k.players, "model_version", "v5", "iteration", k.iteration));
    for (int epoch = 1; epoch <= 3; epoch++)
        publish(ctx, RRE_EV_TRAINING_PROGRESS,
                json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:i}", "config_key", k.config_key,
                          "job_id", job, "epoch", epoch, "train_loss", 0.3 / epoch, "val_loss",
                          0.35 / epoch, "learning_rate", 0.001, "iteration", k.iteration));
    if (fault_here(ctx, FAULT_TRAINING_FAILURE, k.ci, k.iteration)) {
        publish(ctx, RRE_EV_TRAINING_FAILED,
                json_pack("{s:s, s:s, s:s, s:s, s:b, s:i}", "config_key", k.config_key, "job_id",
                          job, "error", "CUDA out of memory at epoch 4", "error_details",
                          "RuntimeError: CUDA out of memory", "success", 0, "iteration",
                          k.iteration));
        return;
    }
    publish(ctx, RRE_EV_TRAINING_COMPLETED,
            json_pack("{s:s, s:s, s:i, s:s, s:i, s:f, s:I, s:s, s:f, s:b, s:i}", "config_key",
                      k.config_key, "board_type", k.board, "num_players", k.players, "model_path",
                      model, "epochs", 3, "final_loss", 0.1, "samples_trained", samples, "job_id",
                      job, "duration_seconds", 42.0, "early_stopped", 0, "iteration", k.iteration));
}

static void on_evaluation(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_TRAINING_COMPLETED || !stage_key_of(ctx, ev, &k))
        return;
    const char *model = json_string_value(json_object_get(ev->payload, "model_path"));
    char model_id[64];
    snprintf(model_id, sizeof model_id, "%s-v%d", k.config_key, k.iteration);
    double base = ctx->best_elo[k.ci] > 0 ? ctx->best_elo[k.ci] : 1500.0;
    double elo =
        fault_here(ctx, FAULT_REGRESSION, k.ci, k.iteration) ? base - 80.0 : base + 35.0 + k.ci;
    if (elo > ctx->best_elo[k.ci])
        ctx->best_elo[k.ci] = elo;
    publish(ctx, RRE_EV_EVALUATION_STARTED,
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:i}", "model_id", model_id,
                      "model_path", model, "board_type", k.board, "num_players", k.players,
                      "evaluation_type", "gauntlet", "games_planned", 100, "config_key",
                      k.config_key, "iteration", k.iteration));
    publish(ctx, RRE_EV_EVALUATION_COMPLETED,
            json_pack("{s:s, s:s, s:i, s:s, s:f, s:i, s:f, s:s, s:f, s:f, s:i}", "config_key",
                      k.config_key, "board_type", k.board, "num_players", k.players, "model_path",
                      model, "elo", elo, "games_played", 100, "win_rate", elo > base ? 0.62 : 0.31,
                      "model_id", model_id, "elo_delta", elo - base, "baseline_elo", base,
                      "iteration", k.iteration));
}

static void on_promotion(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_EVALUATION_COMPLETED || !stage_key_of(ctx, ev, &k))
        return;
    double elo = json_number_value(json_object_get(ev->payload, "elo"));
    double delta = json_number_value(json_object_get(ev->payload, "elo_delta"));
    const char *model = json_string_value(json_object_get(ev->payload, "model_path"));
    const char *model_id = json_string_value(json_object_get(ev->payload, "model_id"));
    if (delta <= 0) {
        publish(ctx, RRE_EV_PROMOTION_REJECTED,
                json_pack("{s:s, s:s, s:f, s:f, s:s, s:i}", "model_id", model_id, "reason",
                          "elo_below_canonical", "elo", elo, "required_elo", elo - delta,
                          "config_key", k.config_key, "iteration", k.iteration));
        return;
    }
    publish(ctx, RRE_EV_MODEL_PROMOTED,
            json_pack("{s:s, s:s, s:f, s:f, s:f, s:s, s:s, s:i}", "config_key", k.config_key,
                      "model_path", model, "previous_elo", elo - delta, "new_elo", elo, "elo_delta",
                      delta, "model_id", model_id, "tier", "production", "iteration", k.iteration));
}

static void on_distribution(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_MODEL_PROMOTED || !stage_key_of(ctx, ev, &k))
        return;
    publish(ctx, RRE_EV_MODEL_DISTRIBUTION_COMPLETE,
            json_pack("{s:s, s:[s,s,s], s:s, s:O, s:i}", "model_id",
                      json_string_value(json_object_get(ev->payload, "model_id")), "nodes",
                      "gpu-node-1", "gpu-node-2", "trainer-1", "config_key", k.config_key,
                      "model_path", json_object_get(ev->payload, "model_path"), "iteration",
                      k.iteration));
}

static void on_rollback(struct role_ctx *ctx, const rre_event *ev)
{
    struct stage_key k;
    if (ev->type != RRE_EV_EVALUATION_COMPLETED || !stage_key_of(ctx, ev, &k))
        return;
    double delta = json_number_value(json_object_get(ev->payload, "elo_delta"));
    if (delta > -25.0)
        return;
    const char *model = json_string_value(json_object_get(ev->payload, "model_path"));
    const char *model_id = json_string_value(json_object_get(ev->payload, "model_id"));
    double base = json_number_value(json_object_get(ev->payload, "baseline_elo"));
    char checkpoint[128], target[96];
    snprintf(checkpoint, sizeof checkpoint, "/models/%s/canonical.pth", k.config_key);
    snprintf(target, sizeof target, "model:%s", model_id);
    publish(ctx, RRE_EV_REGRESSION_DETECTED,
            json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:i}", "config_key", k.config_key,
                      "model_path", model, "severity", "moderate", "elo_drop", delta,
                      "baseline_elo", base, "current_elo", base + delta, "iteration", k.iteration));
    publish(ctx, RRE_EV_TRAINING_ROLLBACK_NEEDED,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "model_id", model_id, "reason",
                      "elo_regression", "checkpoint_path", checkpoint, "severity", "moderate",
                      "config_key", k.config_key, "iteration", k.iteration));
    publish(ctx, RRE_EV_RECOVERY_INITIATED,
            json_pack("{s:s, s:s, s:s, s:s, s:i}", "recovery_type", "model", "target", target,
                      "reason", "elo_regression", "config_key", k.config_key, "iteration",
                      k.iteration));
    publish(ctx, RRE_EV_RECOVERY_COMPLETED,
            json_pack("{s:s, s:s, s:f, s:[s,s], s:s, s:i}", "recovery_type", "model", "target",
                      target, "duration_seconds", 1.5, "actions_taken", "restore_checkpoint",
                      "invalidate_caches", "config_key", k.config_key, "iteration", k.iteration));
    publish(ctx, RRE_EV_TRAINING_ROLLBACK_COMPLETED,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "model_id", model_id, "checkpoint_path",
                      checkpoint, "rollback_from", model, "reason", "elo_regression", "config_key",
                      k.config_key, "iteration", k.iteration));
    publish(ctx, RRE_EV_CACHE_INVALIDATED,
            json_pack("{s:s, s:s, s:i, s:[], s:[s], s:s, s:i}", "invalidation_type", "model",
                      "target_id", model_id, "count", 3, "affected_nodes", "affected_models",
                      model_id, "config_key", k.config_key, "iteration", k.iteration));
}

static int role_handler(const rre_event *ev, void *user_data)
{
    struct role_ctx *ctx = user_data;
    if (!demo_is_own_event(ev->payload, ctx->cfg->run_id))
        return 0; /* another producer's event, or another run's */
    if (ev->type == RRE_EV_COORDINATOR_SHUTDOWN) {
        const char *who = json_string_value(json_object_get(ev->payload, "coordinator_name"));
        if (who != NULL && strcmp(who, DEMO_DRIVER_NAME) == 0)
            atomic_store(&ctx->stop, true);
        return 0;
    }
    if (ev->origin == RRE_ORIGIN_LOCAL)
        return 0; /* coordinators react to the other processes' events */
    static void (*const handlers[ROLE_COUNT])(struct role_ctx *, const rre_event *) = {
        on_selfplay,  on_sync,         on_export,  on_training, on_evaluation,
        on_promotion, on_distribution, on_quality, on_rollback,
    };
    if (ctx->cfg->pace_ms > 0) {
        struct timespec work = {ctx->cfg->pace_ms / 1000, (ctx->cfg->pace_ms % 1000) * 1000000L};
        nanosleep(&work, NULL);
    }
    handlers[ctx->role](ctx, ev);
    return 0;
}

/* The types each coordinator listens to (besides COORDINATOR_SHUTDOWN). */
static size_t role_types(enum demo_role role, rre_event_type *out)
{
    size_t n = 0;
    switch (role) {
    case ROLE_SELFPLAY:
        out[n++] = RRE_EV_MODEL_DISTRIBUTION_COMPLETE;
        out[n++] = RRE_EV_CACHE_INVALIDATED;
        out[n++] = RRE_EV_TRAINING_FAILED;
        out[n++] = RRE_EV_SELFPLAY_RATE_CHANGED;
        break;
    case ROLE_SYNC:
    case ROLE_QUALITY:
        out[n++] = RRE_EV_SELFPLAY_COMPLETE;
        break;
    case ROLE_EXPORT:
        out[n++] = RRE_EV_DATA_SYNC_COMPLETED;
        break;
    case ROLE_TRAINING:
        out[n++] = RRE_EV_NPZ_EXPORT_COMPLETE;
        break;
    case ROLE_EVALUATION:
        out[n++] = RRE_EV_TRAINING_COMPLETED;
        break;
    case ROLE_PROMOTION:
    case ROLE_ROLLBACK:
        out[n++] = RRE_EV_EVALUATION_COMPLETED;
        break;
    case ROLE_DISTRIBUTION:
        out[n++] = RRE_EV_MODEL_PROMOTED;
        break;
    case ROLE_COUNT:
        break;
    }
    out[n++] = RRE_EV_COORDINATOR_SHUTDOWN;
    return n;
}

static void publish_shutdown(struct role_ctx *ctx)
{
    rre_router_stats *stats = malloc(sizeof *stats);
    if (stats == NULL || rre_router_get_stats(ctx->router, stats) != RRE_OK) {
        free(stats);
        return;
    }
    json_t *snapshot = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:i}", "events_published",
        (json_int_t)stats->events_published, "events_received", (json_int_t)stats->events_injected,
        "duplicates_prevented", (json_int_t)stats->duplicates_prevented, "handler_failures",
        (json_int_t)stats->handler_failures, "schema_violations",
        (json_int_t)stats->schema_violations, "sink_failures", (json_int_t)stats->sink_failures,
        "publish_errors", (int)ctx->publish_errors);
    free(stats);
    publish(ctx, RRE_EV_COORDINATOR_SHUTDOWN,
            json_pack("{s:s, s:s, s:i, s:o}", "coordinator_name", ctx->source, "reason", "graceful",
                      "remaining_tasks", 0, "state_snapshot", snapshot));
}

int demo_run_role(enum demo_role role, const struct demo_config *cfg)
{
    struct role_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return 1;
    ctx->role = role;
    ctx->cfg = cfg;
    if (cfg->hostname[0] != '\0')
        snprintf(ctx->source, sizeof ctx->source, "demo-%s@%s", demo_role_name(role),
                 cfg->hostname);
    else
        snprintf(ctx->source, sizeof ctx->source, "demo-%s", demo_role_name(role));
    for (size_t i = 0; i < DEMO_MAX_CONFIGS; i++)
        ctx->rate[i] = 1.0;

    int rc = 1;
    rre_router_options *ro = NULL;
    rre_queue *queue = NULL;
    rre_link *link = NULL;
    rre_queue_options qo;
    rre_queue_options_init(&qo);
    qo.path = cfg->db_path;
    qo.hostname = cfg->hostname[0] != '\0' ? cfg->hostname : NULL;
    qo.default_source = ctx->source;
    rre_status st = rre_router_options_create(&ro);
    if (st == RRE_OK)
        st = rre_router_options_set_validation(ro, RRE_VALIDATE_STRICT);
    if (st == RRE_OK)
        st = rre_router_options_set_source(ro, ctx->source);
    if (st == RRE_OK)
        st = rre_router_create(&ctx->router, ro);
    rre_router_options_destroy(ro);
    if (st == RRE_OK)
        st = rre_queue_create(&queue, &qo);
    rre_event_type types[8];
    size_t ntypes = role_types(role, types);
    for (size_t i = 0; st == RRE_OK && i < ntypes; i++)
        st = rre_router_subscribe(ctx->router, types[i], ctx->source, role_handler, ctx, NULL);
    if (st == RRE_OK) {
        rre_link_options lo = {0};
        lo.flags = RRE_LINK_SINCE_ID;
        lo.since_id = cfg->start_id;
        lo.types = types;
        lo.type_count = ntypes;
        st = rre_link_create(&link, ctx->router, queue, &lo);
    }
    if (st != RRE_OK) {
        fprintf(stderr, "rre demo: %s: cannot start: %s: %s\n", ctx->source, rre_strerror(st),
                rre_last_error());
        goto out;
    }

    if (role == ROLE_SELFPLAY)
        for (size_t ci = 0; ci < cfg->config_count; ci++)
            start_selfplay(ctx, (int)ci, 1);

    /* An orphan is adopted by process 1 or by a subreaper (a service manager,
     * a container's init): either way its parent is no longer the driver. */
    while (!atomic_load(&ctx->stop) && getppid() == cfg->driver_pid) {
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    publish_shutdown(ctx);
    rc = ctx->publish_errors == 0 ? 0 : 1;
out:
    rre_link_destroy(link);
    rre_router_destroy(ctx->router);
    rre_queue_destroy(queue);
    free(ctx);
    return rc;
}
