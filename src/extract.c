/*
 * extract.c - typed views of payloads with the seed's fallbacks: the config
 * key, the model path, and the TRAINING_COMPLETED and EVALUATION_COMPLETED
 * payloads.
 *
 * These read a payload as it arrives, before or without normalisation, so
 * every alias is honoured here as well. Nothing is allocated; strings are
 * borrowed from the payload.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* A non-empty string member, or NULL. */
static const char *get_string(const json_t *payload, const char *key)
{
    const json_t *v = json_object_get(payload, key);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return json_string_value(v);
}

/* Whether `text` is a valid config key. The grammar admits exactly one
 * spelling per key, so comparing against the boards is enough; unlike
 * rre_config_key_parse() this leaves the thread's last-error message alone,
 * since a fallback that does not apply is not an error. */
static bool is_valid_key(const char *text)
{
    for (int b = 0; b < RRE_BOARD_COUNT; b++) {
        const char *name = rre_board_name((rre_board)b);
        size_t n = strlen(name);
        if (strncmp(text, name, n) == 0 && text[n] == '_' && text[n + 1] >= '2' &&
            text[n + 1] <= '4' && text[n + 2] == 'p' && text[n + 3] == '\0')
            return true;
    }
    return false;
}

/* Copies `text` into buf when it is a valid config key that fits. */
static bool take_key(const char *text, char *buf, size_t cap)
{
    if (text == NULL || !is_valid_key(text) || strlen(text) >= cap)
        return false;
    memcpy(buf, text, strlen(text) + 1);
    return true;
}

const char *rre_extract_config_key(const json_t *payload, char *buf, size_t cap)
{
    if (!json_is_object(payload) || buf == NULL || cap == 0)
        return NULL;
    buf[0] = '\0';
    if (take_key(get_string(payload, "config_key"), buf, cap) ||
        take_key(get_string(payload, "config"), buf, cap))
        return buf;
    const char *board = get_string(payload, "board_type");
    const json_t *n = json_object_get(payload, "num_players");
    if (board != NULL && json_is_integer(n) && json_integer_value(n) >= 2 &&
        json_integer_value(n) <= 4 && strlen(board) < RRE_CONFIG_KEY_MAX) {
        char made[RRE_CONFIG_KEY_MAX + 8];
        snprintf(made, sizeof made, "%s_%dp", board, (int)json_integer_value(n));
        if (take_key(made, buf, cap))
            return buf;
    }
    buf[0] = '\0';
    return NULL;
}

const char *rre_extract_model_path(const json_t *payload)
{
    if (!json_is_object(payload))
        return NULL;
    static const char *const keys[] = {"model_path", "checkpoint_path", "path"};
    for (size_t i = 0; i < RRE__ARRAY_LEN(keys); i++) {
        const char *s = get_string(payload, keys[i]);
        if (s != NULL)
            return s;
    }
    return NULL;
}

/* The first of `keys` present in the payload, or NULL. */
static const json_t *get_first(const json_t *payload, const char *key, const char *alias)
{
    const json_t *v = json_object_get(payload, key);
    if (v == NULL && alias != NULL)
        v = json_object_get(payload, alias);
    return v;
}

static bool get_int(const json_t *payload, const char *key, const char *alias, int64_t *out)
{
    const json_t *v = get_first(payload, key, alias);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool get_number(const json_t *payload, const char *key, const char *alias, double *out)
{
    const json_t *v = get_first(payload, key, alias);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return true;
}

static bool get_bool(const json_t *payload, const char *key, bool *out)
{
    const json_t *v = json_object_get(payload, key);
    if (!json_is_boolean(v))
        return false;
    *out = json_is_true(v);
    return true;
}

/* The identity every pipeline payload carries: config key, board type and
 * player count, each taken from the payload or derived from the others.
 * Returns whether all three were found. */
static bool extract_identity(const json_t *payload, const char **config_key, char *key_buf,
                             const char **board_type, int *num_players)
{
    *config_key = rre_extract_config_key(payload, key_buf, RRE_CONFIG_KEY_MAX);
    rre_config_key parsed = {RRE_BOARD_COUNT, 0};
    if (*config_key != NULL)
        rre_config_key_parse(*config_key, &parsed);

    /* A field that is present is used as it is (and counts as not found
     * when its type is wrong); only an absent one is derived. */
    const json_t *board = json_object_get(payload, "board_type");
    bool have_board = false;
    if (board != NULL) {
        *board_type = get_string(payload, "board_type");
        have_board = *board_type != NULL;
    } else if (*config_key != NULL) {
        *board_type = rre_board_name(parsed.board);
        have_board = true;
    }

    const json_t *n = json_object_get(payload, "num_players");
    bool have_n = false;
    if (n != NULL) {
        if (json_is_integer(n) && json_integer_value(n) >= INT_MIN &&
            json_integer_value(n) <= INT_MAX) {
            *num_players = (int)json_integer_value(n);
            have_n = true;
        }
    } else if (*config_key != NULL) {
        *num_players = parsed.num_players;
        have_n = true;
    }
    return *config_key != NULL && have_board && have_n;
}

rre_status rre_extract_training_data(const json_t *payload, rre_training_data *out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_extract_training_data: out is NULL");
    memset(out, 0, sizeof *out);
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "training payload is not a JSON object");
    bool ok = extract_identity(payload, &out->config_key, out->config_key_buf, &out->board_type,
                               &out->num_players);
    out->model_path = rre_extract_model_path(payload);
    ok &= out->model_path != NULL;
    ok &= get_int(payload, "epochs", NULL, &out->epochs);
    ok &= get_number(payload, "final_loss", "loss", &out->final_loss);
    ok &= get_int(payload, "samples_trained", "samples", &out->samples_trained);
    out->job_id = get_string(payload, "job_id");
    get_number(payload, "duration_seconds", NULL, &out->duration_seconds);
    get_bool(payload, "early_stopped", &out->early_stopped);
    out->valid = ok;
    return RRE_OK;
}

rre_status rre_extract_evaluation_data(const json_t *payload, rre_evaluation_data *out)
{
    if (out == NULL)
        return rre__error(RRE_EINVAL, "rre_extract_evaluation_data: out is NULL");
    memset(out, 0, sizeof *out);
    if (!json_is_object(payload))
        return rre__error(RRE_ENOT_OBJECT, "evaluation payload is not a JSON object");
    bool ok = extract_identity(payload, &out->config_key, out->config_key_buf, &out->board_type,
                               &out->num_players);
    out->model_path = rre_extract_model_path(payload);
    ok &= out->model_path != NULL;
    ok &= get_number(payload, "elo", NULL, &out->elo);
    ok &= get_int(payload, "games_played", "games", &out->games_played);
    ok &= get_number(payload, "win_rate", NULL, &out->win_rate);
    get_bool(payload, "is_multi_harness", &out->is_multi_harness);
    const json_t *hr = json_object_get(payload, "harness_results");
    out->harness_results = json_is_object(hr) ? hr : NULL;
    out->best_harness = get_string(payload, "best_harness");
    const json_t *ids = json_object_get(payload, "composite_participant_ids");
    out->composite_participant_ids = json_is_array(ids) ? ids : NULL;
    out->valid = ok;
    return RRE_OK;
}
