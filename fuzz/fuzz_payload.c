/*
 * fuzz_payload.c - libFuzzer harness for the payload path: parsing,
 * normalisation, validation, canonical JSON and the content hash.
 *
 * Every input is parsed with rre_payload_parse(). A rejected input must come
 * with a status from the documented set and a detail message. An accepted
 * one is normalised, validated against a few types (one chosen by the first
 * byte), hashed and canonicalised; then the canonical text is parsed again
 * and must give the same canonical text and the same hash (the canonical form
 * is a fixed point). Any violation aborts.
 */
#include <rre/rre.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violation(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_payload: %s: %s\n", what, detail);
    abort();
}

static void check_validate(rre_event_type type, const json_t *payload)
{
    rre_problems problems;
    rre_status st = rre_validate(type, payload, RRE_VALIDATE_NOTES, &problems);
    if (st != RRE_OK && st != RRE_EINVALID_PAYLOAD)
        violation("rre_validate failed on a parsed payload", rre_last_error());
    if ((st == RRE_OK) != (problems.errors == 0) || problems.count > RRE_PROBLEMS_MAX)
        violation("rre_validate verdict does not match its problems", rre_event_name(type));
    for (size_t i = 0; i < problems.count; i++) {
        char line[256];
        if (rre_problem_format(&problems.items[i], line, sizeof line) < 0)
            violation("rre_problem_format failed", rre_event_name(type));
    }
}

/* Whether jansson's parse error is its refusal of an integer beyond int64,
 * which is what the canonical text of a real in [2^63, 10^21) is. */
static bool is_big_integer_error(const json_error_t *err)
{
    return strstr(err->text, "too big") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *payload = NULL;
    rre_status st = rre_payload_parse((const char *)data, size, &payload);
    if (st != RRE_OK) {
        if (payload != NULL)
            violation("failed parse returned a value", rre_status_name(st));
        if (st != RRE_EJSON && st != RRE_ENOT_OBJECT && st != RRE_ELIMIT)
            violation("unexpected parse status", rre_status_name(st));
        if (rre_last_error()[0] == '\0')
            violation("rejected payload without a detail message", rre_status_name(st));
        return 0;
    }
    if (!json_is_object(payload))
        violation("parse returned a non-object", "");

    rre_payload_normalize(payload);
    rre_event_type chosen = (rre_event_type)(size > 0 ? data[0] % RRE_EVENT_TYPE_COUNT : 0);
    check_validate(RRE_EV_TRAINING_COMPLETED, payload);
    check_validate(RRE_EV_EVALUATION_COMPLETED, payload);
    check_validate(chosen, payload);

    uint8_t hash[RRE_HASH_SIZE], again[RRE_HASH_SIZE];
    if (rre_content_hash(chosen, payload, hash) != RRE_OK)
        violation("rre_content_hash failed on a parsed payload", rre_last_error());
    if (rre_content_hash(chosen, payload, again) != RRE_OK ||
        memcmp(hash, again, RRE_HASH_SIZE) != 0)
        violation("rre_content_hash is not deterministic", "");

    char *canonical = NULL;
    size_t len = 0;
    if (rre_canonical_json(payload, &canonical, &len) != RRE_OK)
        violation("rre_canonical_json failed on a parsed payload", rre_last_error());
    if (strlen(canonical) != len)
        violation("canonical length is wrong", canonical);

    json_error_t err;
    json_t *reparsed = json_loadb(canonical, len, 0, &err);
    if (reparsed == NULL) {
        if (!is_big_integer_error(&err))
            violation("canonical text does not parse", err.text);
    } else {
        char *canonical2 = NULL;
        size_t len2 = 0;
        if (rre_canonical_json(reparsed, &canonical2, &len2) != RRE_OK)
            violation("canonical text of the reparsed payload failed", rre_last_error());
        if (len2 != len || memcmp(canonical, canonical2, len) != 0)
            violation("canonical form is not a fixed point", canonical);
        if (rre_content_hash(chosen, reparsed, again) != RRE_OK ||
            memcmp(hash, again, RRE_HASH_SIZE) != 0)
            violation("reparsed canonical text hashes differently", canonical);
        free(canonical2);
        json_decref(reparsed);
    }
    free(canonical);
    json_decref(payload);
    return 0;
}
