/*
 * emit.c - builds and publishes the payload of a typed emitter call.
 */
#include "emit.h"

#include <math.h>

static json_t *field_value(const struct rre__emit_field *f, rre_status *st)
{
    *st = RRE_OK;
    switch (f->type) {
    case RRE_FT_STR:
        if (f->v.s == NULL)
            break;
        return json_string(f->v.s);
    case RRE_FT_INT:
        return json_integer((json_int_t)f->v.i);
    case RRE_FT_FLOAT:
        if (!isfinite(f->v.f)) {
            *st = rre__error(RRE_EINVAL, "field '%s' is not a finite number", f->name);
            return NULL;
        }
        return json_real(f->v.f);
    case RRE_FT_BOOL:
        return json_boolean(f->v.b);
    default:
        if (f->v.j == NULL)
            break;
        return json_deep_copy(f->v.j);
    }
    if (f->nullable)
        return json_null();
    *st = rre__error(RRE_EINVAL, "field '%s' is required and was given as NULL", f->name);
    return NULL;
}

rre_status rre__emit(rre_router *router, rre_event_type type, const struct rre__emit_field *fields,
                     size_t count, const json_t *extra, const rre_publish_options *opts,
                     rre_publish_result *out)
{
    if (router == NULL)
        return rre__error(RRE_EINVAL, "emit %s: router is NULL", rre_event_name(type));
    if (extra != NULL && !json_is_object(extra))
        return rre__error(RRE_ENOT_OBJECT, "emit %s: extra fields are not a JSON object",
                          rre_event_name(type));
    json_t *payload = json_object();
    if (payload == NULL)
        return rre__error(RRE_ENOMEM, "emit %s: out of memory", rre_event_name(type));
    for (size_t i = 0; i < count; i++) {
        if (!fields[i].present)
            continue;
        rre_status st;
        json_t *v = field_value(&fields[i], &st);
        if (v == NULL) {
            json_decref(payload);
            return st != RRE_OK ? st : rre__error(RRE_ENOMEM, "emit: out of memory");
        }
        if (json_object_set_new(payload, fields[i].name, v) != 0) {
            json_decref(payload);
            return rre__error(RRE_ENOMEM, "emit: out of memory");
        }
    }
    if (extra != NULL) {
        /* Deep copies: the payload is shared once published and must not
         * alias values the caller may change. */
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)extra, key, value)
        {
            if (json_object_get(payload, key) != NULL)
                continue;
            if (json_object_set_new(payload, key, json_deep_copy(value)) != 0) {
                json_decref(payload);
                return rre__error(RRE_ENOMEM, "emit: out of memory");
            }
        }
    }
    rre_status st = rre_router_publish_type(router, type, payload, opts, out);
    json_decref(payload);
    return st;
}
