/*
 * validate.c - checking a payload against the schema of its event type, and
 * formatting the problems found.
 *
 * The schema is the catalog's field list for the type. Validation runs on
 * every publish, so the common path is one json_object_get per known field
 * and no allocation; the payload's own keys are walked only when unknown
 * fields are to be reported as notes.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Top-level fields the envelope may put in any payload. */
static const char *const envelope_fields[] = {"timestamp", "source", "trace_id", "created_at"};

static const char *json_type_text(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* Returns NULL when `v` has type `type`, otherwise what was found instead. */
static const char *type_mismatch(const json_t *v, rre_field_type type)
{
    switch (type) {
    case RRE_FT_ANY:
        return NULL;
    case RRE_FT_STR:
        return json_is_string(v) ? NULL : json_type_text(v);
    case RRE_FT_INT:
        return json_is_integer(v) ? NULL : json_type_text(v);
    case RRE_FT_FLOAT:
        return json_is_number(v) ? NULL : json_type_text(v);
    case RRE_FT_BOOL:
        return json_is_boolean(v) ? NULL : json_type_text(v);
    case RRE_FT_LIST:
        return json_is_array(v) ? NULL : json_type_text(v);
    case RRE_FT_LIST_STR: {
        if (!json_is_array(v))
            return json_type_text(v);
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (!json_is_string(json_array_get(v, i)))
                return "array with a non-string element";
        }
        return NULL;
    }
    case RRE_FT_DICT:
        return json_is_object(v) ? NULL : json_type_text(v);
    case RRE_FT_DICT_STR_FLOAT: {
        if (!json_is_object(v))
            return json_type_text(v);
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)v, key, member)
        {
            if (!json_is_number(member))
                return "object with a non-number value";
        }
        return NULL;
    }
    }
    return NULL;
}

/* Length of the well-formed UTF-8 sequence at s[0..len), or 0 when the bytes
 * there are not one (overlong forms, surrogates and values past U+10FFFF
 * included). Stores the code point in *cp. */
static size_t utf8_sequence(const unsigned char *s, size_t len, unsigned *cp)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, min = 0x80, c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, min = 0x800, c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3fu);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

bool rre__utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    unsigned cp;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = utf8_sequence(u + i, len - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

char *rre__utf8_repair(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    /* Each bad byte becomes U+FFFD (3 bytes). */
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    unsigned cp;
    while (i < len) {
        size_t n = u[i] < 0x80 ? 1 : utf8_sequence(u + i, len - i, &cp);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, u + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

json_t *rre__json_text_column(const char *s)
{
    if (s == NULL)
        return json_string("");
    if (rre__utf8_valid(s, strlen(s)))
        return json_string(s);
    char *fixed = rre__utf8_repair(s);
    json_t *v = fixed != NULL ? json_string(fixed) : NULL;
    free(fixed);
    return v;
}

/* The text that stands for the input at s[0..len) in a field name: `piece`
 * receives up to 7 bytes (not NUL-terminated), the return value is how many
 * input bytes it consumed and *piece_len its length. Printable ASCII and
 * well-formed UTF-8 outside the C1 controls are kept; every other byte is
 * written as \xNN and C1 controls as \u00NN, so the result is always
 * printable, valid UTF-8. */
static size_t name_piece(const unsigned char *s, size_t len, char piece[8], size_t *piece_len)
{
    unsigned c = s[0];
    if (c >= 0x20 && c < 0x7f) {
        piece[0] = (char)c;
        *piece_len = 1;
        return 1;
    }
    unsigned cp = 0;
    size_t n = c >= 0x80 ? utf8_sequence(s, len, &cp) : 0;
    if (n == 0) {
        snprintf(piece, 8, "\\x%02x", c);
        *piece_len = 4;
        return 1;
    }
    if (cp < 0xa0) {
        snprintf(piece, 8, "\\u%04x", cp);
        *piece_len = 6;
        return n;
    }
    memcpy(piece, s, n);
    *piece_len = n;
    return n;
}

/* Copies a field name into dst (RRE_PROBLEM_FIELD_MAX bytes) with unsafe
 * bytes escaped; a name that does not fit is cut on a character boundary and
 * ends in "...". */
static void copy_field_name(char dst[RRE_PROBLEM_FIELD_MAX], const char *name, size_t len)
{
    const unsigned char *s = (const unsigned char *)name;
    const size_t room = RRE_PROBLEM_FIELD_MAX - 1;
    size_t total = 0;
    char piece[8];
    size_t piece_len;
    for (size_t i = 0; i < len && total <= room;) {
        i += name_piece(s + i, len - i, piece, &piece_len);
        total += piece_len;
    }
    const size_t limit = total <= room ? room : room - 3;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t used = name_piece(s + i, len - i, piece, &piece_len);
        if (o + piece_len > limit)
            break;
        memcpy(dst + o, piece, piece_len);
        o += piece_len;
        i += used;
    }
    if (total > room) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static void add_problem(rre_problems *out, rre_problem_kind kind, const char *name, size_t len,
                        rre_field_type expected, const char *found)
{
    if (kind == RRE_PROBLEM_UNKNOWN_FIELD)
        out->notes++;
    else
        out->errors++;
    if (out->count >= RRE_PROBLEMS_MAX)
        return;
    rre_problem *p = &out->items[out->count++];
    p->kind = kind;
    copy_field_name(p->field, name, len);
    p->expected = expected;
    p->found = found;
}

static bool is_known_field(const rre_event_info *info, const char *key, size_t key_len)
{
    for (size_t i = 0; i < RRE__ARRAY_LEN(envelope_fields); i++) {
        if (strlen(envelope_fields[i]) == key_len && memcmp(envelope_fields[i], key, key_len) == 0)
            return true;
    }
    for (size_t i = 0; i < info->field_count; i++) {
        const char *name = info->fields[i].name;
        if (strlen(name) == key_len && memcmp(name, key, key_len) == 0)
            return true;
    }
    return false;
}

rre_status rre_validate(rre_event_type type, const json_t *payload, unsigned flags,
                        rre_problems *out)
{
    if (out != NULL)
        out->count = out->errors = out->notes = 0;
    const rre_event_info *info = rre_event_get(type);
    if (info == NULL)
        return rre__error(RRE_EUNKNOWN_TYPE, "rre_validate: event type %d is out of range",
                          (int)type);
    /* An alias without a field list of its own has the schema of the type it
     * stands for. */
    if (info->field_count == 0 && info->alias_of != RRE_EV_NONE) {
        const rre_event_info *target = rre_event_get(info->alias_of);
        if (target != NULL)
            info = target;
    }
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "rre_validate: payload is not a JSON object");

    size_t errors = 0;
    for (size_t i = 0; i < info->field_count; i++) {
        const rre_field_info *f = &info->fields[i];
        const json_t *v = json_object_get(payload, f->name);
        const char *found;
        rre_problem_kind kind;
        if (v == NULL) {
            if (!(f->flags & RRE_FIELD_REQUIRED))
                continue;
            kind = RRE_PROBLEM_MISSING;
            found = "";
        } else if (json_is_null(v) && (f->flags & RRE_FIELD_NULLABLE)) {
            continue;
        } else if ((found = type_mismatch(v, f->type)) == NULL) {
            continue;
        } else {
            kind = RRE_PROBLEM_WRONG_TYPE;
        }
        errors++;
        if (out == NULL)
            break;
        add_problem(out, kind, f->name, strlen(f->name), f->type, found);
    }

    /* Notes only mean something for a type whose fields the documents list. */
    if (out != NULL && (flags & RRE_VALIDATE_NOTES) && info->field_count > 0) {
        void *it = json_object_iter((json_t *)payload);
        for (; it != NULL; it = json_object_iter_next((json_t *)payload, it)) {
            const char *key = json_object_iter_key(it);
            size_t key_len = json_object_iter_key_len(it);
            if (!is_known_field(info, key, key_len))
                add_problem(out, RRE_PROBLEM_UNKNOWN_FIELD, key, key_len, RRE_FT_ANY, "");
        }
    }

    if (errors == 0)
        return RRE_OK;
    if (out != NULL && out->count > 0) {
        char first[160];
        rre_problem_format(&out->items[0], first, sizeof first);
        return rre__error(RRE_EINVALID_PAYLOAD, "%s payload has %zu error%s; first: %s", info->name,
                          out->errors, out->errors == 1 ? "" : "s", first);
    }
    return rre__error(RRE_EINVALID_PAYLOAD, "%s payload does not match its schema", info->name);
}

int rre_problem_format(const rre_problem *problem, char *buf, size_t cap)
{
    if (buf == NULL)
        cap = 0;
    if (problem == NULL) {
        if (cap > 0)
            buf[0] = '\0';
        return 0;
    }
    switch (problem->kind) {
    case RRE_PROBLEM_MISSING:
        return snprintf(buf, cap, "missing required field '%s' (%s)", problem->field,
                        rre_field_type_name(problem->expected));
    case RRE_PROBLEM_WRONG_TYPE:
        return snprintf(buf, cap, "field '%s': expected %s, found %s", problem->field,
                        rre_field_type_name(problem->expected),
                        problem->found != NULL ? problem->found : "something else");
    case RRE_PROBLEM_UNKNOWN_FIELD:
        return snprintf(buf, cap, "note: unknown field '%s'", problem->field);
    }
    return snprintf(buf, cap, "problem with field '%s'", problem->field);
}
