/**
 * @file
 * rre.h - the public interface of librre, the ringrift-events library.
 *
 * This is the one header a program includes. What it (and the siblings it
 * includes) does not declare is not supported. Conventions used throughout:
 *
 *  - Every fallible call returns an rre_status; RRE_OK is 0. On failure a
 *    detail message for the calling thread is kept and can be fetched with
 *    rre_last_error() until the next failing call on that thread.
 *  - Objects are opaque handles created with rre_x_create(&out, ...) and
 *    freed with rre_x_destroy(); destroying NULL does nothing.
 *  - Strings and JSON values handed to a callback are borrowed until the
 *    callback returns. A function that takes ownership of an argument says so.
 *  - JSON payloads are jansson values (json_t). Payloads are JSON objects.
 *  - Unless a declaration says otherwise, a function may be called from any
 *    thread, and functions on the catalog are lock-free and read-only.
 *  - The library never prints. It reports through the log callback set with
 *    rre_set_logger().
 */
#ifndef RRE_RRE_H
#define RRE_RRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
/* Marks the functions the shared library exports. */
#if defined(RRE_BUILDING_LIBRARY) && defined(__GNUC__)
#define RRE_API __attribute__((visibility("default")))
#else
#define RRE_API
#endif
/** @endcond */

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define RRE_VERSION_MAJOR 0        /**< major version of these headers */
#define RRE_VERSION_MINOR 1        /**< minor version of these headers */
#define RRE_VERSION_PATCH 0        /**< patch version of these headers */
#define RRE_VERSION_STRING "0.1.0" /**< version of these headers as a string */
/** MAJOR * 10000 + MINOR * 100 + PATCH, for compile-time comparisons. */
#define RRE_VERSION_NUMBER (RRE_VERSION_MAJOR * 10000 + RRE_VERSION_MINOR * 100 + RRE_VERSION_PATCH)

/** The version of the library actually linked, as a string ("0.1.0"). */
RRE_API const char *rre_version(void);
/** The version of the library actually linked, as a number (see
 * RRE_VERSION_NUMBER). */
RRE_API int rre_version_number(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/** X(NAME, value, description). Values are explicit and only ever appended. */
#define RRE_STATUS_MAP(X)                                                                          \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, 1, "invalid argument")                                                               \
    X(ENOMEM, 2, "out of memory")                                                                  \
    X(EUNKNOWN_TYPE, 3, "unknown event type")                                                      \
    X(EJSON, 4, "malformed JSON")                                                                  \
    X(ENOT_OBJECT, 5, "payload is not a JSON object")                                              \
    X(ELIMIT, 6, "input exceeds a size or nesting limit")                                          \
    X(EINVALID_PAYLOAD, 7, "payload does not match the schema of its event type")                  \
    X(ECONFIG_KEY, 8, "invalid config key")                                                        \
    X(EIO, 9, "I/O error")                                                                         \
    X(EDB, 10, "database error")                                                                   \
    X(ECORRUPT, 11, "database file is corrupt or not a database")                                  \
    X(EFULL, 12, "disk or database full")                                                          \
    X(EREADONLY, 13, "database is read-only")                                                      \
    X(ECLOSED, 14, "object is closed")                                                             \
    X(EHELD, 15, "name is held by another live process")                                           \
    X(ETIMEOUT, 16, "timed out")                                                                   \
    X(ENOTFOUND, 17, "not found")                                                                  \
    X(ECRYPTO, 18, "cryptographic library error")                                                  \
    X(ENATS, 19, "NATS error")                                                                     \
    X(EINTERNAL, 20, "internal error")                                                             \
    X(EDUPLICATE, 21, "duplicate event within the dedup window")                                   \
    X(ECATEGORY, 22, "unknown event category")                                                     \
    X(ERETRY_LATER, 23, "the handler asks for the event again later")                              \
    X(EREJECTED, 24, "the handler rejected the event")

/** The result of a fallible call: RRE_OK (0) or one of the errors of
 * RRE_STATUS_MAP, each named RRE_ followed by its NAME (RRE_EINVAL, ...). */
typedef enum rre_status {
#define RRE__STATUS_ENUM(name, value, text) RRE_##name = value,
    RRE_STATUS_MAP(RRE__STATUS_ENUM)
#undef RRE__STATUS_ENUM
} rre_status;

/** A static description of a status; never NULL ("unknown status" for values
 * outside the enum). */
RRE_API const char *rre_strerror(rre_status status);

/** The symbolic name of a status ("RRE_EJSON"); never NULL. */
RRE_API const char *rre_status_name(rre_status status);

/** The detail message of the last failing call on this thread ("" if none).
 * The string belongs to the thread and is valid until its next library call. */
RRE_API const char *rre_last_error(void);

/** Sets the calling thread's last error message to `message` (NULL: the
 * status's own text) and returns `status`. A handler of a durable subscriber
 * ends with `return rre_fail(RRE_EIO, "model store unreachable");` so the
 * message is what the retry log and the dead letter record as the error. */
RRE_API rre_status rre_fail(rre_status status, const char *message);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

/** The severity of a log message, from least to most severe. */
typedef enum rre_log_level {
    RRE_LOG_DEBUG = 0, /**< detail for debugging */
    RRE_LOG_INFO = 1,  /**< information */
    RRE_LOG_WARN = 2,  /**< a warning */
    RRE_LOG_ERROR = 3, /**< an error */
} rre_log_level;

/** A log sink. `component` is a short static name ("router", "queue", ...),
 * `message` is borrowed for the duration of the call. May be called from any
 * library thread, never with a library lock held. */
typedef void (*rre_log_fn)(rre_log_level level, const char *component, const char *message,
                           void *user_data);

/** Sets the process-wide log sink and the lowest level passed to it. NULL
 * removes the sink (the default: nothing is logged). Set it before starting
 * other threads that use the library; changing it later is safe but a message
 * being logged concurrently may still reach the previous sink. */
RRE_API void rre_set_logger(rre_log_fn fn, void *user_data, rre_log_level min_level);

/** "debug", "info", "warn" or "error"; "unknown" out of range. */
RRE_API const char *rre_log_level_name(rre_log_level level);

/* ------------------------------------------------------------------------ */
/* Event catalog                                                             */
/* ------------------------------------------------------------------------ */

/** X(NAME, "name"): the categories of event types. */
#define RRE_CATEGORY_MAP(X)                                                                        \
    X(SYNC, "sync")                                                                                \
    X(TRAINING_PIPELINE, "training_pipeline")                                                      \
    X(EVALUATION, "evaluation")                                                                    \
    X(SELFPLAY, "selfplay")                                                                        \
    X(MODEL, "model")                                                                              \
    X(QUALITY, "quality")                                                                          \
    X(CURRICULUM, "curriculum")                                                                    \
    X(OPTIMIZATION, "optimization")                                                                \
    X(CLUSTER_HEALTH, "cluster_health")                                                            \
    X(RECOVERY, "recovery")                                                                        \
    X(WORK_QUEUE, "work_queue")                                                                    \
    X(DAEMON_LIFECYCLE, "daemon_lifecycle")                                                        \
    X(TASK_LIFECYCLE, "task_lifecycle")                                                            \
    X(RESOURCE, "resource")                                                                        \
    X(LEADER_ELECTION, "leader_election")                                                          \
    X(DATA_INTEGRITY, "data_integrity")                                                            \
    X(LOCK, "lock")                                                                                \
    X(CHECKPOINT, "checkpoint")                                                                    \
    X(PARITY, "parity")                                                                            \
    X(CACHE, "cache")                                                                              \
    X(STAGE, "stage")                                                                              \
    X(OTHER, "other")

/** The category of an event type: RRE_CAT_ followed by a NAME of
 * RRE_CATEGORY_MAP (RRE_CAT_SYNC, ...). */
typedef enum rre_category {
#define RRE__CATEGORY_ENUM(id, text) RRE_CAT_##id,
    RRE_CATEGORY_MAP(RRE__CATEGORY_ENUM)
#undef RRE__CATEGORY_ENUM
        RRE_CATEGORY_COUNT /**< the number of categories (not a category) */
} rre_category;

/** Every event type. The list lives in `<rre/event_types.def>`, one
 * `RRE_EVENT(NAME, "value", CATEGORY, DOCUMENTED, "queue_spelling", ALIAS_OF,
 * "description")` line per type; `RRE_EV_<NAME>` is its enum constant. */
typedef enum rre_event_type {
    RRE_EV_NONE = -1, /**< no type */
#define RRE_EVENT(name, value, category, documented, queue_spelling, alias_of, description)        \
    RRE_EV_##name,
#include <rre/event_types.def>
#undef RRE_EVENT
    RRE_EVENT_TYPE_COUNT /**< the number of event types (not a type) */
} rre_event_type;

/** The type a payload field must have. */
typedef enum rre_field_type {
    RRE_FT_ANY = 0,        /**< any JSON value */
    RRE_FT_STR,            /**< string */
    RRE_FT_INT,            /**< integer (a float with an integral value is not accepted) */
    RRE_FT_FLOAT,          /**< number; an integer is accepted */
    RRE_FT_BOOL,           /**< true or false */
    RRE_FT_LIST,           /**< array of anything */
    RRE_FT_LIST_STR,       /**< array of strings */
    RRE_FT_DICT,           /**< object */
    RRE_FT_DICT_STR_FLOAT, /**< object whose values are numbers */
} rre_field_type;

/* Field flags (rre_field_info.flags). */
#define RRE_FIELD_REQUIRED 0x1u   /**< must be present (the payload-schemas document) */
#define RRE_FIELD_NULLABLE 0x2u   /**< null is accepted ("| None") */
#define RRE_FIELD_IN_SCHEMAS 0x4u /**< listed by the payload-schemas document */
#define RRE_FIELD_IN_CATALOG 0x8u /**< listed by the event catalog document */

/** A known payload field of an event type. */
typedef struct rre_field_info {
    const char *name;        /**< the field's name in the payload */
    rre_field_type type;     /**< the type its value must have */
    unsigned flags;          /**< RRE_FIELD_* flags */
    const char *description; /**< "" when the catalog gives none */
} rre_field_info;

/** The catalog's description of an event type (see rre_event_get()). */
typedef struct rre_event_info {
    rre_event_type type;          /**< the type described */
    const char *name;             /**< canonical NAME, such as "TRAINING_COMPLETED" */
    const char *value;            /**< legacy lowercase value, such as "training_completed" */
    rre_category category;        /**< its category */
    bool documented;              /**< documented by the catalog (its Documented column) */
    const char *queue_spelling;   /**< what the shared database's event_type column holds */
    rre_event_type alias_of;      /**< RRE_EV_NONE, or the type this one resolves to */
    const char *description;      /**< one line; never NULL */
    size_t field_count;           /**< known payload fields */
    const rre_field_info *fields; /**< the field_count known fields; NULL when none */
    bool has_schema;              /**< the catalog gives a payload schema for it */
} rre_event_info;

/** The description of a type, or NULL when `type` is out of range. The
 * returned data is static. */
RRE_API const rre_event_info *rre_event_get(rre_event_type type);

/** The canonical NAME of a type, or "UNKNOWN" when out of range. */
RRE_API const char *rre_event_name(rre_event_type type);

/** Resolves any spelling of a type: its NAME, its value, its queue spelling,
 * a stage-event name or value, in any letter case. Aliases (stage events and
 * types that share a data event's wire spelling) resolve to the type they map
 * to, so the result never has alias_of set. Unknown or NULL: RRE_EUNKNOWN_TYPE
 * and *out = RRE_EV_NONE (`out` NULL: RRE_EINVAL). Constant time; no
 * allocation. The _n form reads exactly `len` bytes (no NUL needed).
 *
 * A type's own spellings win over a stage-event spelling: the one stage event
 * whose spelling is also a type's wire spelling, ELO_CALIBRATION_COMPLETE
 * (maps_to ELO_UPDATED), resolves to STAGE_ELO_CALIBRATION_COMPLETE, the type
 * the Python side writes as "elo_calibration_complete", so a row read from
 * the shared queue keeps its type. */
RRE_API rre_status rre_event_lookup(const char *spelling, rre_event_type *out);
/** rre_event_lookup() for the `len` bytes at `spelling` (no NUL needed). */
RRE_API rre_status rre_event_lookup_n(const char *spelling, size_t len, rre_event_type *out);

/** The known field `name` of `type`, or NULL. */
RRE_API const rre_field_info *rre_event_field(rre_event_type type, const char *name);

RRE_API const char *rre_field_type_name(rre_field_type type); /**< "str", "list[str]", ... */
RRE_API const char *rre_category_name(rre_category category); /**< "sync", ... or "unknown" */
/** Any case; unknown or NULL: RRE_ECATEGORY and *out unchanged. */
RRE_API rre_status rre_category_lookup(const char *name, rre_category *out);

/** Stage events: names of the stage bus that resolve to a data event. */
typedef struct rre_stage_event_info {
    const char *name;       /**< its name, such as "TRAINING_COMPLETE" */
    const char *value;      /**< its value, such as "training_complete" */
    rre_event_type maps_to; /**< the data event it resolves to */
} rre_stage_event_info;

/** The stage events are indexed 0..rre_stage_event_count() - 1. */
RRE_API size_t rre_stage_event_count(void);
/** Stage event `index`; NULL past the end. */
RRE_API const rre_stage_event_info *rre_stage_event_get(size_t index);

/* Lifecycles: the ordering guarantees of the catalog, as data. A lifecycle
 * is a sequence of steps; a step is one of several types. */
#define RRE_STEP_REPEATABLE 0x1u /**< step flag: the step may occur 0..N times */
#define RRE_STEP_TERMINAL 0x2u   /**< step flag: the step ends the lifecycle */

/** One step of a lifecycle: any one of its event types takes it. */
typedef struct rre_lifecycle_step {
    const rre_event_type *types; /**< alternatives */
    size_t type_count;           /**< entries in types */
    unsigned flags;              /**< RRE_STEP_* flags */
} rre_lifecycle_step;

/** A lifecycle: the steps of a run, in order, and the fields that identify a run. */
typedef struct rre_lifecycle {
    const char *name;                /**< "training", "evaluation", "sync", "recovery", "work" */
    const rre_lifecycle_step *steps; /**< the steps, in order */
    size_t step_count;               /**< entries in steps */
    const char *const
        *key_fields;        /**< payload fields that identify one run, in order of preference */
    size_t key_field_count; /**< entries in key_fields */
} rre_lifecycle;

/** The lifecycles are indexed 0..rre_lifecycle_count() - 1 (training,
 * evaluation, sync, recovery, work), or found by name. */
RRE_API size_t rre_lifecycle_count(void);
/** Lifecycle `index`; NULL past the end. */
RRE_API const rre_lifecycle *rre_lifecycle_get(size_t index);
/** The lifecycle called `name`, in any case; NULL if none. */
RRE_API const rre_lifecycle *rre_lifecycle_find(const char *name);

/** The pipeline chain SELFPLAY_COMPLETE -> ... -> MODEL_DISTRIBUTION_COMPLETE,
 * in order. */
RRE_API const rre_event_type *rre_pipeline_chain(size_t *count);

/* Generated documents. */

/** The whole catalog as Markdown (what docs/EVENT_CATALOG.md holds);
 * allocates *out, release it with free(). */
RRE_API rre_status rre_catalog_markdown(char **out);
/** One type as a JSON object: name, value, category, description,
 * queue_spelling, documented, alias_of (a NAME or null), has_schema, fields
 * [{name, type, required, nullable, description}]. Caller owns the result
 * (json_decref). Out-of-range type: RRE_EUNKNOWN_TYPE and *out = NULL. */
RRE_API rre_status rre_event_to_json(rre_event_type type, json_t **out);
/** The JSON Schema (draft 2020-12) of a type's payload. Caller owns it.
 * "$id" is `"urn:ringrift-events:<NAME>"`; unknown fields are allowed
 * (additionalProperties true). An alias type gives the schema of the type it
 * resolves to (its $id and title name that type), since that is what its
 * payload is validated as. */
RRE_API rre_status rre_event_json_schema(rre_event_type type, json_t **out);

/* ------------------------------------------------------------------------ */
/* Payloads                                                                  */
/* ------------------------------------------------------------------------ */

/* Limits on payloads accepted by rre_payload_parse(). */
#define RRE_PAYLOAD_MAX_BYTES (1024u * 1024u) /**< payload size limit: 1 MiB of JSON text */
#define RRE_PAYLOAD_MAX_DEPTH 32              /**< payload limit on nesting of arrays and objects */

/** Parses `len` bytes of JSON text into a new object (*out, owned by the
 * caller). Rejects: malformed JSON or invalid UTF-8 (RRE_EJSON), a value that
 * is not an object (RRE_ENOT_OBJECT), text over RRE_PAYLOAD_MAX_BYTES or
 * nesting deeper than RRE_PAYLOAD_MAX_DEPTH (RRE_ELIMIT), duplicate keys and
 * NUL characters in strings (RRE_EJSON). The detail message says where.
 *
 * Depth counts containers: the payload object itself is level 1, so a
 * payload may hold arrays and objects nested 31 further levels. A number
 * that does not fit (an integer outside int64, a real beyond the range of
 * double) is RRE_ELIMIT, not rounded. Empty text is RRE_EJSON. On failure
 * *out is NULL. `text` need not be NUL-terminated. */
RRE_API rre_status rre_payload_parse(const char *text, size_t len, json_t **out);

/** Checks an already built value against the same rules (object, depth,
 * UTF-8 is guaranteed by jansson). A value that contains itself is reported
 * as too deep (RRE_ELIMIT). */
RRE_API rre_status rre_payload_check(const json_t *payload);

/** Renames the catalog's field aliases to their canonical names, in place, only
 * where the canonical field is absent: config -> config_key, checkpoint_path
 * and path -> model_path, loss -> final_loss, samples -> samples_trained,
 * games -> games_played. Returns the number of fields renamed.
 *
 * Only top-level fields are renamed, whatever their value (null included).
 * A canonical field that is present, even as null, is kept and its alias is
 * left as it is. When both checkpoint_path and path are present without
 * model_path, checkpoint_path becomes model_path and path stays. NULL or a
 * non-object does nothing and returns 0. */
RRE_API size_t rre_payload_normalize(json_t *payload);

/** Writes any JSON value (a payload, or what rre_router_stats_json() and the
 * other *_json functions return) as compact JSON text: no whitespace, keys
 * in the object's order, non-ASCII characters as raw UTF-8. *out is
 * NUL-terminated and owned by the caller (rre_free()); *len (`len` may be
 * NULL) is its length without the NUL. NULL value or out: RRE_EINVAL
 * (jansson holds no NaN or infinity, so every value can be written). For bindings in
 * other languages, which pass payloads across as text. */
RRE_API rre_status rre_json_text(const json_t *value, char **out, size_t *len);

/** Frees memory the library allocated for the caller (the text of
 * rre_json_text(), rre_canonical_json(), rre_catalog_markdown()): the same
 * as free(), for callers that cannot reach the C library's free(). NULL does
 * nothing. */
RRE_API void rre_free(void *p);

/** Drops a reference to a payload that other threads may still hold, such as
 * one just published with RRE_PUBLISH_ASYNC (the router's workers keep their
 * own references). Equivalent to json_decref(), but when this call drops
 * the last reference the other holders' accesses are ordered before the
 * free: jansson's json_decref() decrements with release order only, which
 * the C11 memory model (and ThreadSanitizer) counts as a data race when
 * another thread dropped its reference just before. NULL and jansson's
 * static values (true, false, null) are left alone. */
RRE_API void rre_payload_release(json_t *payload);

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

/** What a router does with payloads that fail validation (see
 * rre_router_options_set_validation()). */
typedef enum rre_validation_mode {
    RRE_VALIDATE_OFF = 0,    /**< payloads are not validated */
    RRE_VALIDATE_WARN = 1,   /**< problems are counted and logged; the event goes on */
    RRE_VALIDATE_STRICT = 2, /**< an event with problems is rejected */
} rre_validation_mode;

/** What a validation problem is. */
typedef enum rre_problem_kind {
    RRE_PROBLEM_MISSING = 0,   /**< a required field is absent */
    RRE_PROBLEM_WRONG_TYPE,    /**< a known field has the wrong type */
    RRE_PROBLEM_UNKNOWN_FIELD, /**< a note, not an error: a field the catalog does not list */
} rre_problem_kind;

#define RRE_PROBLEMS_MAX 16      /**< problems an rre_problems stores */
#define RRE_PROBLEM_FIELD_MAX 64 /**< size of rre_problem.field, NUL included */

/** One problem rre_validate() found in a payload. */
typedef struct rre_problem {
    rre_problem_kind kind;             /**< what is wrong */
    char field[RRE_PROBLEM_FIELD_MAX]; /**< truncated with "..." when longer */
    rre_field_type expected;           /**< for MISSING and WRONG_TYPE */
    const char *found;                 /**< JSON type found ("string", "null", ...) or "" */
} rre_problem;

/** The problems rre_validate() found in a payload. */
typedef struct rre_problems {
    size_t count;  /**< entries stored in items (at most RRE_PROBLEMS_MAX) */
    size_t errors; /**< MISSING + WRONG_TYPE found, including ones not stored */
    size_t notes;  /**< UNKNOWN_FIELD found, including ones not stored */
    rre_problem items[RRE_PROBLEMS_MAX]; /**< the first count problems found */
} rre_problems;

/* Validation flags (the `flags` of rre_validate()). */
#define RRE_VALIDATE_NOTES 0x1u /**< validation flag: also report unknown fields as notes */

/** Checks `payload` against the schema of `type` (call rre_payload_normalize()
 * first). Fills *out (may be NULL when only the verdict matters). Returns
 * RRE_OK when there is no error (notes allowed), RRE_EINVALID_PAYLOAD when
 * there is at least one, RRE_ENOT_OBJECT / RRE_EUNKNOWN_TYPE for bad
 * arguments. Does not allocate.
 *
 * Every known field is type-checked when present; a required one that is
 * absent is MISSING, and a present null counts as a wrong type unless the
 * field is nullable. Stored problems list errors in the catalog's field order,
 * then notes in the payload's key order. The envelope fields timestamp,
 * source, trace_id and created_at are never unknown. A type whose documents
 * list no fields gets no notes (there is nothing to compare with), and an
 * alias type without fields of its own is checked against the type it stands
 * for. `found` is one of "string", "integer", "float", "boolean", "null",
 * "array", "object", "array with a non-string element" or "object with a
 * non-number value". Field names in problems are printable: control bytes
 * and invalid UTF-8 appear as `\xNN`, C1 controls as `\u00NN`. */
RRE_API rre_status rre_validate(rre_event_type type, const json_t *payload, unsigned flags,
                                rre_problems *out);

/** Writes one problem as a line of text ("field 'epochs': expected int, found
 * string"), truncated to `cap`. Returns the length it would have had. */
RRE_API int rre_problem_format(const rre_problem *problem, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Canonical JSON and the content hash                                       */
/* ------------------------------------------------------------------------ */

#define RRE_HASH_SIZE 32     /**< bytes in a content hash (SHA-256) */
#define RRE_HASH_HEX_SIZE 65 /**< size of a hash in hex: 64 hex digits and a NUL */

/** Canonical JSON of a value (RFC 8785: keys sorted by UTF-16 code units, no
 * insignificant whitespace, numbers in their shortest round-trip form, strings
 * with minimal escapes). *out is NUL-terminated, owned by the caller (free());
 * *len (`len` may be NULL) is its length without the NUL. On failure *out is
 * NULL. Non-finite reals and a NULL value give RRE_EINVAL; nesting deeper
 * than 256 levels gives RRE_ELIMIT.
 *
 * Details: strings are written as raw UTF-8. The only escapes are a
 * backslash before a quote or a backslash, `\b` `\f` `\n` `\r` `\t`, and
 * `\u00xx` (lower-case hex) for other control characters, so `"\u00e9"` and
 * a raw U+00E9 in the input give the same bytes. Reals follow ECMAScript's
 * Number-to-String: 1.0 is "1", 0.5 is "0.5", 1e21 is "1e+21",
 * 1e-7 is "1e-7", -0.0 is "0". Integers (json_integer) are printed exactly,
 * also beyond 2^53; this deliberately differs from RFC 8785, which knows only
 * doubles, so an integer above 2^53 and the real nearest to it do not give
 * the same text. An integral real from 2^63 up to 10^21 is written, as RFC
 * 8785 requires, as a plain integer ("123456789012345680000") that jansson
 * cannot parse back; the text is meant for hashing and comparing, not for
 * round trips through jansson. Strings are expected to be valid UTF-8,
 * which jansson guarantees unless a value was made with a `*_nocheck`
 * function. May be called from any thread. */
RRE_API rre_status rre_canonical_json(const json_t *value, char **out, size_t *len);

/** The content hash of an event: SHA-256 over the canonical NAME of `type`, a
 * newline, and the canonical JSON of `payload` without the top-level envelope
 * fields timestamp, created_at, source and trace_id (fields of those names in
 * nested objects are hashed). An alias type hashes as the type it resolves
 * to, so the same content published under either spelling is one event. An
 * unknown type is RRE_EUNKNOWN_TYPE, a payload that is not an object
 * RRE_ENOT_OBJECT, a libcrypto failure RRE_ECRYPTO; errors of
 * rre_canonical_json() pass through. Does not allocate on the common path
 * (canonical text up to 4 KiB). May be called from any thread. */
RRE_API rre_status rre_content_hash(rre_event_type type, const json_t *payload,
                                    uint8_t out[RRE_HASH_SIZE]);

/** Lower-case hex of a hash, NUL-terminated. */
RRE_API void rre_hash_to_hex(const uint8_t hash[RRE_HASH_SIZE], char out[RRE_HASH_HEX_SIZE]);

/* ------------------------------------------------------------------------ */
/* Config keys                                                               */
/* ------------------------------------------------------------------------ */

/** The board of a config key. */
typedef enum rre_board {
    RRE_BOARD_HEX8 = 0,  /**< "hex8" */
    RRE_BOARD_SQUARE8,   /**< "square8" */
    RRE_BOARD_SQUARE19,  /**< "square19" */
    RRE_BOARD_HEXAGONAL, /**< "hexagonal" */
    RRE_BOARD_COUNT      /**< the number of boards (not a board) */
} rre_board;

#define RRE_CONFIG_KEY_MAX 16 /**< longest key "hexagonal_4p" plus NUL, rounded up */

/** A config key ("hex8_2p") parsed: a board and a player count. */
typedef struct rre_config_key {
    rre_board board; /**< the board */
    int num_players; /**< 2..4 */
} rre_config_key;

/** Parses `"<board>_<n>p"`: board one of hex8, square8, square19,
 * hexagonal and n a single digit 2..4. Anything else is RRE_ECONFIG_KEY with a detail
 * message saying what is wrong. Keys are lowercase only, as the Python side
 * writes them ("HEX8_2p" and "hex8_2P" are rejected), so every key has
 * exactly one spelling. NULL `key` is RRE_ECONFIG_KEY, NULL `out` RRE_EINVAL;
 * on failure *out is unchanged. */
RRE_API rre_status rre_config_key_parse(const char *key, rre_config_key *out);

/** Makes `"<board>_<n>p"` into buf (at least RRE_CONFIG_KEY_MAX bytes). An
 * unknown board (board names are lowercase too) or a count outside 2..4 is
 * RRE_ECONFIG_KEY; a buffer too small for the key is RRE_EINVAL. On failure
 * buf holds "" (when cap > 0). */
RRE_API rre_status rre_config_key_make(const char *board, int num_players, char *buf, size_t cap);

/** The name of a board, as in config keys ("hex8", ...); NULL when out of range. */
RRE_API const char *rre_board_name(rre_board board);
/** Parses a board name, lowercase as in config keys ("hex8", "square8", "square19",
 * "hexagonal"). Anything else is RRE_ECONFIG_KEY with a message listing the
 * boards; NULL arguments are RRE_EINVAL. *out is set only on success. */
RRE_API rre_status rre_board_parse(const char *name, rre_board *out);

/* ------------------------------------------------------------------------ */
/* Payload extraction (as the Python event_utils module)                    */
/* ------------------------------------------------------------------------ */

/** The config key of a payload with the catalog's fallbacks: config_key, then
 * config, then board_type + num_players. Writes it to buf (RRE_CONFIG_KEY_MAX
 * bytes) and returns buf, or NULL when none can be found or it is invalid.
 * A candidate that is absent, not a string (num_players: not an integer) or
 * not a valid key is skipped and the next one tried. Does not touch the
 * thread's last-error message. */
RRE_API const char *rre_extract_config_key(const json_t *payload, char *buf, size_t cap);

/** The model path with fallbacks: model_path, checkpoint_path, path. Borrowed
 * from the payload; NULL when absent or not a string. Like the catalog's
 * `a or b or c`, an empty string or a non-string falls through to the next. */
RRE_API const char *rre_extract_model_path(const json_t *payload);

/** Typed view of a TRAINING_COMPLETED payload. Strings are borrowed from the
 * payload (valid while it lives) except config_key, which points into the
 * struct. Missing numbers are 0 / false; `valid` says whether the fields the
 * schema requires were all found. The aliases loss and samples are honoured.
 * board_type and num_players are taken from the config key only when the
 * payload does not have them; one that is present with the wrong type is not
 * replaced and makes the view invalid. */
typedef struct rre_training_data {
    const char *config_key;  /**< as rre_extract_config_key() finds it; NULL when none */
    const char *board_type;  /**< board_type, else the board of the config key */
    int num_players;         /**< num_players, else the player count of the config key */
    const char *model_path;  /**< as rre_extract_model_path() finds it */
    int64_t epochs;          /**< number of epochs trained */
    double final_loss;       /**< final training loss (final_loss or loss) */
    int64_t samples_trained; /**< total samples used (samples_trained or samples) */
    const char *job_id;      /**< NULL when absent */
    double duration_seconds; /**< training duration; not required */
    bool early_stopped;      /**< whether early stopping triggered; not required */
    bool valid;              /**< all the fields the schema requires were found */
    char config_key_buf[RRE_CONFIG_KEY_MAX]; /**< the storage config_key points into */
} rre_training_data;

/** Fills *out with the view of a TRAINING_COMPLETED `payload`. Returns
 * RRE_ENOT_OBJECT for a non-object (the struct is zeroed), RRE_EINVAL for
 * NULL `out`, otherwise RRE_OK whatever `valid` says. */
RRE_API rre_status rre_extract_training_data(const json_t *payload, rre_training_data *out);

/** Typed view of an EVALUATION_COMPLETED payload; same conventions (the alias
 * games is honoured). */
typedef struct rre_evaluation_data {
    const char *config_key;        /**< as rre_extract_config_key() finds it; NULL when none */
    const char *board_type;        /**< board_type, else the board of the config key */
    int num_players;               /**< num_players, else the player count of the config key */
    const char *model_path;        /**< as rre_extract_model_path() finds it */
    double elo;                    /**< estimated Elo rating */
    int64_t games_played;          /**< games used in the evaluation (games_played or games) */
    double win_rate;               /**< win rate, 0.0 to 1.0 */
    bool is_multi_harness;         /**< evaluated with several harnesses; not required */
    const json_t *harness_results; /**< borrowed object or NULL */
    const char *best_harness;      /**< NULL when absent */
    const json_t *composite_participant_ids; /**< borrowed array or NULL */
    bool valid;                              /**< all the fields the schema requires were found */
    char config_key_buf[RRE_CONFIG_KEY_MAX]; /**< the storage config_key points into */
} rre_evaluation_data;

/** Fills *out with the view of an EVALUATION_COMPLETED `payload`; returns
 * what rre_extract_training_data() returns in the same cases. */
RRE_API rre_status rre_extract_evaluation_data(const json_t *payload, rre_evaluation_data *out);

/* ------------------------------------------------------------------------ */
/* The event envelope                                                        */
/* ------------------------------------------------------------------------ */

/** Where an event came from. */
typedef enum rre_origin {
    RRE_ORIGIN_LOCAL = 0,   /**< published in this process */
    RRE_ORIGIN_PROCESS = 1, /**< another process, through the durable queue */
    RRE_ORIGIN_HOST = 2,    /**< another host, through the NATS bridge */
} rre_origin;

#define RRE_TIMESTAMP_MAX 32 /**< "2026-01-02T03:04:05.678901Z" and a NUL */
#define RRE_TRACE_ID_MAX 56  /**< W3C traceparent `"00-<32 hex>-<16 hex>-<2 hex>"` and a NUL */

/** An event as subscribers see it. Handlers borrow it (and everything it
 * points to) until they return; rre_event_copy() keeps one longer. */
typedef struct rre_event {
    rre_event_type type;               /**< canonical type (never an alias) */
    json_t *payload;                   /**< a JSON object; handlers must not modify it */
    const char *source;                /**< publishing component, "" when unknown */
    const char *hostname;              /**< publishing host, "" when unknown */
    char timestamp[RRE_TIMESTAMP_MAX]; /**< ISO 8601 UTC */
    char trace_id[RRE_TRACE_ID_MAX];   /**< W3C trace-context traceparent */
    uint8_t hash[RRE_HASH_SIZE];       /**< content hash (rre_content_hash) */
    int64_t event_id;                  /**< durable queue id, 0 when not persisted */
    rre_origin origin;                 /**< where the event came from */
    /** The payload's JSON text as the queue holds it, for events a subscriber
     * with `lazy_payload` delivers (then `payload` may be NULL: see
     * rre_event_payload()); NULL otherwise. Not NUL-terminated in general:
     * use payload_len. */
    const char *payload_text;
    size_t payload_len; /**< bytes of payload_text */
} rre_event;

#include <rre/router.h>
#include <rre/queue.h>
#include <rre/flow.h>
#include <rre/link.h>
#include <rre/bridge.h>

#ifdef __cplusplus
}
#endif

#endif /* RRE_RRE_H */
