/*
 * cmd_validate.c - `rre validate TYPE [--payload JSON|-] [--strict]`.
 *
 * Checks a payload against the schema of TYPE after normalising the catalog's
 * field aliases, as a publish would. Prints one JSON summary line on stdout
 * and one line per problem on stderr. Exit 0 when valid, 1 when not (or when
 * the payload is not a JSON object, or TYPE is unknown), 2 on wrong usage.
 *
 * Missing required fields and wrongly typed fields are errors. Fields the
 * catalog does not list are notes; --strict makes them errors too. Without
 * --payload the payload is read from standard input.
 */
#include "cli.h"

#include <stdlib.h>

void cmd_validate_help(FILE *out)
{
    fputs("usage: rre validate TYPE [--payload JSON|-] [--strict]\n"
          "\n"
          "Checks a JSON object payload against the schema of TYPE (aliases such as\n"
          "config -> config_key are normalised first). Errors: missing required fields,\n"
          "wrong types. Notes: unknown fields (errors with --strict). Without --payload,\n"
          "or with --payload -, the payload is read from standard input.\n"
          "Exit status: 0 valid, 1 invalid, 2 wrong usage.\n",
          out);
}

int cmd_validate(const struct cli_globals *g, int argc, char **argv)
{
    (void)g;
    const char *type_name = NULL, *payload_arg = NULL;
    bool strict = false;
    enum { O_PAYLOAD, O_STRICT };
    static const struct cli_option opts[] = {
        [O_PAYLOAD] = {"payload", 0, true, false},
        [O_STRICT] = {"strict", 0, false, false},
    };
    struct cli_getopt p;
    cli_getopt_init(&p, "validate", opts, CLI_ARRAY_LEN(opts));
    int o;
    const char *val;
    while ((o = cli_getopt_next(&p, argc, argv, &val)) != CLI_OPT_END) {
        switch (o) {
        case CLI_OPT_HELP:
            cmd_validate_help(stdout);
            return CLI_OK;
        case CLI_OPT_USAGE:
            return CLI_USAGE;
        case O_PAYLOAD:
            payload_arg = val; /* "-": standard input */
            break;
        case O_STRICT:
            strict = true;
            break;
        }
    }
    if (p.first_operand < argc)
        type_name = argv[p.first_operand];
    if (p.first_operand + 1 < argc)
        return cli_usage_error("validate: unexpected argument '%s'", argv[p.first_operand + 1]);
    if (type_name == NULL)
        return cli_usage_error("validate: missing TYPE (see rre validate --help)");

    rre_event_type type;
    rre_status st = rre_event_lookup(type_name, &type);
    if (st != RRE_OK)
        return cli_fail_type("validate", type_name, st);

    json_t *payload = NULL;
    int rc = cli_read_payload("validate", payload_arg, &payload);
    if (rc != CLI_OK)
        return rc;

    rre_payload_normalize(payload);
    rre_problems problems;
    st = rre_validate(type, payload, RRE_VALIDATE_NOTES, &problems);
    json_decref(payload);
    if (st != RRE_OK && st != RRE_EINVALID_PAYLOAD)
        return cli_fail_status("validate", st);

    cli_print_problems(&problems, "");

    bool valid = problems.errors == 0 && (!strict || problems.notes == 0);
    printf("{\"type\":\"%s\",\"valid\":%s,\"errors\":%zu,\"notes\":%zu,\"strict\":%s}\n",
           rre_event_name(type), valid ? "true" : "false", problems.errors, problems.notes,
           strict ? "true" : "false");
    return valid ? CLI_OK : CLI_FAIL;
}
