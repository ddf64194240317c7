/*
 * cmd_catalog.c - `rre catalog`: list the event types, or show one.
 *
 *   rre catalog [--category C] [--search WORD] [--format text|json|markdown]
 *   rre catalog TYPE [--format text|json|json-schema]
 *
 * --search keeps the types whose NAME, value or description contains WORD
 * (any letter case); none found is a failure (exit 1), so scripts can test
 * for it. An unknown TYPE or category is a failure (exit 1), an unknown
 * option or format a usage error (exit 2).
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Case-insensitive substring test. */
static bool contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay != '\0'; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

static int print_json_line(json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text == NULL)
        return cli_fail("out of memory");
    puts(text);
    free(text);
    return CLI_OK;
}

static void print_type_text(const rre_event_info *info)
{
    printf("%s\n", info->name);
    printf("  value:          %s\n", info->value);
    printf("  category:       %s\n", rre_category_name(info->category));
    printf("  queue spelling: %s\n", info->queue_spelling);
    printf("  documented:     %s\n", info->documented ? "yes" : "no");
    if (info->alias_of != RRE_EV_NONE)
        printf("  alias of:       %s\n", rre_event_name(info->alias_of));
    printf("  description:    %s\n", info->description);
    if (info->field_count == 0) {
        printf("  fields:         (none documented)\n");
        return;
    }
    printf("  fields:\n");
    for (size_t i = 0; i < info->field_count; i++) {
        const rre_field_info *f = &info->fields[i];
        printf("    %-28s %-18s%s%s\n", f->name, rre_field_type_name(f->type),
               (f->flags & RRE_FIELD_REQUIRED) ? " required" : "",
               (f->flags & RRE_FIELD_NULLABLE) ? " nullable" : "");
    }
}

static int show_one(const char *spelling, const char *format)
{
    rre_event_type type;
    rre_status st = rre_event_lookup(spelling, &type);
    if (st != RRE_OK)
        return cli_fail_type("catalog", spelling, st);
    if (strcmp(format, "text") == 0) {
        print_type_text(rre_event_get(type));
        return CLI_OK;
    }
    json_t *obj = NULL;
    if (strcmp(format, "json") == 0)
        st = rre_event_to_json(type, &obj);
    else if (strcmp(format, "json-schema") == 0)
        st = rre_event_json_schema(type, &obj);
    else
        return cli_usage_error("catalog TYPE: unknown format '%s' (text, json or json-schema)",
                               format);
    if (st != RRE_OK)
        return cli_fail_status("catalog", st);
    return print_json_line(obj);
}

static int list_all(const char *category_name, const char *search, const char *format)
{
    bool filter = category_name != NULL;
    rre_category category = RRE_CAT_OTHER;
    if (filter) {
        rre_status st = rre_category_lookup(category_name, &category);
        if (st != RRE_OK)
            return cli_fail_category("catalog: --category", category_name);
    }
    if (strcmp(format, "markdown") == 0) {
        if (filter || search != NULL)
            return cli_usage_error("catalog: --format markdown documents the whole catalog; "
                                   "it does not take --category or --search");
        char *md = NULL;
        rre_status st = rre_catalog_markdown(&md);
        if (st != RRE_OK)
            return cli_fail_status("catalog", st);
        fputs(md, stdout);
        free(md);
        return CLI_OK;
    }
    bool json = strcmp(format, "json") == 0;
    if (!json && strcmp(format, "text") != 0)
        return cli_usage_error("catalog: unknown format '%s' (text, json or markdown)", format);
    size_t shown = 0;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (filter && info->category != category)
            continue;
        if (search != NULL && !contains(info->name, search) && !contains(info->value, search) &&
            !contains(info->description, search))
            continue;
        shown++;
        if (json) {
            json_t *obj = NULL;
            rre_status st = rre_event_to_json(info->type, &obj);
            if (st != RRE_OK)
                return cli_fail_status("catalog", st);
            if (print_json_line(obj) != CLI_OK)
                return CLI_FAIL;
        } else {
            printf("%-36s %-36s %-18s %s\n", info->name, info->value,
                   rre_category_name(info->category), info->description);
        }
    }
    if (search != NULL && shown == 0) {
        char *safe = cli_safe_text(search, true);
        cli_fail("catalog: no event type has '%s' in its name or description",
                 safe != NULL ? safe : "?");
        free(safe);
        return CLI_FAIL;
    }
    return CLI_OK;
}

void cmd_catalog_help(FILE *out)
{
    fputs("usage: rre catalog [--category C] [--search WORD] [--format text|json|markdown]\n"
          "       rre catalog TYPE [--format text|json|json-schema]\n"
          "\n"
          "Lists every event type, or shows one. TYPE is any spelling: the NAME, the\n"
          "legacy value, a stage-event name, in any letter case. --search keeps the\n"
          "types whose name or description contains WORD (any case).\n",
          out);
}

int cmd_catalog(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    const char *category = NULL, *format = NULL, *type = NULL, *search = NULL;
    enum { O_CATEGORY, O_SEARCH, O_FORMAT };
    static const struct cli_option opts[] = {
        [O_CATEGORY] = {"category", 0, true, false},
        [O_SEARCH] = {"search", 0, true, false},
        [O_FORMAT] = {"format", 0, true, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "catalog", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_catalog_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_CATEGORY:
            category = val;
            break;
        case O_SEARCH:
            search = val;
            break;
        case O_FORMAT:
            format = val;
            break;
        }
    }
    if (p.first_operand < argc)
        type = argv[p.first_operand];
    if (p.first_operand + 1 < argc)
        return cli_usage_error("catalog: unexpected argument '%s'", argv[p.first_operand + 1]);
    if (type != NULL) {
        if (category != NULL || search != NULL)
            return cli_usage_error("catalog: --category and --search list types; they cannot be "
                                   "used with TYPE");
        return show_one(type, format ? format : "text");
    }
    return list_all(category, search, format ? format : "text");
}
