/*
 * catalog.c - the event catalog: every event type, its spellings, its known
 * payload fields, the stage events, the lifecycles and the pipeline chain.
 *
 * The data lives in <rre/event_types.def> (the types) and catalog_fields.def
 * (their payload fields); this file turns it into tables and answers lookups.
 *
 * DESIGN: everything is static data except three derived structures that are
 * built once, on first use, under pthread_once: the per-type field ranges and
 * has_schema flags (filled into event_table), and the spelling hash table.
 * After the once-block has run nothing is ever written again, so readers need
 * no lock; pthread_once gives them the happens-before edge with the builder.
 * The builder checks the data's invariants (fields of one type contiguous,
 * no field twice, aliases without fields, no spelling naming two types) and
 * aborts through rre__panic() when one is broken: that is a bug in the data,
 * not a run-time condition.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------ */
/* The tables                                                                */
/* ------------------------------------------------------------------------ */

/* Written only inside catalog_build() (under pthread_once): field_count,
 * fields and has_schema. Everything else is the static initializer. */
static rre_event_info event_table[] = {
#define RRE_EVENT(name, value, category, documented, queue_spelling, alias_of, description)        \
    {RRE_EV_##name,                                                                                \
     #name,                                                                                        \
     value,                                                                                        \
     RRE_CAT_##category,                                                                           \
     (documented) != 0,                                                                            \
     queue_spelling,                                                                               \
     RRE_EV_##alias_of,                                                                            \
     description,                                                                                  \
     0,                                                                                            \
     NULL,                                                                                         \
     false},
#include <rre/event_types.def>
#undef RRE_EVENT
};

_Static_assert(RRE__ARRAY_LEN(event_table) == RRE_EVENT_TYPE_COUNT, "one row per event type");

/* The flag words of catalog_fields.def, mapped to the public flags. */
#define REQUIRED RRE_FIELD_REQUIRED
#define NULLABLE RRE_FIELD_NULLABLE
#define IN_SCHEMAS RRE_FIELD_IN_SCHEMAS
#define IN_CATALOG RRE_FIELD_IN_CATALOG

static const rre_field_info field_table[] = {
#define RRE_PAYLOAD_SCHEMA(event)
#define RRE_FIELD(event, name, type, flags, description)                                           \
    {name, RRE_FT_##type, (flags), description},
#include "catalog_fields.def"
#undef RRE_FIELD
#undef RRE_PAYLOAD_SCHEMA
};

#undef REQUIRED
#undef NULLABLE
#undef IN_SCHEMAS
#undef IN_CATALOG

/* field_owner[i] is the type field_table[i] belongs to. */
static const rre_event_type field_owner[] = {
#define RRE_PAYLOAD_SCHEMA(event)
#define RRE_FIELD(event, name, type, flags, description) RRE_EV_##event,
#include "catalog_fields.def"
#undef RRE_FIELD
#undef RRE_PAYLOAD_SCHEMA
};

static const rre_event_type schema_types[] = {
#define RRE_PAYLOAD_SCHEMA(event) RRE_EV_##event,
#define RRE_FIELD(event, name, type, flags, description)
#include "catalog_fields.def"
#undef RRE_FIELD
#undef RRE_PAYLOAD_SCHEMA
};

/* The stage events of the stage bus and the data event each maps to
 * (ITERATION_COMPLETE maps to no data event; it is its own type,
 * STAGE_ITERATION_COMPLETE, whose wire spelling is ITERATION_COMPLETE). */
static const rre_stage_event_info stage_table[] = {
    {"SELFPLAY_COMPLETE", "selfplay_complete", RRE_EV_SELFPLAY_COMPLETE},
    {"CANONICAL_SELFPLAY_COMPLETE", "canonical_selfplay_complete", RRE_EV_SELFPLAY_COMPLETE},
    {"GPU_SELFPLAY_COMPLETE", "gpu_selfplay_complete", RRE_EV_SELFPLAY_COMPLETE},
    {"SYNC_COMPLETE", "sync_complete", RRE_EV_DATA_SYNC_COMPLETED},
    {"PARITY_VALIDATION_COMPLETE", "parity_validation_complete",
     RRE_EV_PARITY_VALIDATION_COMPLETED},
    {"NPZ_EXPORT_STARTED", "npz_export_started", RRE_EV_NPZ_EXPORT_STARTED},
    {"NPZ_EXPORT_COMPLETE", "npz_export_complete", RRE_EV_NPZ_EXPORT_COMPLETE},
    {"TRAINING_COMPLETE", "training_complete", RRE_EV_TRAINING_COMPLETED},
    {"TRAINING_STARTED", "training_started", RRE_EV_TRAINING_STARTED},
    {"TRAINING_FAILED", "training_failed", RRE_EV_TRAINING_FAILED},
    {"EVALUATION_COMPLETE", "evaluation_complete", RRE_EV_EVALUATION_COMPLETED},
    {"SHADOW_TOURNAMENT_COMPLETE", "shadow_tournament_complete", RRE_EV_EVALUATION_COMPLETED},
    {"ELO_CALIBRATION_COMPLETE", "elo_calibration_complete", RRE_EV_ELO_UPDATED},
    {"CMAES_COMPLETE", "cmaes_complete", RRE_EV_CMAES_COMPLETED},
    {"PBT_COMPLETE", "pbt_complete", RRE_EV_PBT_GENERATION_COMPLETE},
    {"NAS_COMPLETE", "nas_complete", RRE_EV_NAS_COMPLETED},
    {"PROMOTION_COMPLETE", "promotion_complete", RRE_EV_MODEL_PROMOTED},
    {"TIER_GATING_COMPLETE", "tier_gating_complete", RRE_EV_MODEL_PROMOTED},
    {"ITERATION_COMPLETE", "iteration_complete", RRE_EV_STAGE_ITERATION_COMPLETE},
    {"CLUSTER_SYNC_COMPLETE", "cluster_sync_complete", RRE_EV_DATA_SYNC_COMPLETED},
    {"MODEL_SYNC_COMPLETE", "model_sync_complete", RRE_EV_P2P_MODEL_SYNCED},
};

/* ------------------------------------------------------------------------ */
/* Lifecycles and the pipeline chain (EVENT_CATALOG.md, "Event Ordering     */
/* Guarantees")                                                              */
/* ------------------------------------------------------------------------ */

#define STEP(types, flags)                                                                         \
    {                                                                                              \
        types, RRE__ARRAY_LEN(types), flags                                                        \
    }

static const rre_event_type training_started[] = {RRE_EV_TRAINING_STARTED};
static const rre_event_type training_progress[] = {RRE_EV_TRAINING_PROGRESS};
static const rre_event_type training_end[] = {RRE_EV_TRAINING_COMPLETED, RRE_EV_TRAINING_FAILED};
static const rre_lifecycle_step training_steps[] = {
    STEP(training_started, 0),
    STEP(training_progress, RRE_STEP_REPEATABLE),
    STEP(training_end, RRE_STEP_TERMINAL),
};
static const char *const training_keys[] = {"job_id", "config_key"};

static const rre_event_type evaluation_started[] = {RRE_EV_EVALUATION_STARTED};
static const rre_event_type evaluation_progress[] = {RRE_EV_EVALUATION_PROGRESS};
static const rre_event_type evaluation_end[] = {RRE_EV_EVALUATION_COMPLETED,
                                                RRE_EV_EVALUATION_FAILED};
static const rre_lifecycle_step evaluation_steps[] = {
    STEP(evaluation_started, 0),
    STEP(evaluation_progress, RRE_STEP_REPEATABLE),
    STEP(evaluation_end, RRE_STEP_TERMINAL),
};
static const char *const evaluation_keys[] = {"model_id", "model_path", "config_key"};

static const rre_event_type sync_started[] = {RRE_EV_DATA_SYNC_STARTED};
static const rre_event_type sync_end[] = {RRE_EV_DATA_SYNC_COMPLETED, RRE_EV_DATA_SYNC_FAILED};
static const rre_lifecycle_step sync_steps[] = {
    STEP(sync_started, 0),
    STEP(sync_end, RRE_STEP_TERMINAL),
};
static const char *const sync_keys[] = {"sync_id", "source", "sync_type"};

static const rre_event_type recovery_started[] = {RRE_EV_RECOVERY_INITIATED};
static const rre_event_type recovery_end[] = {RRE_EV_RECOVERY_COMPLETED, RRE_EV_RECOVERY_FAILED};
static const rre_lifecycle_step recovery_steps[] = {
    STEP(recovery_started, 0),
    STEP(recovery_end, RRE_STEP_TERMINAL),
};
static const char *const recovery_keys[] = {"target", "recovery_type"};

static const rre_event_type work_queued[] = {RRE_EV_WORK_QUEUED};
static const rre_event_type work_claimed[] = {RRE_EV_WORK_CLAIMED};
static const rre_event_type work_started[] = {RRE_EV_WORK_STARTED};
static const rre_event_type work_end[] = {RRE_EV_WORK_COMPLETED, RRE_EV_WORK_FAILED};
static const rre_lifecycle_step work_steps[] = {
    STEP(work_queued, 0),
    STEP(work_claimed, 0),
    STEP(work_started, 0),
    STEP(work_end, RRE_STEP_TERMINAL),
};
static const char *const work_keys[] = {"work_id"};

#undef STEP

#define LIFECYCLE(name, steps, keys)                                                               \
    {                                                                                              \
        name, steps, RRE__ARRAY_LEN(steps), keys, RRE__ARRAY_LEN(keys)                             \
    }

static const rre_lifecycle lifecycle_table[] = {
    LIFECYCLE("training", training_steps, training_keys),
    LIFECYCLE("evaluation", evaluation_steps, evaluation_keys),
    LIFECYCLE("sync", sync_steps, sync_keys),
    LIFECYCLE("recovery", recovery_steps, recovery_keys),
    LIFECYCLE("work", work_steps, work_keys),
};

#undef LIFECYCLE

/* The union, in order, of the "Pipeline Stage Ordering" list and the "Full
 * Training Pipeline" diagram. */
static const rre_event_type pipeline_chain[] = {
    RRE_EV_SELFPLAY_COMPLETE,
    RRE_EV_NEW_GAMES_AVAILABLE,
    RRE_EV_DATA_SYNC_COMPLETED,
    RRE_EV_NPZ_EXPORT_COMPLETE,
    RRE_EV_TRAINING_THRESHOLD_REACHED,
    RRE_EV_TRAINING_STARTED,
    RRE_EV_TRAINING_COMPLETED,
    RRE_EV_EVALUATION_COMPLETED,
    RRE_EV_MODEL_PROMOTED,
    RRE_EV_MODEL_DISTRIBUTION_COMPLETE,
};

/* ------------------------------------------------------------------------ */
/* The spelling table                                                        */
/* ------------------------------------------------------------------------ */

/* Longer inputs are unknown without hashing them; the builder checks that
 * every known spelling is shorter. */
#define SPELLING_MAX 64
#define SLOT_BITS 10
#define SLOT_COUNT (1u << SLOT_BITS)

/* One spelling. `spelling` points into the static tables above and keeps its
 * original case; `hash` is over its lower-case form. Empty: spelling NULL. */
struct slot {
    const char *spelling;
    uint32_t hash;
    uint16_t len;
    int16_t type;
};

static struct slot slots[SLOT_COUNT];
static size_t slot_used;
static size_t spelling_max_len;
static pthread_once_t catalog_once = PTHREAD_ONCE_INIT;

static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* FNV-1a over the bytes of `s`, which are already lower-case. */
static inline uint32_t hash_lower(const unsigned char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

/* True when `known` (any case) equals `lower` (lower case), both `len` bytes. */
static inline bool same_spelling(const char *known, const unsigned char *lower, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (ascii_lower((unsigned char)known[i]) != lower[i])
            return false;
    return true;
}

/* The slot holding `lower`, or the empty slot where it would go. */
static struct slot *find_slot(const unsigned char *lower, size_t len, uint32_t hash)
{
    for (uint32_t i = hash & (SLOT_COUNT - 1);; i = (i + 1) & (SLOT_COUNT - 1)) {
        struct slot *s = &slots[i];
        if (s->spelling == NULL ||
            (s->hash == hash && s->len == len && same_spelling(s->spelling, lower, len)))
            return s;
    }
}

/* How a spelling came into the table: a type's own spelling (its NAME, value
 * or queue spelling) or one of the stage table. */
enum spelling_origin { FROM_TYPE, FROM_STAGE };

/* Adds `spelling` for the canonical type `type`. A type's own spellings must
 * never name two types. A stage spelling that is already the own spelling of
 * a STAGE-category type is left to that type: the wire spelling decides (this
 * is the case of ELO_CALIBRATION_COMPLETE, see rre.h). */
static void add_spelling(const char *spelling, rre_event_type type, enum spelling_origin origin)
{
    size_t len = strlen(spelling);
    if (len == 0 || len >= SPELLING_MAX)
        rre__panic("catalog: spelling \"%s\" of %s is empty or too long", spelling,
                   event_table[type].name);
    unsigned char lower[SPELLING_MAX];
    for (size_t i = 0; i < len; i++)
        lower[i] = ascii_lower((unsigned char)spelling[i]);
    uint32_t hash = hash_lower(lower, len);
    struct slot *s = find_slot(lower, len, hash);
    if (s->spelling != NULL) {
        rre_event_type existing = (rre_event_type)s->type;
        if (existing == type)
            return;
        if (origin == FROM_STAGE && event_table[existing].category == RRE_CAT_STAGE)
            return;
        rre__panic("catalog: spelling \"%s\" names both %s and %s", spelling,
                   event_table[existing].name, event_table[type].name);
    }
    if (2 * (slot_used + 1) > SLOT_COUNT)
        rre__panic("catalog: spelling table over half full; raise SLOT_BITS");
    s->spelling = spelling;
    s->hash = hash;
    s->len = (uint16_t)len;
    s->type = (int16_t)type;
    slot_used++;
    if (len > spelling_max_len)
        spelling_max_len = len;
}

static rre_event_type canonical_of(rre_event_type type)
{
    rre_event_type target = event_table[type].alias_of;
    return target == RRE_EV_NONE ? type : target;
}

static void build_fields(void)
{
    size_t count = RRE__ARRAY_LEN(field_table);
    _Static_assert(RRE__ARRAY_LEN(field_table) == RRE__ARRAY_LEN(field_owner),
                   "one owner per field");
    for (size_t i = 0; i < count; i++) {
        rre_event_info *info = &event_table[field_owner[i]];
        if (info->alias_of != RRE_EV_NONE)
            rre__panic("catalog: alias type %s has field %s", info->name, field_table[i].name);
        if (info->fields == NULL) {
            info->fields = &field_table[i];
        } else if (info->fields + info->field_count != &field_table[i]) {
            rre__panic("catalog: fields of %s are not contiguous (at %s)", info->name,
                       field_table[i].name);
        }
        for (size_t j = 0; j < info->field_count; j++)
            if (strcmp(info->fields[j].name, field_table[i].name) == 0)
                rre__panic("catalog: field %s of %s listed twice", field_table[i].name, info->name);
        info->field_count++;
    }
    for (size_t i = 0; i < RRE__ARRAY_LEN(schema_types); i++)
        event_table[schema_types[i]].has_schema = true;
}

static void build_spellings(void)
{
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = &event_table[t];
        if (info->alias_of != RRE_EV_NONE && event_table[info->alias_of].alias_of != RRE_EV_NONE)
            rre__panic("catalog: %s is an alias of the alias %s", info->name,
                       event_table[info->alias_of].name);
        rre_event_type target = canonical_of((rre_event_type)t);
        add_spelling(info->name, target, FROM_TYPE);
        add_spelling(info->value, target, FROM_TYPE);
        add_spelling(info->queue_spelling, target, FROM_TYPE);
    }
    for (size_t i = 0; i < RRE__ARRAY_LEN(stage_table); i++) {
        const rre_stage_event_info *st = &stage_table[i];
        if (event_table[st->maps_to].alias_of != RRE_EV_NONE)
            rre__panic("catalog: stage event %s maps to the alias %s", st->name,
                       event_table[st->maps_to].name);
        add_spelling(st->name, st->maps_to, FROM_STAGE);
        add_spelling(st->value, st->maps_to, FROM_STAGE);
    }
}

static void catalog_build(void)
{
    build_fields();
    build_spellings();
}

static inline void catalog_init(void)
{
    if (pthread_once(&catalog_once, catalog_build) != 0)
        rre__panic("catalog: pthread_once failed");
}

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

const rre_event_info *rre_event_get(rre_event_type type)
{
    if ((int)type < 0 || (int)type >= RRE_EVENT_TYPE_COUNT)
        return NULL;
    catalog_init();
    return &event_table[type];
}

const char *rre_event_name(rre_event_type type)
{
    if ((int)type < 0 || (int)type >= RRE_EVENT_TYPE_COUNT)
        return "UNKNOWN";
    return event_table[type].name;
}

/* Writes `spelling` into `buf` for an error message: printable ASCII as is,
 * other bytes as \xNN, cut with "..." after about 64 input bytes. */
static void sanitize_spelling(const char *spelling, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t shown = len > 64 ? 64 : len;
    for (size_t i = 0; i < shown && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)spelling[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 0xf];
        }
    }
    if (shown < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static rre_status unknown_spelling(const char *spelling, size_t len)
{
    char shown[300];
    sanitize_spelling(spelling, len, shown, sizeof shown);
    return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type \"%s\"", shown);
}

rre_status rre_event_lookup_n(const char *spelling, size_t len, rre_event_type *out)
{
    if (out != NULL)
        *out = RRE_EV_NONE;
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_event_lookup: out is NULL");
    if (spelling == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "unknown event type (NULL)");
    catalog_init();
    if (len == 0 || len > spelling_max_len)
        return unknown_spelling(spelling, len);
    unsigned char lower[SPELLING_MAX];
    for (size_t i = 0; i < len; i++)
        lower[i] = ascii_lower((unsigned char)spelling[i]);
    const struct slot *s = find_slot(lower, len, hash_lower(lower, len));
    if (s->spelling == NULL)
        return unknown_spelling(spelling, len);
    *out = (rre_event_type)s->type;
    return RRE_OK;
}

rre_status rre_event_lookup(const char *spelling, rre_event_type *out)
{
    return rre_event_lookup_n(spelling, spelling != NULL ? strlen(spelling) : 0, out);
}

const rre_field_info *rre_event_field(rre_event_type type, const char *name)
{
    const rre_event_info *info = rre_event_get(type);
    if (info == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < info->field_count; i++)
        if (strcmp(info->fields[i].name, name) == 0)
            return &info->fields[i];
    return NULL;
}

const char *rre_field_type_name(rre_field_type type)
{
    switch (type) {
    case RRE_FT_ANY:
        return "any";
    case RRE_FT_STR:
        return "str";
    case RRE_FT_INT:
        return "int";
    case RRE_FT_FLOAT:
        return "float";
    case RRE_FT_BOOL:
        return "bool";
    case RRE_FT_LIST:
        return "list";
    case RRE_FT_LIST_STR:
        return "list[str]";
    case RRE_FT_DICT:
        return "dict";
    case RRE_FT_DICT_STR_FLOAT:
        return "dict[str, float]";
    }
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Categories                                                                */
/* ------------------------------------------------------------------------ */

static const char *const category_names[] = {
#define CATEGORY_NAME(id, text) text,
    RRE_CATEGORY_MAP(CATEGORY_NAME)
#undef CATEGORY_NAME
};

const char *rre_category_name(rre_category category)
{
    if ((int)category < 0 || (int)category >= RRE_CATEGORY_COUNT)
        return "unknown";
    return category_names[category];
}

rre_status rre_category_lookup(const char *name, rre_category *out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_category_lookup: out is NULL");
    if (name == NULL)
        return rre__error(RRE_ECATEGORY, "unknown event category (NULL)");
    size_t len = strlen(name);
    for (int c = 0; c < RRE_CATEGORY_COUNT; c++) {
        const char *known = category_names[c];
        if (strlen(known) != len)
            continue;
        size_t i = 0;
        while (i < len && ascii_lower((unsigned char)name[i]) == (unsigned char)known[i])
            i++;
        if (i == len) {
            *out = (rre_category)c;
            return RRE_OK;
        }
    }
    char shown[300];
    sanitize_spelling(name, len, shown, sizeof shown);
    return rre__error(RRE_ECATEGORY, "unknown event category \"%s\"", shown);
}

/* ------------------------------------------------------------------------ */
/* Stage events, lifecycles, pipeline chain                                  */
/* ------------------------------------------------------------------------ */

size_t rre_stage_event_count(void)
{
    return RRE__ARRAY_LEN(stage_table);
}

const rre_stage_event_info *rre_stage_event_get(size_t index)
{
    return index < RRE__ARRAY_LEN(stage_table) ? &stage_table[index] : NULL;
}

size_t rre_lifecycle_count(void)
{
    return RRE__ARRAY_LEN(lifecycle_table);
}

const rre_lifecycle *rre_lifecycle_get(size_t index)
{
    return index < RRE__ARRAY_LEN(lifecycle_table) ? &lifecycle_table[index] : NULL;
}

const rre_lifecycle *rre_lifecycle_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < RRE__ARRAY_LEN(lifecycle_table); i++)
        if (strcasecmp(lifecycle_table[i].name, name) == 0)
            return &lifecycle_table[i];
    return NULL;
}

const rre_event_type *rre_pipeline_chain(size_t *count)
{
    if (count != NULL)
        *count = RRE__ARRAY_LEN(pipeline_chain);
    return pipeline_chain;
}
