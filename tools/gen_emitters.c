/*
 * gen_emitters.c - writes the typed emitters from the catalog's data:
 * include/rre/emitters.h (declarations) and src/emitters.c (definitions).
 *
 *   gen_emitters HEADER SOURCE           write both files
 *   gen_emitters --check HEADER SOURCE   exit 1 when either differs from what
 *                                        would be written (a CTest test)
 *
 * One emitter per event type whose payload the catalog gives
 * (rre_event_info.has_schema): the required fields become typed parameters,
 * the other known fields go in a per-type struct of optional pointers, and a
 * JSON object carries anything else. The output depends only on the catalog,
 * so it is reproducible.
 */
#include <rre/rre.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable string. */
struct out {
    char *data;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->data + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            fprintf(stderr, "gen_emitters: formatting failed\n");
            exit(2);
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n + 1024;
        char *data = realloc(o->data, cap);
        if (data == NULL) {
            fprintf(stderr, "gen_emitters: out of memory\n");
            exit(2);
        }
        o->data = data;
        o->cap = cap;
    }
}

/* A C identifier for a field name: keywords and the emitter's own
 * parameter names get a trailing underscore. */
static const char *ident(const char *name, char *buf, size_t cap)
{
    static const char *const reserved[] = {
        "auto",     "break",  "case",   "char",     "const",    "continue", "default",  "do",
        "double",   "else",   "enum",   "extern",   "float",    "for",      "goto",     "if",
        "inline",   "int",    "long",   "register", "restrict", "return",   "short",    "signed",
        "sizeof",   "static", "struct", "switch",   "typedef",  "union",    "unsigned", "void",
        "volatile", "while",  "bool",   "true",     "false",    "router",   "optional", "extra",
        "opts",     "out",    "fields", "o"};
    size_t j = 0;
    for (const char *p = name; *p != '\0' && j + 2 < cap; p++)
        buf[j++] = (isalnum((unsigned char)*p) || *p == '_') ? *p : '_';
    buf[j] = '\0';
    if (j == 0 || isdigit((unsigned char)buf[0])) {
        memmove(buf + 1, buf, j + 1);
        buf[0] = '_';
        j++;
    }
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (strcmp(buf, reserved[i]) == 0 && j + 2 < cap) {
            buf[j] = '_';
            buf[j + 1] = '\0';
            break;
        }
    }
    return buf;
}

static void lower(const char *in, char *buf, size_t cap)
{
    size_t j = 0;
    for (; in[j] != '\0' && j + 1 < cap; j++)
        buf[j] = (char)tolower((unsigned char)in[j]);
    buf[j] = '\0';
}

/* Comment text with no comment terminator in it, on one line, Doxygen's
 * markup characters escaped. */
static void comment_text(struct out *o, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        if (p[0] == '*' && p[1] == '/') {
            put(o, "* ");
            continue;
        }
        if (strchr("<>\\@&#%", *p) != NULL) /* Doxygen would read these as markup */
            put(o, "\\");
        put(o, "%c", (*p == '\n' || *p == '\r') ? ' ' : *p);
    }
}

/* The C type of a required parameter. */
static const char *param_type(rre_field_type t)
{
    switch (t) {
    case RRE_FT_STR:
        return "const char *";
    case RRE_FT_INT:
        return "int64_t ";
    case RRE_FT_FLOAT:
        return "double ";
    case RRE_FT_BOOL:
        return "bool ";
    default:
        return "const json_t *";
    }
}

/* The C type of an optional member (a pointer; NULL means absent). */
static const char *member_type(rre_field_type t)
{
    switch (t) {
    case RRE_FT_STR:
        return "const char *";
    case RRE_FT_INT:
        return "const int64_t *";
    case RRE_FT_FLOAT:
        return "const double *";
    case RRE_FT_BOOL:
        return "const bool *";
    default:
        return "const json_t *";
    }
}

static const char *union_member(rre_field_type t)
{
    switch (t) {
    case RRE_FT_STR:
        return "s";
    case RRE_FT_INT:
        return "i";
    case RRE_FT_FLOAT:
        return "f";
    case RRE_FT_BOOL:
        return "b";
    default:
        return "j";
    }
}

static bool pointer_valued(rre_field_type t)
{
    return t != RRE_FT_INT && t != RRE_FT_FLOAT && t != RRE_FT_BOOL;
}

static const char *ft_enum(rre_field_type t)
{
    switch (t) {
    case RRE_FT_ANY:
        return "RRE_FT_ANY";
    case RRE_FT_STR:
        return "RRE_FT_STR";
    case RRE_FT_INT:
        return "RRE_FT_INT";
    case RRE_FT_FLOAT:
        return "RRE_FT_FLOAT";
    case RRE_FT_BOOL:
        return "RRE_FT_BOOL";
    case RRE_FT_LIST:
        return "RRE_FT_LIST";
    case RRE_FT_LIST_STR:
        return "RRE_FT_LIST_STR";
    case RRE_FT_DICT:
        return "RRE_FT_DICT";
    case RRE_FT_DICT_STR_FLOAT:
        return "RRE_FT_DICT_STR_FLOAT";
    }
    return "RRE_FT_ANY";
}

static bool emitted(const rre_event_info *info)
{
    return info != NULL && info->has_schema && info->alias_of == RRE_EV_NONE;
}

static size_t count_fields(const rre_event_info *info, bool required)
{
    size_t n = 0;
    for (size_t k = 0; k < info->field_count; k++)
        n += ((info->fields[k].flags & RRE_FIELD_REQUIRED) != 0) == required;
    return n;
}

/* The signature, without a terminating ";" or body. */
static void signature(struct out *o, const rre_event_info *info, const char *lname)
{
    char id[128];
    put(o, "rre_status rre_emit_%s(\n    rre_router *router", lname);
    for (size_t k = 0; k < info->field_count; k++) {
        const rre_field_info *f = &info->fields[k];
        if (f->flags & RRE_FIELD_REQUIRED)
            put(o, ",\n    %s%s", param_type(f->type), ident(f->name, id, sizeof id));
    }
    if (count_fields(info, false) > 0)
        put(o, ",\n    const rre_%s_optional *optional", lname);
    put(o, ",\n    const json_t *extra,\n    const rre_publish_options *opts,\n"
           "    rre_publish_result *out)");
}

static void header(struct out *o)
{
    put(o, "/**\n"
           " * @file\n"
           " * emitters.h - part of the public interface; included by `<rre/rre.h>`, never alone.\n"
           " *\n"
           " * GENERATED by tools/gen_emitters.c from the catalog; do not edit. A test fails\n"
           " * when this file differs from what the generator writes.\n"
           " *\n"
           " * One typed emitter per event type whose payload the catalog gives. Each one\n"
           " * builds the payload and publishes it with rre_router_publish_type(), so it\n"
           " * has the same pipeline, errors, threading and result:\n"
           " *  - the required fields are parameters (strings and JSON values may not be\n"
           " *    NULL unless the field is nullable, in which case NULL writes null);\n"
           " *  - the other known fields are members of `rre_<name>_optional`, pointers\n"
           " *    where NULL means absent (`.epochs = &(int64_t){50}`); the struct\n"
           " *    pointer itself may be NULL;\n"
           " *  - `extra` (a JSON object or NULL, borrowed) adds further fields; the\n"
           " *    typed ones win when a name is in both;\n"
           " *  - JSON values given are deep-copied into the payload, nothing the caller\n"
           " *    passes is kept.\n"
           " */\n"
           "/* The generator decides this file's layout. */\n/* clang-format off */\n"
           "#ifndef RRE_EMITTERS_H\n#define RRE_EMITTERS_H\n\n");
    char lname[128], id[128];
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (!emitted(info))
            continue;
        lower(info->name, lname, sizeof lname);
        if (count_fields(info, false) > 0) {
            put(o, "/** The optional fields of %s: a NULL member is left out. */\n", info->name);
            put(o, "typedef struct rre_%s_optional {\n", lname);
            for (size_t k = 0; k < info->field_count; k++) {
                const rre_field_info *f = &info->fields[k];
                if (f->flags & RRE_FIELD_REQUIRED)
                    continue;
                put(o, "    %s%s; /**< %s", member_type(f->type), ident(f->name, id, sizeof id),
                    rre_field_type_name(f->type));
                if (f->flags & RRE_FIELD_NULLABLE)
                    put(o, " or null");
                if (f->description[0] != '\0') {
                    put(o, ": ");
                    comment_text(o, f->description);
                }
                put(o, " */\n");
            }
            put(o, "} rre_%s_optional;\n", lname);
        }
        put(o, "/** Publishes %s (%s)", info->name, rre_category_name(info->category));
        if (info->description[0] != '\0') {
            put(o, ": ");
            comment_text(o, info->description);
        }
        put(o, " */\n");
        put(o, "RRE_API ");
        signature(o, info, lname);
        put(o, ";\n\n");
    }
    put(o, "#endif /* RRE_EMITTERS_H */\n");
}

static void source(struct out *o)
{
    put(o, "/*\n"
           " * emitters.c - the typed emitters declared in <rre/emitters.h>.\n"
           " *\n"
           " * GENERATED by tools/gen_emitters.c from the catalog; do not edit.\n"
           " */\n"
           "/* The generator decides this file's layout. */\n/* clang-format off */\n"
           "#include \"emit.h\"\n\n"
           "#define RRE__COUNT(a) (sizeof(a) / sizeof((a)[0]))\n\n");
    char lname[128], id[128];
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (!emitted(info))
            continue;
        lower(info->name, lname, sizeof lname);
        signature(o, info, lname);
        put(o, "\n{\n");
        if (info->field_count == 0) {
            put(o, "    return rre__emit(router, RRE_EV_%s, NULL, 0, extra, opts, out);\n}\n\n",
                info->name);
            continue;
        }
        if (count_fields(info, false) > 0)
            put(o, "    const rre_%s_optional *o = optional;\n", lname);
        put(o, "    const struct rre__emit_field fields[] = {\n");
        for (size_t k = 0; k < info->field_count; k++) {
            const rre_field_info *f = &info->fields[k];
            const char *m = union_member(f->type);
            const char *nullable = (f->flags & RRE_FIELD_NULLABLE) ? "true" : "false";
            ident(f->name, id, sizeof id);
            if (f->flags & RRE_FIELD_REQUIRED) {
                put(o, "        {\"%s\", %s, true, %s, {.%s = %s}},\n", f->name, ft_enum(f->type),
                    nullable, m, id);
            } else if (pointer_valued(f->type)) {
                put(o,
                    "        {\"%s\", %s, o != NULL && o->%s != NULL, %s, {.%s = o != NULL ? "
                    "o->%s : NULL}},\n",
                    f->name, ft_enum(f->type), id, nullable, m, id);
            } else {
                put(o,
                    "        {\"%s\", %s, o != NULL && o->%s != NULL, %s, {.%s = o != NULL && "
                    "o->%s != NULL ? *o->%s : 0}},\n",
                    f->name, ft_enum(f->type), id, nullable, m, id, id);
            }
        }
        put(o, "    };\n");
        put(o,
            "    return rre__emit(router, RRE_EV_%s, fields, RRE__COUNT(fields), extra, opts, "
            "out);\n}\n\n",
            info->name);
    }
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct out o = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        put(&o, "%.*s", (int)n, buf);
    fclose(f);
    *len = o.len;
    return o.data != NULL ? o.data : calloc(1, 1);
}

static int write_or_check(const char *path, const struct out *o, bool check)
{
    if (check) {
        size_t len = 0;
        char *have = read_all(path, &len);
        bool same = have != NULL && len == o->len && memcmp(have, o->data, len) == 0;
        free(have);
        if (!same) {
            fprintf(stderr,
                    "%s is not what tools/gen_emitters.c writes from the catalog; regenerate it "
                    "(cmake --build BUILD --target regen_emitters)\n",
                    path);
            return 1;
        }
        return 0;
    }
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(o->data, 1, o->len, f) != o->len || fclose(f) != 0) {
        fprintf(stderr, "gen_emitters: cannot write %s\n", path);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool check = argc == 4 && strcmp(argv[1], "--check") == 0;
    if (argc != 3 && !check) {
        fprintf(stderr, "usage: gen_emitters [--check] HEADER SOURCE\n");
        return 2;
    }
    struct out h = {0}, c = {0};
    header(&h);
    source(&c);
    int rc = write_or_check(argv[check ? 2 : 1], &h, check);
    int rc2 = write_or_check(argv[check ? 3 : 2], &c, check);
    free(h.data);
    free(c.data);
    return rc != 0 ? rc : rc2;
}
