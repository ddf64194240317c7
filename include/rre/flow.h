/**
 * @file
 * flow.h - part of the public interface; included by <rre/rre.h>, never alone.
 *
 * The flow checker follows a stream of events and reports where it breaks
 * the ordering guarantees of the event catalog: the lifecycles returned by
 * rre_lifecycle_get() (training, evaluation, sync, recovery, work) and the
 * pipeline chain returned by rre_pipeline_chain() (SELFPLAY_COMPLETE -> ...
 * -> MODEL_DISTRIBUTION_COMPLETE). It holds no lifecycle of its own: the
 * catalog's data decides what is checked.
 *
 * Events are fed in stream order (for the durable queue, event_id order).
 * Each issue found is kept in a report that can be read at any time and is
 * complete after rre_flow_finish().
 *
 * RULES. For each lifecycle, the events of one run are identified by the
 * lifecycle's key fields (see RUNS below). Within a run:
 *  - a later step without the first one is a violation (MISSING_START:
 *    TRAINING_COMPLETED or TRAINING_FAILED without TRAINING_STARTED);
 *  - a terminal step after the run ended is a violation
 *    (DUPLICATE_TERMINAL: two terminal events for one run);
 *  - any other step after the end is a violation (AFTER_END:
 *    TRAINING_PROGRESS after TRAINING_COMPLETED);
 *  - a step that skips a required step, repeats a step that is not
 *    repeatable, or comes after a later step is a violation (OUT_OF_ORDER:
 *    WORK_STARTED before WORK_CLAIMED). A step that skipped others is
 *    reported once; the skipped step arriving late is not reported again;
 *  - the first step again while the run has not ended is a violation
 *    (RESTARTED); the old run is dropped and a new one starts.
 * For each config key, the pipeline chain: an occurrence of stage i (i > 0)
 * is in order when stage i-1 happened for that config after the latest
 * occurrence of stage i+1 (for the last stage: after its own previous
 * occurrence). So a stage may repeat while the chain has not moved past it
 * (a training retried after TRAINING_FAILED), stage 0 may happen at any
 * time, and cycles may overlap (selfplay goes on while training runs).
 * Anything else is a violation (PIPELINE_ORDER): a TRAINING_COMPLETED for
 * hex8_2p with no TRAINING_STARTED for hex8_2p at all, or none since the
 * latest EVALUATION_COMPLETED of hex8_2p. A chain event whose payload has no
 * config key (a cluster-wide DATA_SYNC_COMPLETED, say) cannot be attributed:
 * it advances every config that was waiting for that stage and is never a
 * violation.
 *
 * RUNS. A lifecycle lists key fields in order of preference (job_id before
 * config_key, say); the config key found by rre_extract_config_key() is a
 * last fallback. Every run remembers each key value it has seen. An event
 * belongs to a run when no key value they both have differs and they share
 * at least one; the most specific shared field decides. When several runs
 * qualify, an active run is preferred to an ended one, the oldest active run
 * first (runs of one config without a job id finish in the order they
 * started), else the most recently ended one. So concurrent runs of one
 * config key are told apart by job_id (or whichever more specific key field
 * the lifecycle lists) when their events carry it, and are taken to be
 * sequential when they do not. A first step opens a new run unless an active
 * run is identified by the same key, that is, its most specific key value
 * is in the same field and equal to the event's (RESTARTED).
 * An event of a lifecycle with no key value at all cannot be attributed and
 * is only counted (rre_flow_stats.unattributed).
 *
 * STALLS. Checked by rre_flow_finish(now): a run whose first step happened
 * more than stall_after seconds before `now` and that has not ended
 * (RUN_STALLED), and a config whose pipeline has not reached the last stage
 * of the chain and whose last chain event is more than stall_after seconds
 * old (PIPELINE_STALLED). Runs that ended late are not stalls.
 *
 * HISTORY. By default the stream is taken to be the whole history: a run or a
 * pipeline seen first in the middle is a violation. With
 * RRE_FLOW_PARTIAL_HISTORY (for a stream that starts at an arbitrary point,
 * such as `rre flow check --since ID`) the first event seen of a run or of a
 * config's pipeline is accepted without its predecessors.
 *
 * MEMORY. An ended run is forgotten when a new run with the same key (the
 * same most specific key value) starts. At most max_runs runs are tracked;
 * when a new one would exceed it, the run that ended first is forgotten (so
 * a very late duplicate terminal
 * event for it is no longer recognised), or when none has ended the oldest
 * active one (counted in rre_flow_stats.evicted_active; it can no longer be
 * reported as stalled). At most max_issues issues are kept; further ones are
 * only counted. Pipelines need one small record per valid config key.
 *
 * THREADS. A checker is not thread-safe: one thread at a time may use it.
 * Different checkers are independent.
 */
#ifndef RRE_FLOW_H
#define RRE_FLOW_H

/** What a report entry is about. */
typedef enum rre_flow_issue_kind {
    RRE_FLOW_VIOLATION = 0, /**< an event out of the documented order */
    RRE_FLOW_STALL = 1,     /**< a run or a pipeline that stopped advancing */
    RRE_FLOW_BAD_INPUT = 2, /**< a line of JSON-lines input that could not be read */
} rre_flow_issue_kind;

/** The rule an issue breaks (see RULES and STALLS above; BAD_LINE is a line
 * of JSON-lines input that could not be read). */
typedef enum rre_flow_rule {
    RRE_FLOW_RULE_MISSING_START = 0,      /**< a later step of a run without its first step */
    RRE_FLOW_RULE_DUPLICATE_TERMINAL = 1, /**< a terminal step after the run ended */
    RRE_FLOW_RULE_AFTER_END = 2,          /**< any other step after the run ended */
    RRE_FLOW_RULE_OUT_OF_ORDER = 3,       /**< a step skipped, repeated or late within a run */
    RRE_FLOW_RULE_RESTARTED = 4,          /**< the first step again before the run ended */
    RRE_FLOW_RULE_PIPELINE_ORDER = 5,     /**< a pipeline stage out of order for its config */
    RRE_FLOW_RULE_RUN_STALLED = 6,        /**< a run still not ended after stall_after seconds */
    RRE_FLOW_RULE_PIPELINE_STALLED = 7,   /**< an unfinished pipeline idle past stall_after */
    RRE_FLOW_RULE_BAD_LINE = 8,           /**< a line of input that could not be read */
} rre_flow_rule;

/** One entry of the report. Strings belong to the checker and live until it
 * is destroyed. */
typedef struct rre_flow_issue {
    rre_flow_issue_kind kind;  /**< what the entry is about */
    rre_flow_rule rule;        /**< the rule broken */
    const char *flow;          /**< lifecycle name ("training", ...), "pipeline", or "input" */
    const char *key_field;     /**< "job_id", "config_key", ...; "" when none */
    const char *key;           /**< the run's or pipeline's key value; "" when none */
    rre_event_type event_type; /**< the event involved; RRE_EV_NONE for bad input */
    int64_t event_id;          /**< its durable id; 0 when it has none */
    uint64_t line;             /**< its line in JSON-lines input; 0 otherwise */
    double time;               /**< its time in Unix seconds; 0 when unknown */
    const char *message;       /**< one line for people, such as "TRAINING_COMPLETED without
                                  TRAINING_STARTED" */
} rre_flow_issue;

/** Figures about what was checked. */
typedef struct rre_flow_stats {
    uint64_t events;         /**< events fed (bad lines not included) */
    uint64_t unattributed;   /**< lifecycle events with no key value */
    uint64_t violations;     /**< issues of kind VIOLATION, including dropped ones */
    uint64_t stalls;         /**< issues of kind STALL, including dropped ones */
    uint64_t bad_input;      /**< issues of kind BAD_INPUT, including dropped ones */
    uint64_t issues_dropped; /**< issues past max_issues, counted but not kept */
    uint64_t runs_tracked;   /**< runs held now */
    uint64_t evicted_active; /**< active runs forgotten to respect max_runs */
} rre_flow_stats;

/* Option flags (rre_flow_options.flags). */
#define RRE_FLOW_PARTIAL_HISTORY 0x1u /**< the stream may start in the middle (see HISTORY) */

#define RRE_FLOW_DEFAULT_STALL_AFTER 3600.0 /**< default stall_after, in seconds */
#define RRE_FLOW_DEFAULT_MAX_RUNS 65536     /**< default max_runs */
#define RRE_FLOW_DEFAULT_MAX_ISSUES 10000   /**< default max_issues */

/** Options of a checker. A zeroed struct (or NULL) gives the defaults. */
typedef struct rre_flow_options {
    double stall_after; /**< seconds; 0: RRE_FLOW_DEFAULT_STALL_AFTER; negative: no stall check */
    size_t max_runs;    /**< 0: RRE_FLOW_DEFAULT_MAX_RUNS */
    size_t max_issues;  /**< 0: RRE_FLOW_DEFAULT_MAX_ISSUES */
    unsigned flags;     /**< RRE_FLOW_* flags */
} rre_flow_options;

/** A flow checker: an opaque handle. */
typedef struct rre_flow_checker rre_flow_checker;

/** Creates a checker (*out, owned by the caller; free with
 * rre_flow_checker_destroy()). `options` may be NULL and is copied.
 * RRE_EINVAL for a NULL out; RRE_ENOMEM; RRE_EINTERNAL when the catalog's
 * lifecycle data cannot be used (more than 64 steps or stages). */
RRE_API rre_status rre_flow_checker_create(rre_flow_checker **out, const rre_flow_options *options);

/** Frees a checker and its report. NULL does nothing. */
RRE_API void rre_flow_checker_destroy(rre_flow_checker *c);

/** Feeds the next event of the stream. Its time is read from ev->timestamp
 * (ISO 8601; an empty or unreadable timestamp takes the time of the previous
 * event). The event is borrowed for the call only. Events of types that no
 * lifecycle or pipeline stage mentions are counted and otherwise ignored.
 * RRE_EINVAL for NULL arguments or an event with no payload object; RRE_ENOMEM
 * (the event is then not fully checked). A violation is not an error: it is
 * added to the report and the call returns RRE_OK. */
RRE_API rre_status rre_flow_feed(rre_flow_checker *c, const rre_event *ev);

/** Like rre_flow_feed() with the event's time given in Unix seconds (a value
 * <= 0, or one past the year 9999, falls back to ev->timestamp). */
RRE_API rre_status rre_flow_feed_at(rre_flow_checker *c, const rre_event *ev, double time);

/** Feeds one line of JSON-lines input, `line_no` being its 1-based line number
 * (kept in the issues it causes). A line is an object with the type under
 * "event_type" or "type" (any spelling rre_event_lookup() accepts, also with
 * the "ringrift." prefix of CloudEvents), the payload under "payload" or
 * "data" (an object, or a string holding one), and optional "event_id" or
 * "id" (an integer or a string of digits), "timestamp", "created_at" or
 * "time" (ISO 8601 or Unix seconds, the first readable one wins; a time
 * before 1970 or after the year 9999 is unreadable); other
 * members, such as those `rre tail` prints, are ignored. The payload's
 * field aliases are normalised. A blank line is skipped. A line that cannot
 * be read is added to the report as a BAD_INPUT issue naming the line and the
 * reason, and the call returns the reason's status (RRE_EJSON,
 * RRE_EUNKNOWN_TYPE, RRE_ENOT_OBJECT, RRE_ELIMIT); checking may go on with
 * the next line. `since_id` > 0 skips events whose event_id is known and at
 * most since_id (counted nowhere). */
RRE_API rre_status rre_flow_feed_json_line(rre_flow_checker *c, const char *line, size_t len,
                                           uint64_t line_no, int64_t since_id);

/** Ends the stream: checks stalls against `now` (Unix seconds; a value <= 0
 * means the time of the latest event fed). May be called once; later calls
 * and later feeds return RRE_ECLOSED. */
RRE_API rre_status rre_flow_finish(rre_flow_checker *c, double now);

/** The report: the number of issues kept. Issues are in the order they were
 * found; stalls come last. */
RRE_API size_t rre_flow_issue_count(const rre_flow_checker *c);
/** Issue `index` of the report (NULL past the end). */
RRE_API const rre_flow_issue *rre_flow_issue_get(const rre_flow_checker *c, size_t index);

/** True when no issue of any kind was found (dropped ones included). */
RRE_API bool rre_flow_clean(const rre_flow_checker *c);

/** The checker's figures so far (events, runs held, issues, evictions). */
RRE_API void rre_flow_get_stats(const rre_flow_checker *c, rre_flow_stats *out);

/** The static name of an issue kind: "violation", "stall", "bad_input";
 * "unknown" when out of range. */
RRE_API const char *rre_flow_issue_kind_name(rre_flow_issue_kind kind);
/** The static name of a rule: "missing_start", "duplicate_terminal", ...;
 * "unknown" when out of range. */
RRE_API const char *rre_flow_rule_name(rre_flow_rule rule);

/** The report as a JSON object (*out, owned by the caller, json_decref):
 * {"clean": bool, "events", "unattributed", "violations", "stalls",
 * "bad_input", "issues_dropped", "evicted_active": integers, "issues": [
 * {"kind", "rule", "flow", "key_field", "key", "event_type", "event_id",
 * "line", "time" (ISO 8601, absent when unknown), "message"}]}. event_type is
 * null for bad input; event_id and line are 0 when unknown. */
RRE_API rre_status rre_flow_report_json(const rre_flow_checker *c, json_t **out);

#endif
