/*
 * payload.c - turning JSON text into a payload object, the limits every
 * payload obeys, and the renaming of the seed's field aliases.
 *
 * Parsing is jansson's: it validates UTF-8 (rejecting overlong forms and
 * surrogates), rejects "\u0000" unless asked not to, and with
 * JSON_REJECT_DUPLICATES rejects an object that names a key twice. This file
 * adds the size limit before parsing, the nesting limit after it, and the
 * mapping of jansson's errors onto our status codes.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Depth of `value`, counting each array and object as one level (a flat
 * object has depth 1, a scalar depth 0), and whether it exceeds `max`.
 * Iterative with a fixed stack of `max` entries, so hostile input cannot
 * exhaust the C stack, and a value that (through json_object_set) contains
 * itself is reported as too deep instead of looping forever. */
struct frame {
    const json_t *container;
    void *iter;   /* next member of an object */
    size_t index; /* next element of an array */
};

static bool depth_exceeds(const json_t *value, size_t max)
{
    if (!json_is_object(value) && !json_is_array(value))
        return false;
    struct frame stack[RRE_PAYLOAD_MAX_DEPTH];
    if (max > RRE__ARRAY_LEN(stack))
        max = RRE__ARRAY_LEN(stack);
    if (max == 0)
        return true;
    size_t depth = 0;
    stack[depth++] = (struct frame){value, json_object_iter((json_t *)value), 0};
    while (depth > 0) {
        struct frame *top = &stack[depth - 1];
        const json_t *child = NULL;
        if (json_is_object(top->container)) {
            if (top->iter != NULL) {
                child = json_object_iter_value(top->iter);
                top->iter = json_object_iter_next((json_t *)top->container, top->iter);
            }
        } else if (top->index < json_array_size(top->container)) {
            child = json_array_get(top->container, top->index++);
        }
        if (child == NULL) {
            depth--;
            continue;
        }
        if (!json_is_object(child) && !json_is_array(child))
            continue;
        if (depth == max)
            return true;
        stack[depth++] = (struct frame){child, json_object_iter((json_t *)child), 0};
    }
    return false;
}

static rre_status check_value(const json_t *payload)
{
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "payload is a JSON %s, not an object",
                          payload == NULL            ? "nothing"
                          : json_is_array(payload)   ? "array"
                          : json_is_string(payload)  ? "string"
                          : json_is_number(payload)  ? "number"
                          : json_is_boolean(payload) ? "boolean"
                                                     : "null");
    if (depth_exceeds(payload, RRE_PAYLOAD_MAX_DEPTH))
        return rre__error(RRE_ELIMIT, "payload nests arrays and objects deeper than %d levels",
                          RRE_PAYLOAD_MAX_DEPTH);
    return RRE_OK;
}

rre_status rre_payload_check(const json_t *payload)
{
    return check_value(payload);
}

/* jansson's message can quote the offending input; control characters and
 * non-ASCII bytes in it are replaced so the detail message is always
 * printable ASCII, whatever the input was. */
static void sanitize(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++) {
        if (*p < 0x20 || *p >= 0x7f)
            *p = '?';
    }
}

/* Maps a jansson decoding error onto a status and a detail message. */
static rre_status parse_error(json_error_t *err)
{
    sanitize(err->text);
    /* jansson gives up without any message (and without setting the error
     * code) when it cannot allocate its lexer's buffer: every syntax error
     * has a message. */
    if (err->text[0] == '\0')
        return rre__error(RRE_ENOMEM, "out of memory while parsing the payload");
    switch (json_error_code(err)) {
    case json_error_out_of_memory:
        return rre__error(RRE_ENOMEM, "out of memory while parsing the payload");
    case json_error_stack_overflow:
        return rre__error(RRE_ELIMIT,
                          "payload nests arrays and objects deeper than %d levels "
                          "(line %d, column %d)",
                          RRE_PAYLOAD_MAX_DEPTH, err->line, err->column);
    case json_error_numeric_overflow:
        return rre__error(RRE_ELIMIT,
                          "number out of range at line %d, column %d: %s (integers must fit in "
                          "64 bits, reals in a double)",
                          err->line, err->column, err->text);
    case json_error_null_character:
        return rre__error(RRE_EJSON,
                          "invalid JSON at line %d, column %d: NUL characters (\\u0000) are not "
                          "allowed in strings",
                          err->line, err->column);
    default:
        return rre__error(RRE_EJSON, "invalid JSON at line %d, column %d (byte %d): %s", err->line,
                          err->column, err->position, err->text);
    }
}

rre_status rre_payload_parse(const char *text, size_t len, json_t **out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_payload_parse: out is NULL");
    *out = NULL;
    if (text == NULL)
        return rre__error(RRE_EINVAL, "rre_payload_parse: text is NULL");
    if (len > RRE_PAYLOAD_MAX_BYTES)
        return rre__error(RRE_ELIMIT, "payload is %zu bytes; the limit is %u bytes", len,
                          RRE_PAYLOAD_MAX_BYTES);
    if (len == 0)
        return rre__error(RRE_EJSON, "payload is empty (expected a JSON object)");
    json_error_t err;
    json_t *value = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (value == NULL)
        return parse_error(&err);
    rre_status st = check_value(value);
    if (st != RRE_OK) {
        json_decref(value);
        return st;
    }
    *out = value;
    return RRE_OK;
}

/* The seed's aliases, in the order they are tried: where two aliases map to
 * the same field, the earlier one wins and the later one is left as it is. */
static const struct {
    const char *alias;
    const char *canonical;
} aliases[] = {
    {"config", "config_key"}, {"checkpoint_path", "model_path"}, {"path", "model_path"},
    {"loss", "final_loss"},   {"samples", "samples_trained"},    {"games", "games_played"},
};

size_t rre_payload_normalize(json_t *payload)
{
    if (!json_is_object(payload))
        return 0;
    size_t renamed = 0;
    for (size_t i = 0; i < RRE__ARRAY_LEN(aliases); i++) {
        json_t *value = json_object_get(payload, aliases[i].alias);
        if (value == NULL || json_object_get(payload, aliases[i].canonical) != NULL)
            continue;
        /* json_object_set takes its own reference, so `value` survives the
         * deletion of the alias. */
        if (json_object_set(payload, aliases[i].canonical, value) != 0)
            continue;
        json_object_del(payload, aliases[i].alias);
        renamed++;
    }
    return renamed;
}

rre_status rre_json_text(const json_t *value, char **out, size_t *len)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_json_text: out is NULL");
    *out = NULL;
    if (value == NULL)
        return rre__error(RRE_EINVAL, "rre_json_text: value is NULL");
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return rre__error(RRE_ENOMEM, "out of memory while writing JSON text");
    *out = text;
    if (len != NULL)
        *len = strlen(text);
    return RRE_OK;
}

void rre_free(void *p)
{
    free(p);
}
