/*
 * gen_api_doc.c - writes the C API reference (docs/REFERENCE.md) from the
 * public headers.
 *
 *   gen_api_doc OUT.md HEADER...           write the reference
 *   gen_api_doc --check OUT.md HEADER...   exit 1 when OUT.md differs from what
 *                                          would be written (a CTest test)
 *
 * One section per header, in the order given: the header's opening comment
 * as prose, its banner comments as subsection headings, and every
 * declaration (functions, typedefs, groups of #define constants, X-macro
 * lists) verbatim in a C block under a heading naming it, followed by the
 * comment that precedes it in the header. Links point from docs/ into
 * include/. The output depends only on the headers' text, the number of
 * entries of a .def list they include and their paths from include/ on, so
 * it is reproducible.
 *
 * Exit status 2 for a usage error, a file that cannot be read or written, or
 * a header this reader cannot follow (an unterminated comment or
 * declaration).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "gen_api_doc"
#define REGEN_COMMAND "cmake --build build --target regen_api_doc"
#define CATALOG_LINK "[EVENT_CATALOG.md](EVENT_CATALOG.md)"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *grow(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (q == NULL)
        die("out of memory");
    return q;
}

static char *copy(const char *s, size_t n)
{
    char *p = grow(NULL, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- Growable strings and string lists ---- */

struct buf {
    char *data;
    size_t len, cap;
};

static void add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = b->cap * 2 + n + 256;
        b->data = grow(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void adds(struct buf *b, const char *s)
{
    add(b, s, strlen(s));
}

static void addc(struct buf *b, char c)
{
    add(b, &c, 1);
}

static void addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("formatting failed");
    char *tmp = grow(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    add(b, tmp, (size_t)n);
    free(tmp);
}

struct list {
    char **v;
    size_t n, cap;
};

/* Appends `s`, which the list then owns. */
static void push(struct list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap * 2 + 8;
        l->v = grow(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

static void list_free(struct list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct list){0};
}

static bool has(const struct list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* "a", "a and b", "a, b and c", each item in backticks. */
static void add_joined(struct buf *b, const struct list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0)
            adds(b, i + 1 == l->n ? " and " : ", ");
        addf(b, "`%s`", l->v[i]);
    }
}

/* ---- Files ---- */

/* Reads a whole file; false when it cannot be opened or read (errno set). */
static bool read_all(const char *path, struct buf *b)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        add(b, chunk, n);
    bool ok = ferror(f) == 0;
    fclose(f);
    add(b, "", 0);
    return ok;
}

/* A file split into lines, without line ends or trailing blanks. */
struct text {
    const char *path;
    char *data;
    char **line;
    size_t count;
};

static void load(struct text *t, const char *path)
{
    struct buf b = {0};
    if (!read_all(path, &b)) {
        free(b.data);
        die("cannot read %s: %s", path, strerror(errno));
    }
    *t = (struct text){.path = path, .data = b.data};
    size_t cap = 0;
    for (char *p = b.data; *p != '\0';) {
        char *nl = strchr(p, '\n');
        char *next = nl != NULL ? nl + 1 : p + strlen(p);
        char *end = nl != NULL ? nl : next;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        *end = '\0';
        if (t->count == cap) {
            cap = cap * 2 + 64;
            t->line = grow(t->line, cap * sizeof *t->line);
        }
        t->line[t->count++] = p;
        p = next;
    }
}

static void unload(struct text *t)
{
    free(t->data);
    free(t->line);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* The directory part of a path ("." when there is none). */
static char *dir_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return copy(".", 1);
    return copy(path, slash == path ? 1 : (size_t)(slash - path));
}

/* The header's path from the top of the source tree ("include/rre/rre.h"):
 * from its last "include/" directory on, or NULL when it has none. */
static const char *tree_path(const char *path)
{
    const char *found = NULL;
    for (const char *p = path; (p = strstr(p, "include/")) != NULL; p++)
        if (p == path || p[-1] == '/')
            found = p;
    return found;
}

/* ---- Lines of C ---- */

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static bool is_blank(const char *s)
{
    return *skip_ws(s) == '\0';
}

static size_t indent_of(const char *s)
{
    return (size_t)(skip_ws(s) - s);
}

static bool is_ident(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static bool is_directive(const char *line)
{
    return *skip_ws(line) == '#';
}

/* Whether `line` is the preprocessor directive `name`. */
static bool directive(const char *line, const char *name)
{
    const char *p = skip_ws(line);
    if (*p != '#')
        return false;
    p = skip_ws(p + 1);
    size_t n = strlen(name);
    return strncmp(p, name, n) == 0 && !is_ident(p[n]);
}

/* The first word after a directive's name ("#define NAME ..." gives NAME). */
static char *directive_arg(const char *line)
{
    const char *p = skip_ws(skip_ws(line) + 1);
    while (is_ident(*p))
        p++;
    p = skip_ws(p);
    const char *s = p;
    while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '(')
        p++;
    return copy(s, (size_t)(p - s));
}

/* The target of an #include, delimiters included ("<rre/router.h>"). */
static char *include_target(const char *line)
{
    const char *p = skip_ws(skip_ws(skip_ws(line) + 1) + strlen("include"));
    const char *close = NULL;
    if (*p == '<')
        close = strchr(p + 1, '>');
    else if (*p == '"')
        close = strchr(p + 1, '"');
    if (close == NULL)
        return copy(p, strlen(p));
    return copy(p, (size_t)(close - p) + 1);
}

static bool continued(const char *line)
{
    size_t n = strlen(line);
    return n > 0 && line[n - 1] == '\\';
}

static bool opens_comment(const char *line)
{
    const char *p = skip_ws(line);
    return p[0] == '/' && p[1] == '*';
}

/* Whether a comment is still open at the end of `line` (given whether one
 * was open at its start). */
static bool comment_open_after(const char *line, bool open)
{
    for (const char *p = line; *p != '\0'; p++) {
        if (open && p[0] == '*' && p[1] == '/') {
            open = false;
            p++;
        } else if (!open && p[0] == '/' && p[1] == '*') {
            open = true;
            p++;
        } else if (!open && p[0] == '/' && p[1] == '/') {
            break;
        }
    }
    return open;
}

/* The line closing the comment that line i opens. */
static size_t comment_close(const struct text *t, size_t i)
{
    size_t k = i;
    for (bool open = comment_open_after(t->line[i], false); open;) {
        if (++k >= t->count)
            die("%s:%zu: unterminated comment", t->path, i + 1);
        open = comment_open_after(t->line[k], true);
    }
    return k;
}

/* Whether lines i..j hold nothing but one comment. */
static bool only_comment(const struct text *t, size_t i, size_t j)
{
    const char *from = i == j ? skip_ws(t->line[i]) + 2 : t->line[j];
    const char *end = strstr(from, "*/");
    return end != NULL && is_blank(end + 2);
}

/* The trimmed text of the one-line comment on line i, or NULL. */
static char *one_line_comment(const struct text *t, size_t i)
{
    if (i >= t->count || !opens_comment(t->line[i]))
        return NULL;
    const char *s = skip_ws(skip_ws(t->line[i]) + 2);
    const char *end = strstr(s, "*/");
    if (end == NULL || !is_blank(end + 2))
        return NULL;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    return copy(s, (size_t)(end - s));
}

static bool all_dashes(const char *s)
{
    size_t n = strspn(s, "-");
    return n >= 3 && s[n] == '\0';
}

/* The title of a banner starting on line i, with *last set to its last
 * line: a one-line comment between two one-line comments of dashes, or a
 * one-line comment "---- Title ----". NULL when line i starts no banner. */
static char *banner(const struct text *t, size_t i, size_t *last)
{
    char *first = one_line_comment(t, i);
    if (first == NULL)
        return NULL;
    char *title = NULL;
    size_t n = strlen(first);
    if (all_dashes(first)) {
        char *middle = one_line_comment(t, i + 1);
        char *end = one_line_comment(t, i + 2);
        if (middle != NULL && end != NULL && middle[0] != '\0' && !all_dashes(middle) &&
            all_dashes(end)) {
            title = middle;
            middle = NULL;
            *last = i + 2;
        }
        free(middle);
        free(end);
    } else if (n > 6 && strncmp(first, "---", 3) == 0 && strcmp(first + n - 3, "---") == 0) {
        const char *s = first + strspn(first, "- ");
        const char *e = first + n;
        while (e > s && (e[-1] == '-' || e[-1] == ' '))
            e--;
        if (e > s) {
            title = copy(s, (size_t)(e - s));
            *last = i;
        }
    }
    free(first);
    return title;
}

/* The text of the comment on lines i..j without its decoration, one entry
 * per line, relative indentation kept, leading and trailing blank lines
 * dropped. */
static void comment_text(const struct text *t, size_t i, size_t j, struct list *out)
{
    size_t from = out->n;
    for (size_t k = i; k <= j; k++) {
        const char *s = t->line[k];
        if (k == i) {
            s = skip_ws(s) + 2;
            if (*s == ' ')
                s++;
        } else {
            const char *p = skip_ws(s);
            if (p[0] == '*' && p[1] != '/') {
                s = p[1] == ' ' ? p + 2 : p + 1;
            } else if (p[0] == '*') {
                s = p;
            } else {
                for (int n = 0; n < 3 && (*s == ' ' || *s == '\t'); n++)
                    s++;
            }
        }
        const char *end = k == j ? strstr(s, "*/") : NULL;
        if (end == NULL)
            end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1]))
            end--;
        push(out, copy(s, (size_t)(end - s)));
    }
    while (out->n > from && is_blank(out->v[out->n - 1]))
        free(out->v[--out->n]);
    size_t lead = from;
    while (lead < out->n && is_blank(out->v[lead]))
        lead++;
    if (lead > from) {
        for (size_t k = from; k < lead; k++)
            free(out->v[k]);
        memmove(out->v + from, out->v + lead, (out->n - lead) * sizeof *out->v);
        out->n -= lead - from;
    }
}

/* The closing quote of the string or character literal opening at `p`
 * (its last character when it is not closed on the line). */
static const char *literal_end(const char *p)
{
    char quote = *p;
    for (p++; *p != '\0' && *p != quote; p++)
        if (*p == '\\' && p[1] != '\0')
            p++;
    return *p == '\0' ? p - 1 : p;
}

/* Appends the code of line `s` to `b`, each comment replaced by one space
 * and a "//" comment dropped; string and character literals are copied
 * as they are. `comment` says whether a comment is open at the start of the
 * line; returns whether one is open at its end. */
static bool line_code(const char *s, bool comment, struct buf *b)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (comment) {
            if (p[0] == '*' && p[1] == '/') {
                comment = false;
                p++;
            }
        } else if (p[0] == '/' && p[1] == '*') {
            comment = true;
            p++;
            addc(b, ' ');
        } else if (p[0] == '/' && p[1] == '/') {
            break;
        } else if (*p == '"' || *p == '\'') {
            const char *q = p;
            p = literal_end(p);
            add(b, q, (size_t)(p - q + 1));
        } else {
            addc(b, *p);
        }
    }
    return comment;
}

/* The last line of the C declaration starting on line i: the line of its
 * ';' outside braces, parentheses, comments and literals (or of the end of a
 * comment opened after it). Preprocessor lines inside it are passed over. */
static size_t decl_end(const struct text *t, size_t i)
{
    int depth = 0;
    bool comment = false, done = false, cont = false;
    struct buf code = {0};
    for (size_t k = i; k < t->count; k++) {
        const char *s = t->line[k];
        if (!comment && (cont || is_directive(s))) {
            cont = continued(s);
            continue;
        }
        code.len = 0;
        add(&code, "", 0);
        comment = line_code(s, comment, &code);
        for (const char *p = code.data; *p != '\0'; p++) {
            if (*p == '"' || *p == '\'') {
                p = literal_end(p);
            } else if (*p == '{' || *p == '(' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ')' || *p == ']') {
                depth--;
            } else if (*p == ';' && depth == 0) {
                done = true;
            }
        }
        if (done && !comment) {
            free(code.data);
            return k;
        }
    }
    die("%s:%zu: declaration without an end", t->path, i + 1);
}

/* The last line of the directive on line i: continuation lines and a
 * trailing comment included. */
static size_t directive_end(const struct text *t, size_t i)
{
    size_t k = i;
    while (continued(t->line[k]) && k + 1 < t->count)
        k++;
    if (comment_open_after(t->line[k], false))
        k = comment_close(t, k);
    return k;
}

/* The #endif matching the conditional on line i. */
static size_t matching_endif(const struct text *t, size_t i)
{
    int depth = 0;
    for (size_t k = i; k < t->count; k++) {
        const char *s = t->line[k];
        if (directive(s, "if") || directive(s, "ifdef") || directive(s, "ifndef"))
            depth++;
        else if (directive(s, "endif") && --depth == 0)
            return k;
    }
    die("%s:%zu: conditional without #endif", t->path, i + 1);
}

/* Lines i..j without comments and preprocessor lines, on one line. */
static char *code_only(const struct text *t, size_t i, size_t j)
{
    struct buf b = {0};
    bool comment = false, cont = false;
    for (size_t k = i; k <= j; k++) {
        const char *s = t->line[k];
        if (!comment && (cont || is_directive(s))) {
            cont = continued(s);
            continue;
        }
        comment = line_code(s, comment, &b);
        addc(&b, ' ');
    }
    add(&b, "", 0);
    return b.data;
}

/* The identifier that ends just before `end` (array bounds skipped). */
static char *ident_before(const char *start, const char *end)
{
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    if (end > start && end[-1] == ']') {
        while (end > start && end[-1] != '[')
            end--;
        if (end > start)
            end--;
        while (end > start && isspace((unsigned char)end[-1]))
            end--;
    }
    const char *s = end;
    while (s > start && is_ident(s[-1]))
        s--;
    return copy(s, (size_t)(end - s));
}

static char *ident_at(const char *p)
{
    p = skip_ws(p);
    const char *s = p;
    while (is_ident(*p))
        p++;
    return copy(s, (size_t)(p - s));
}

/* The name a C declaration declares: the function, the typedef name (after
 * the braces of a struct or enum, inside the parentheses of a function
 * pointer) or the last identifier. */
static char *decl_name(const char *code)
{
    const char *p = skip_ws(code);
    char *name = NULL;
    if (strncmp(p, "typedef", 7) == 0 && !is_ident(p[7])) {
        const char *close = strrchr(p, '}');
        const char *fn = strstr(p, "(*");
        if (strchr(p, '{') != NULL && close != NULL)
            name = ident_at(close + 1);
        else if (fn != NULL)
            name = ident_at(fn + 2);
    } else {
        const char *paren = strchr(p, '(');
        if (paren != NULL)
            name = ident_before(p, paren);
    }
    if (name == NULL || name[0] == '\0') {
        free(name);
        const char *semi = strrchr(p, ';');
        name = ident_before(p, semi != NULL ? semi : p + strlen(p));
    }
    return name;
}

/* ---- Markdown ---- */

struct toc_entry {
    int level;
    char *text;
    char *slug;
};

struct doc {
    struct buf body;
    struct list slugs;
    struct toc_entry *toc;
    size_t toc_count, toc_cap;
    struct list headers; /* base names of the headers documented */
    long event_types;    /* entries of an included .def list; -1 when none */
    bool emitters;
};

/* The anchor GitHub gives a heading, made unique in the document. */
static char *slug(struct doc *d, const char *text)
{
    struct buf b = {0};
    for (const char *p = text; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '_' || c == '-' || c >= 0x80)
            addc(&b, (char)tolower(c));
        else if (c == ' ')
            addc(&b, '-');
    }
    add(&b, "", 0);
    char *s = copy(b.data, b.len);
    for (int n = 1; has(&d->slugs, s); n++) {
        struct buf numbered = {0};
        addf(&numbered, "%s-%d", b.data, n);
        free(s);
        s = numbered.data;
    }
    free(b.data);
    push(&d->slugs, s);
    return copy(s, strlen(s));
}

static void heading(struct doc *d, int level, const char *text)
{
    char *anchor = slug(d, text);
    addf(&d->body, "%.*s %s\n\n", level, "######", text);
    if (level <= 3) {
        if (d->toc_count == d->toc_cap) {
            d->toc_cap = d->toc_cap * 2 + 16;
            d->toc = grow(d->toc, d->toc_cap * sizeof *d->toc);
        }
        d->toc[d->toc_count++] =
            (struct toc_entry){.level = level, .text = copy(text, strlen(text)), .slug = anchor};
    } else {
        free(anchor);
    }
}

static bool list_item(const char *s)
{
    const char *p = s;
    while (*p == ' ' && p - s < 4)
        p++;
    if (p - s > 3)
        return false;
    if ((*p == '-' || *p == '*' || *p == '+') && p[1] == ' ')
        return true;
    const char *q = p;
    while (isdigit((unsigned char)*q))
        q++;
    return q > p && q - p <= 9 && (*q == '.' || *q == ')') && q[1] == ' ';
}

/* Writes comment text as Markdown: code spans (`...`) as they are, the
 * characters Markdown would take for markup escaped. */
static void escape_prose(struct buf *o, const char *s)
{
    bool line_start = true;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if (c == '`') {
            const char *close = strchr(p + 1, '`');
            const char *para = strstr(p + 1, "\n\n");
            if (close != NULL && (para == NULL || close < para)) {
                add(o, p, (size_t)(close - p) + 1);
                p = close;
            } else {
                adds(o, "\\`");
            }
            line_start = false;
            continue;
        }
        bool escape = false;
        switch (c) {
        case '\\':
        case '<':
        case '$':
            escape = true;
            break;
        case '*':
            escape = !(line_start && p[1] == ' ');
            break;
        case '_':
            escape = p == s || !isalnum((unsigned char)p[-1]) || !isalnum((unsigned char)p[1]);
            break;
        case '#':
        case '>':
            escape = line_start;
            break;
        default:
            break;
        }
        if (escape)
            addc(o, '\\');
        addc(o, c);
        if (c == '\n')
            line_start = true;
        else if (c != ' ' && c != '\t')
            line_start = false;
    }
}

/* Writes comment lines as Markdown paragraphs. Lists stay lists; a line
 * that comes back to the margin after a list starts a new paragraph; a run
 * of lines indented by four or more after a blank line is a code block. */
static void prose(struct buf *o, const struct list *l)
{
    bool first = true, after_list = false;
    size_t k = 0;
    while (k < l->n) {
        if (is_blank(l->v[k])) {
            k++;
            continue;
        }
        if (!first)
            addc(o, '\n');
        first = false;
        if (indent_of(l->v[k]) >= 4 && !after_list) {
            size_t last = k, common = SIZE_MAX;
            for (size_t m = k; m < l->n && (is_blank(l->v[m]) || indent_of(l->v[m]) >= 4); m++) {
                if (!is_blank(l->v[m])) {
                    last = m;
                    if (indent_of(l->v[m]) < common)
                        common = indent_of(l->v[m]);
                }
            }
            adds(o, "```\n");
            for (size_t m = k; m <= last; m++) {
                if (!is_blank(l->v[m]))
                    adds(o, l->v[m] + common);
                addc(o, '\n');
            }
            adds(o, "```\n");
            k = last + 1;
            continue;
        }
        struct buf raw = {0};
        bool in_list = false;
        for (; k < l->n && !is_blank(l->v[k]); k++) {
            const char *s = l->v[k];
            bool item = list_item(s);
            if (!item && in_list && indent_of(s) == 0) {
                addc(&raw, '\n');
                in_list = false;
            }
            if (item)
                in_list = true;
            adds(&raw, s);
            addc(&raw, '\n');
        }
        after_list = in_list;
        escape_prose(o, raw.data);
        free(raw.data);
    }
}

/* ---- Headers ---- */

/* Counts the entries of a list file included as `target` from `header`:
 * its lines outside comments that are not preprocessor lines. */
static long count_entries(const char *header, const char *target)
{
    size_t n = strlen(target);
    char *inner = copy(target + 1, n > 2 ? n - 2 : 0);
    char *dir = dir_name(header);
    struct buf path = {0};
    addf(&path, "%s/%s", dir, base_name(inner));
    free(dir);
    free(inner);
    struct text t;
    load(&t, path.data);
    long entries = 0;
    bool comment = false;
    for (size_t k = 0; k < t.count; k++) {
        const char *s = t.line[k];
        bool code = false;
        if (!comment && !is_directive(s)) {
            for (const char *p = skip_ws(s); *p != '\0' && !code; p++) {
                if (p[0] == '/' && p[1] == '*') {
                    const char *end = strstr(p + 2, "*/");
                    if (end == NULL)
                        break;
                    p = end + 1;
                } else if (!isspace((unsigned char)*p)) {
                    code = true;
                }
            }
        }
        entries += code;
        comment = comment_open_after(s, comment);
    }
    unload(&t);
    free(path.data);
    return entries;
}

/* Writes one entry: a heading naming what lines from..to declare, the lines
 * in a C block, then the comment that documents them. */
static void entry(struct doc *d, const struct text *t, size_t from, size_t to,
                  const struct list *names, bool macros, const struct list *doc_comment)
{
    struct buf h = {0};
    size_t prefix = 0;
    if (macros && names->n > 3) {
        prefix = strlen(names->v[0]);
        for (size_t i = 1; i < names->n; i++) {
            size_t j = 0;
            while (j < prefix && names->v[i][j] == names->v[0][j])
                j++;
            prefix = j;
        }
        while (prefix > 0 && names->v[0][prefix - 1] != '_')
            prefix--;
        size_t underscores = 0;
        for (size_t i = 0; i < prefix; i++)
            underscores += names->v[0][i] == '_';
        if (underscores < 2)
            prefix = 0;
    }
    if (prefix > 0)
        addf(&h, "`%.*s*`", (int)prefix, names->v[0]);
    else if (macros && names->n > 3)
        addf(&h, "`%s` and others", names->v[0]);
    else
        for (size_t i = 0; i < names->n; i++)
            addf(&h, "%s`%s`", i > 0 ? ", " : "", names->v[i]);
    heading(d, 4, h.data);
    free(h.data);

    adds(&d->body, "```c\n");
    for (size_t k = from; k <= to; k++) {
        adds(&d->body, t->line[k]);
        addc(&d->body, '\n');
    }
    adds(&d->body, "```\n\n");

    if (doc_comment != NULL && doc_comment->n > 0) {
        prose(&d->body, doc_comment);
        addc(&d->body, '\n');
    }
    for (size_t k = from; k <= to; k++) {
        if (!directive(t->line[k], "include"))
            continue;
        char *target = include_target(t->line[k]);
        size_t n = strlen(target);
        if (n > 6 && strncmp(target + n - 5, ".def", 4) == 0) {
            d->event_types = count_entries(t->path, target);
            addf(&d->body,
                 "The enumerators come from `%s`, which is not reproduced here: the %ld event "
                 "types are listed in " CATALOG_LINK ".\n\n",
                 target, d->event_types);
        }
        free(target);
    }
}

/* Whether a comment followed by `line` documents it. */
static bool documents(const char *line)
{
    return !is_blank(line) && !opens_comment(line) && !directive(line, "include") &&
           !directive(line, "endif");
}

/* Writes the declarations starting on line i that follow each other without
 * a blank line or a comment (for #define lines: without a blank line) as
 * one entry; returns the line after them. */
static size_t declarations(struct doc *d, const struct text *t, size_t i,
                           const struct list *doc_comment)
{
    struct list names = {0};
    bool macros = is_directive(t->line[i]);
    size_t k = i;
    for (;;) {
        size_t end;
        char *name;
        if (is_directive(t->line[k])) {
            end = directive_end(t, k);
            name = directive_arg(t->line[k]);
        } else {
            end = decl_end(t, k);
            char *code = code_only(t, k, end);
            name = decl_name(code);
            free(code);
        }
        if (has(&names, name))
            free(name);
        else
            push(&names, name);
        k = end + 1;
        if (k >= t->count)
            break;
        const char *next = t->line[k];
        if (macros) {
            if (directive(next, "define"))
                continue;
            if (opens_comment(next)) {
                size_t j = comment_close(t, k), last;
                char *title = banner(t, k, &last);
                bool inside = title == NULL && only_comment(t, k, j) && j + 1 < t->count &&
                              directive(t->line[j + 1], "define");
                free(title);
                if (inside) {
                    k = j + 1;
                    continue;
                }
            }
        } else if (!is_blank(next) && !is_directive(next) && !opens_comment(next)) {
            continue;
        }
        break;
    }
    entry(d, t, i, k - 1, &names, macros, doc_comment);
    list_free(&names);
    return k;
}

/* Writes the #include lines starting on line i (blank lines between them
 * allowed) as sentences; returns the line after them. */
static size_t includes(struct doc *d, const struct text *t, size_t i)
{
    struct list others = {0}, siblings = {0};
    bool emitters = false;
    size_t k = i;
    while (k < t->count) {
        if (directive(t->line[k], "include")) {
            char *target = include_target(t->line[k]);
            size_t n = strlen(target);
            char *inner = copy(target + 1, n > 2 ? n - 2 : 0);
            if (strcmp(inner, "rre/emitters.h") == 0) {
                emitters = true;
                free(target);
            } else if (strncmp(inner, "rre/", 4) == 0 && has(&d->headers, base_name(inner))) {
                push(&siblings, target);
            } else {
                push(&others, target);
            }
            free(inner);
            k++;
            continue;
        }
        size_t m = k;
        while (m < t->count && is_blank(t->line[m]))
            m++;
        if (m == k || m >= t->count || !directive(t->line[m], "include"))
            break;
        k = m;
    }
    if (others.n > 0) {
        adds(&d->body, "Includes ");
        add_joined(&d->body, &others);
        adds(&d->body, ".\n\n");
    }
    if (siblings.n > 0) {
        adds(&d->body, "Includes ");
        add_joined(&d->body, &siblings);
        adds(&d->body, siblings.n > 1 ? ", each described in its own section of this reference.\n\n"
                                      : ", described in its own section of this reference.\n\n");
    }
    if (emitters) {
        d->emitters = true;
        adds(&d->body,
             "Includes `<rre/emitters.h>`, which is generated from the catalog and not reproduced "
             "here. It declares the typed emitters: one `rre_emit_<name>()` per event type whose "
             "payload the documents give (see " CATALOG_LINK "), taking the required fields as "
             "parameters and the optional ones in an `rre_<name>_optional` struct, and "
             "publishing with `rre_router_publish_type()`.\n\n");
    }
    list_free(&others);
    list_free(&siblings);
    return k;
}

/* The header's opening comment, without a leading "name.h - ". */
static void overview(struct doc *d, const struct text *t, size_t i, size_t j)
{
    struct list l = {0};
    comment_text(t, i, j, &l);
    if (l.n > 0) {
        const char *base = base_name(t->path);
        size_t n = strlen(base);
        char *first = l.v[0];
        if (strncmp(first, base, n) == 0 && strncmp(first + n, " - ", 3) == 0) {
            char *rest = copy(first + n + 3, strlen(first + n + 3));
            rest[0] = (char)toupper((unsigned char)rest[0]);
            free(first);
            l.v[0] = rest;
        }
        prose(&d->body, &l);
        addc(&d->body, '\n');
    }
    list_free(&l);
}

static void section(struct doc *d, const char *path)
{
    struct text t;
    load(&t, path);
    heading(d, 2, base_name(path));
    const char *shown = tree_path(path);
    if (shown != NULL)
        addf(&d->body, "Header: [`%s`](../%s)\n\n", shown, shown);

    size_t i = 0;
    while (i < t.count && is_blank(t.line[i]))
        i++;
    if (i < t.count && opens_comment(t.line[i])) {
        size_t j = comment_close(&t, i), last;
        char *title = banner(&t, i, &last);
        if (title == NULL && only_comment(&t, i, j)) {
            overview(d, &t, i, j);
            i = j + 1;
        }
        free(title);
    }

    bool guarded = false;
    while (i < t.count) {
        if (is_blank(t.line[i])) {
            i++;
            continue;
        }
        struct list doc_comment = {0};
        if (opens_comment(t.line[i])) {
            size_t last;
            char *title = banner(&t, i, &last);
            if (title != NULL) {
                heading(d, 3, title);
                free(title);
                i = last + 1;
                continue;
            }
            size_t j = comment_close(&t, i);
            if (only_comment(&t, i, j)) {
                comment_text(&t, i, j, &doc_comment);
                if (j + 1 >= t.count || !documents(t.line[j + 1])) {
                    prose(&d->body, &doc_comment);
                    addc(&d->body, '\n');
                    list_free(&doc_comment);
                    i = j + 1;
                    continue;
                }
                i = j + 1;
            }
        }
        const char *s = t.line[i];
        if (!guarded && directive(s, "ifndef") && i + 1 < t.count &&
            directive(t.line[i + 1], "define")) {
            char *a = directive_arg(s), *b = directive_arg(t.line[i + 1]);
            const char *after = strstr(t.line[i + 1], b);
            bool guard = strcmp(a, b) == 0 && after != NULL && is_blank(after + strlen(b));
            free(a);
            free(b);
            if (guard) {
                guarded = true;
                i += 2;
                list_free(&doc_comment);
                continue;
            }
        }
        if (directive(s, "if") || directive(s, "ifdef") || directive(s, "ifndef")) {
            size_t j = matching_endif(&t, i);
            bool cplusplus = false;
            struct list names = {0};
            for (size_t k = i; k <= j; k++) {
                cplusplus = cplusplus || strstr(t.line[k], "__cplusplus") != NULL;
                if (names.n == 0 && directive(t.line[k], "define"))
                    push(&names, directive_arg(t.line[k]));
            }
            if (names.n == 0)
                push(&names, directive_arg(s));
            if (!cplusplus)
                entry(d, &t, i, j, &names, true, &doc_comment);
            list_free(&names);
            list_free(&doc_comment);
            i = j + 1;
            continue;
        }
        if (directive(s, "endif")) {
            list_free(&doc_comment);
            i++;
            continue;
        }
        if (directive(s, "include")) {
            i = includes(d, &t, i);
            list_free(&doc_comment);
            continue;
        }
        i = declarations(d, &t, i, &doc_comment);
        list_free(&doc_comment);
    }
    unload(&t);
}

static void document(struct doc *d, char **headers, size_t count, struct buf *out)
{
    static const char title[] = "librre C API reference";
    free(slug(d, title));
    free(slug(d, "Contents"));
    for (size_t i = 0; i < count; i++)
        push(&d->headers, copy(base_name(headers[i]), strlen(base_name(headers[i]))));
    for (size_t i = 0; i < count; i++)
        section(d, headers[i]);

    addf(out, "# %s\n\n", title);
    adds(out, "Generated by `gen_api_doc` from the public headers; do not edit this file by hand. "
              "Regenerate it with `" REGEN_COMMAND "` (the test `api_reference_is_current` fails "
              "when it is out of date).\n\n");
    adds(out, "One section per header. Each gives the header's overview, its parts as "
              "subsections, and every declaration exactly as the header writes it (comments "
              "included), followed by the comment that documents it there.\n\n");
    if (d->emitters || d->event_types >= 0) {
        adds(out, "Not reproduced here:\n\n");
        if (d->emitters)
            adds(
                out,
                "- `<rre/emitters.h>`, generated from the catalog: the typed emitters, one "
                "per event type whose payload the documents give; the payloads are in " CATALOG_LINK
                ".\n");
        if (d->event_types >= 0)
            addf(out,
                 "- `<rre/event_types.def>`, the list of event types: the %ld event types are "
                 "listed in " CATALOG_LINK ".\n",
                 d->event_types);
        addc(out, '\n');
    }
    adds(out, "## Contents\n\n");
    for (size_t i = 0; i < d->toc_count; i++)
        addf(out, "%s- [%s](#%s)\n", d->toc[i].level > 2 ? "  " : "", d->toc[i].text,
             d->toc[i].slug);
    addc(out, '\n');
    add(out, d->body.data, d->body.len);
    while (out->len > 0 && out->data[out->len - 1] == '\n')
        out->len--;
    add(out, "\n", 1);
}

static int write_or_check(const char *path, const struct buf *o, bool check)
{
    if (!check) {
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(o->data, 1, o->len, f) != o->len || fclose(f) != 0) {
            fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
            return 2;
        }
        return 0;
    }
    struct buf have = {0};
    if (!read_all(path, &have)) {
        int err = errno;
        free(have.data);
        if (err == ENOENT) {
            fprintf(stderr, PROG ": %s does not exist; generate it with: " REGEN_COMMAND "\n",
                    path);
            return 1;
        }
        fprintf(stderr, PROG ": cannot read %s: %s\n", path, strerror(err));
        return 2;
    }
    size_t i = 0, line = 1;
    while (i < have.len && i < o->len && have.data[i] == o->data[i])
        line += have.data[i++] == '\n';
    bool same = have.len == o->len && i == o->len;
    free(have.data);
    if (!same) {
        fprintf(stderr,
                PROG ": %s is out of date: it differs from what the headers give from line %zu "
                     "on; regenerate it with: " REGEN_COMMAND "\n",
                path, line);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool check = argc > 1 && strcmp(argv[1], "--check") == 0;
    int first = check ? 2 : 1;
    if (argc - first < 2) {
        fprintf(stderr, "usage: " PROG " [--check] OUT.md HEADER...\n");
        return 2;
    }
    const char *out_path = argv[first];
    struct doc d = {.event_types = -1};
    struct buf out = {0};
    document(&d, argv + first + 1, (size_t)(argc - first - 1), &out);
    int rc = write_or_check(out_path, &out, check);

    free(out.data);
    free(d.body.data);
    for (size_t i = 0; i < d.toc_count; i++) {
        free(d.toc[i].text);
        free(d.toc[i].slug);
    }
    free(d.toc);
    list_free(&d.slugs);
    list_free(&d.headers);
    return rc;
}
