/*
 * emit.h - the one function behind the generated typed emitters
 * (src/emitters.c, written by tools/gen_emitters.c): builds a payload from
 * a list of typed fields and publishes it.
 */
#ifndef RRE_EMIT_H
#define RRE_EMIT_H

#include "internal.h"

/* One payload field of an emitter call. */
struct rre__emit_field {
    const char *name;
    rre_field_type type;
    bool present;  /* false: an optional field that was not given */
    bool nullable; /* a NULL string or JSON value becomes null instead of an error */
    union {
        const char *s;
        int64_t i;
        double f;
        bool b;
        const json_t *j;
    } v;
};

/* Builds the payload from `fields` (the present ones), adds the members of
 * `extra` (a JSON object or NULL; fields already set win), publishes it as
 * `type` and releases it. A required string or JSON field given as NULL
 * (and not nullable) is RRE_EINVAL naming the field; a non-finite float is
 * RRE_EINVAL; otherwise the result of rre_router_publish_type(). */
rre_status rre__emit(rre_router *router, rre_event_type type, const struct rre__emit_field *fields,
                     size_t count, const json_t *extra, const rre_publish_options *opts,
                     rre_publish_result *out);

#endif /* RRE_EMIT_H */
