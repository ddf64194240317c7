/*
 * catalog_test.c - tests of the event catalog (src/catalog.c) and the
 * documents generated from it (src/catalog_doc.c).
 */
#include "testutil.h"

#include <rre/rre.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rre_event_type lookup_ok(const char *spelling)
{
    rre_event_type t = RRE_EV_NONE;
    rre_status st = rre_event_lookup(spelling, &t);
    if (st != RRE_OK)
        fail_msg("lookup of \"%s\" failed: %s (%s)", spelling, rre_status_name(st),
                 rre_last_error());
    return t;
}

static void assert_lookup(const char *spelling, rre_event_type expected)
{
    rre_event_type got = lookup_ok(spelling);
    if (got != expected)
        fail_msg("\"%s\" resolved to %s, expected %s", spelling, rre_event_name(got),
                 rre_event_name(expected));
}

static void assert_unknown_n(const char *spelling, size_t len)
{
    rre_event_type t = RRE_EV_TRAINING_COMPLETED;
    assert_int_equal(rre_event_lookup_n(spelling, len, &t), RRE_EUNKNOWN_TYPE);
    assert_int_equal(t, RRE_EV_NONE);
    assert_non_null(strstr(rre_last_error(), "unknown event type"));
}

/* ------------------------------------------------------------------------ */

static void test_catalog_has_every_type_of_the_spec(void **state)
{
    (void)state;
    assert_int_equal(RRE_EVENT_TYPE_COUNT, 376);
    size_t documented = 0, aliases = 0;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        assert_non_null(info);
        assert_int_equal(info->type, t);
        assert_non_null(info->name);
        assert_non_null(info->value);
        assert_non_null(info->queue_spelling);
        assert_non_null(info->description);
        if (info->description[0] == '\0')
            fail_msg("%s has no description", info->name);
        assert_string_equal(rre_event_name((rre_event_type)t), info->name);
        documented += info->documented;
        aliases += info->alias_of != RRE_EV_NONE;
    }
    assert_int_equal(documented, 132);
    assert_true(aliases > 0);
    assert_null(rre_event_get(RRE_EV_NONE));
    assert_null(rre_event_get(RRE_EVENT_TYPE_COUNT));
    assert_string_equal(rre_event_name(RRE_EV_NONE), "UNKNOWN");
    assert_string_equal(rre_event_name(RRE_EVENT_TYPE_COUNT), "UNKNOWN");
}

static void test_sample_rows_match_the_spec(void **state)
{
    (void)state;
    const rre_event_info *i = rre_event_get(RRE_EV_NEW_GAMES_AVAILABLE);
    assert_string_equal(i->name, "NEW_GAMES_AVAILABLE");
    assert_string_equal(i->value, "new_games");
    assert_int_equal(i->category, RRE_CAT_SYNC);
    assert_string_equal(i->queue_spelling, "new_games");
    assert_true(i->documented);

    i = rre_event_get(RRE_EV_TRAINING_COMPLETED);
    assert_string_equal(i->value, "training_completed");
    assert_string_equal(i->queue_spelling, "TRAINING_COMPLETED");
    assert_int_equal(i->category, RRE_CAT_TRAINING_PIPELINE);
    assert_string_equal(i->description, "Fired when training finishes successfully.");

    i = rre_event_get(RRE_EV_TRAINING_THRESHOLD_REACHED);
    assert_string_equal(i->value, "training_threshold");

    i = rre_event_get(RRE_EV_IDLE_NODE_WORK_INJECTED);
    assert_false(i->documented);
    assert_int_equal(i->category, RRE_CAT_OTHER);
    assert_string_equal(i->description, "Idle node work injected.");

    i = rre_event_get(RRE_EV_STAGE_SYNC_COMPLETE);
    assert_int_equal(i->category, RRE_CAT_STAGE);
    assert_int_equal(i->alias_of, RRE_EV_DATA_SYNC_COMPLETED);
    assert_string_equal(i->queue_spelling, "DATA_SYNC_COMPLETED");

    i = rre_event_get(RRE_EV_PBT_COMPLETED);
    assert_int_equal(i->alias_of, RRE_EV_PBT_GENERATION_COMPLETE);

    i = rre_event_get(RRE_EV_STAGE_ITERATION_COMPLETE);
    assert_int_equal(i->alias_of, RRE_EV_NONE);
    assert_string_equal(i->queue_spelling, "ITERATION_COMPLETE");
}

static void test_every_spelling_resolves_to_its_type_or_alias_target(void **state)
{
    (void)state;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        rre_event_type expected = info->alias_of == RRE_EV_NONE ? info->type : info->alias_of;
        assert_lookup(info->name, expected);
        assert_lookup(info->value, expected);
        assert_lookup(info->queue_spelling, expected);
    }
}

static void test_lookup_never_returns_an_alias(void **state)
{
    (void)state;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        const char *spellings[] = {info->name, info->value, info->queue_spelling};
        for (size_t s = 0; s < 3; s++) {
            rre_event_type got = lookup_ok(spellings[s]);
            assert_int_equal(rre_event_get(got)->alias_of, RRE_EV_NONE);
        }
    }
    for (size_t i = 0; i < rre_stage_event_count(); i++) {
        rre_event_type got = lookup_ok(rre_stage_event_get(i)->name);
        assert_int_equal(rre_event_get(got)->alias_of, RRE_EV_NONE);
    }
}

static void test_lookup_is_case_insensitive(void **state)
{
    (void)state;
    assert_lookup("TRAINING_COMPLETED", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("training_completed", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("Training_Completed", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("tRaInInG_cOmPlEtEd", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("NEW_GAMES", RRE_EV_NEW_GAMES_AVAILABLE);
    assert_lookup("new_games_available", RRE_EV_NEW_GAMES_AVAILABLE);
    assert_lookup("Elo_Updated", RRE_EV_ELO_UPDATED);
}

static void test_lookup_n_uses_only_len_bytes(void **state)
{
    (void)state;
    rre_event_type t = RRE_EV_NONE;
    const char *text = "ELO_UPDATED trailing words";
    assert_int_equal(rre_event_lookup_n(text, 11, &t), RRE_OK);
    assert_int_equal(t, RRE_EV_ELO_UPDATED);
    assert_unknown_n(text, 12);
    assert_unknown_n(text, 10);
}

static void test_stage_names_resolve_to_data_events(void **state)
{
    (void)state;
    assert_lookup("TRAINING_COMPLETE", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("training_complete", RRE_EV_TRAINING_COMPLETED);
    assert_lookup("SYNC_COMPLETE", RRE_EV_DATA_SYNC_COMPLETED);
    assert_lookup("STAGE_SYNC_COMPLETE", RRE_EV_DATA_SYNC_COMPLETED);
    assert_lookup("cluster_sync_complete", RRE_EV_DATA_SYNC_COMPLETED);
    assert_lookup("ITERATION_COMPLETE", RRE_EV_STAGE_ITERATION_COMPLETE);
    assert_lookup("GPU_SELFPLAY_COMPLETE", RRE_EV_SELFPLAY_COMPLETE);
    assert_lookup("PROMOTION_COMPLETE", RRE_EV_MODEL_PROMOTED);
    assert_lookup("pbt_complete", RRE_EV_PBT_GENERATION_COMPLETE);
    assert_lookup("MODEL_SYNC_COMPLETE", RRE_EV_P2P_MODEL_SYNCED);
}

static void test_stage_table_has_every_stage_event(void **state)
{
    (void)state;
    assert_int_equal(rre_stage_event_count(), 21);
    assert_null(rre_stage_event_get(21));
    const rre_stage_event_info *first = rre_stage_event_get(0);
    assert_string_equal(first->name, "SELFPLAY_COMPLETE");
    assert_string_equal(first->value, "selfplay_complete");
    assert_int_equal(first->maps_to, RRE_EV_SELFPLAY_COMPLETE);
    bool saw_iteration = false;
    for (size_t i = 0; i < rre_stage_event_count(); i++) {
        const rre_stage_event_info *st = rre_stage_event_get(i);
        assert_int_equal(rre_event_get(st->maps_to)->alias_of, RRE_EV_NONE);
        if (strcmp(st->name, "ITERATION_COMPLETE") == 0) {
            saw_iteration = true;
            assert_int_equal(st->maps_to, RRE_EV_STAGE_ITERATION_COMPLETE);
        }
    }
    assert_true(saw_iteration);
}

/* The one stage spelling that is also the wire spelling of a type of its own:
 * the type keeps it (see rre.h). */
static void test_stage_spelling_owned_by_a_stage_type_keeps_that_type(void **state)
{
    (void)state;
    assert_lookup("elo_calibration_complete", RRE_EV_STAGE_ELO_CALIBRATION_COMPLETE);
    assert_lookup("ELO_CALIBRATION_COMPLETE", RRE_EV_STAGE_ELO_CALIBRATION_COMPLETE);
    assert_lookup("STAGE_ELO_CALIBRATION_COMPLETE", RRE_EV_STAGE_ELO_CALIBRATION_COMPLETE);
}

static void test_unknown_spellings_are_rejected(void **state)
{
    (void)state;
    rre_event_type t = RRE_EV_ELO_UPDATED;
    assert_int_equal(rre_event_lookup("NOT_A_TYPE", &t), RRE_EUNKNOWN_TYPE);
    assert_int_equal(t, RRE_EV_NONE);
    assert_non_null(strstr(rre_last_error(), "\"NOT_A_TYPE\""));

    t = RRE_EV_ELO_UPDATED;
    assert_int_equal(rre_event_lookup(NULL, &t), RRE_EUNKNOWN_TYPE);
    assert_int_equal(t, RRE_EV_NONE);

    assert_unknown_n("", 0);
    assert_unknown_n("TRAINING_COMPLETED ", 19);
    assert_unknown_n(" TRAINING_COMPLETED", 19);
    assert_unknown_n("TRAINING_COMPLETED\0", 19);
    assert_unknown_n("TR\xc3\x80INING_COMPLETED", 19);
    assert_unknown_n("\xff\xfe", 2);
    assert_int_equal(rre_event_lookup("ELO_UPDATED", NULL), RRE_EINVAL);
}

static void test_very_long_spelling_is_unknown_with_a_truncated_message(void **state)
{
    (void)state;
    size_t len = 100000;
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, 'A', len);
    s[len] = '\0';
    assert_unknown_n(s, len);
    assert_true(strlen(rre_last_error()) < 200);
    assert_non_null(strstr(rre_last_error(), "..."));
    free(s);
}

static void test_unknown_spelling_message_escapes_control_bytes(void **state)
{
    (void)state;
    assert_unknown_n("bad\n\x01\"name", 10);
    const char *msg = rre_last_error();
    assert_null(strchr(msg, '\n'));
    assert_null(strchr(msg, '\x01'));
    assert_non_null(strstr(msg, "bad\\x0a\\x01\\x22name"));
}

static void test_training_completed_requires_the_seven_schema_fields(void **state)
{
    (void)state;
    static const char *const expected[] = {"config_key",     "board_type", "num_players",
                                           "model_path",     "epochs",     "final_loss",
                                           "samples_trained"};
    const rre_event_info *info = rre_event_get(RRE_EV_TRAINING_COMPLETED);
    size_t required = 0;
    for (size_t i = 0; i < info->field_count; i++) {
        if (!(info->fields[i].flags & RRE_FIELD_REQUIRED))
            continue;
        bool listed = false;
        for (size_t k = 0; k < 7; k++)
            listed |= strcmp(info->fields[i].name, expected[k]) == 0;
        if (!listed)
            fail_msg("%s is required but not by the schemas document", info->fields[i].name);
        required++;
    }
    assert_int_equal(required, 7);
    assert_true(info->has_schema);
    const rre_field_info *f = rre_event_field(RRE_EV_TRAINING_COMPLETED, "final_loss");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_FLOAT);
    assert_true(f->flags & RRE_FIELD_IN_SCHEMAS);
    f = rre_event_field(RRE_EV_TRAINING_COMPLETED, "num_players");
    assert_int_equal(f->type, RRE_FT_INT);
}

static void test_known_fields_include_the_catalog_documents_fields(void **state)
{
    (void)state;
    const rre_field_info *f = rre_event_field(RRE_EV_TRAINING_COMPLETED, "val_loss");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_FLOAT);
    assert_true(f->flags & RRE_FIELD_IN_CATALOG);
    assert_false(f->flags & RRE_FIELD_REQUIRED);
    f = rre_event_field(RRE_EV_TRAINING_COMPLETED, "model_id");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_STR);
    assert_non_null(rre_event_field(RRE_EV_TRAINING_COMPLETED, "success"));
    assert_null(rre_event_field(RRE_EV_TRAINING_COMPLETED, "no_such_field"));
    assert_null(rre_event_field(RRE_EV_TRAINING_COMPLETED, NULL));
    assert_null(rre_event_field(RRE_EV_NONE, "model_id"));
}

static void test_both_quality_score_variants_are_known(void **state)
{
    (void)state;
    assert_non_null(rre_event_field(RRE_EV_QUALITY_SCORE_UPDATED, "avg_quality"));
    assert_non_null(rre_event_field(RRE_EV_QUALITY_SCORE_UPDATED, "high_quality_games"));
    const rre_field_info *f = rre_event_field(RRE_EV_QUALITY_SCORE_UPDATED, "is_per_game");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_BOOL);
}

static void test_stage_sections_merge_into_their_data_event(void **state)
{
    (void)state;
    /* SYNC_COMPLETE's section lists items_synced; PROMOTION_COMPLETE's
     * lists promotion_type; PARITY_VALIDATION_COMPLETE's lists parity_rate. */
    const rre_field_info *f = rre_event_field(RRE_EV_DATA_SYNC_COMPLETED, "items_synced");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_INT);
    assert_non_null(rre_event_field(RRE_EV_MODEL_PROMOTED, "promotion_type"));
    f = rre_event_field(RRE_EV_PARITY_VALIDATION_COMPLETED, "parity_rate");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_FLOAT);
    assert_true(rre_event_get(RRE_EV_PARITY_VALIDATION_COMPLETED)->has_schema);
}

static void test_same_as_references_copy_the_fields(void **state)
{
    (void)state;
    const rre_event_info *cmaes = rre_event_get(RRE_EV_CMAES_TRIGGERED);
    const rre_event_info *nas = rre_event_get(RRE_EV_NAS_TRIGGERED);
    assert_true(cmaes->field_count > 0);
    for (size_t i = 0; i < cmaes->field_count; i++) {
        const rre_field_info *f = rre_event_field(RRE_EV_NAS_TRIGGERED, cmaes->fields[i].name);
        if (f == NULL)
            fail_msg("NAS_TRIGGERED lacks %s", cmaes->fields[i].name);
        assert_int_equal(f->type, cmaes->fields[i].type);
    }
    assert_true(nas->has_schema);
}

static void test_key_fields_only_in_quick_reference_are_any(void **state)
{
    (void)state;
    const rre_field_info *f = rre_event_field(RRE_EV_WORK_COMPLETED, "duration");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_ANY);
    assert_int_equal(f->flags, RRE_FIELD_IN_CATALOG);
    f = rre_event_field(RRE_EV_TRAINING_LOSS_TREND, "trend");
    assert_non_null(f);
    assert_null(rre_event_field(RRE_EV_TRAINING_LOSS_TREND, "trend: improving/stalled/degrading"));
}

static void test_nullable_and_schema_types_win(void **state)
{
    (void)state;
    const rre_field_info *f = rre_event_field(RRE_EV_SELFPLAY_COMPLETE, "error");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_STR);
    assert_true(f->flags & RRE_FIELD_NULLABLE);
    f = rre_event_field(RRE_EV_CURRICULUM_REBALANCED, "weights");
    assert_non_null(f);
    assert_int_equal(f->type, RRE_FT_DICT_STR_FLOAT);
    assert_true(f->flags & RRE_FIELD_REQUIRED);
}

static void test_field_invariants_hold_for_every_type(void **state)
{
    (void)state;
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        const rre_event_info *info = rre_event_get((rre_event_type)t);
        if (info->alias_of != RRE_EV_NONE) {
            assert_int_equal(info->field_count, 0);
            assert_false(info->has_schema);
        }
        for (size_t i = 0; i < info->field_count; i++) {
            const rre_field_info *f = &info->fields[i];
            assert_non_null(f->description);
            if ((f->flags & RRE_FIELD_REQUIRED) && !(f->flags & RRE_FIELD_IN_SCHEMAS))
                fail_msg("%s.%s is required without the schemas document", info->name, f->name);
            if (!(f->flags & (RRE_FIELD_IN_SCHEMAS | RRE_FIELD_IN_CATALOG)))
                fail_msg("%s.%s is listed by no document", info->name, f->name);
            assert_ptr_equal(rre_event_field(info->type, f->name), f);
        }
    }
}

static void test_field_type_names(void **state)
{
    (void)state;
    assert_string_equal(rre_field_type_name(RRE_FT_ANY), "any");
    assert_string_equal(rre_field_type_name(RRE_FT_STR), "str");
    assert_string_equal(rre_field_type_name(RRE_FT_INT), "int");
    assert_string_equal(rre_field_type_name(RRE_FT_FLOAT), "float");
    assert_string_equal(rre_field_type_name(RRE_FT_BOOL), "bool");
    assert_string_equal(rre_field_type_name(RRE_FT_LIST), "list");
    assert_string_equal(rre_field_type_name(RRE_FT_LIST_STR), "list[str]");
    assert_string_equal(rre_field_type_name(RRE_FT_DICT), "dict");
    assert_string_equal(rre_field_type_name(RRE_FT_DICT_STR_FLOAT), "dict[str, float]");
    assert_string_equal(rre_field_type_name((rre_field_type)99), "unknown");
}

static void test_categories_have_names_and_lookup_any_case(void **state)
{
    (void)state;
    assert_string_equal(rre_category_name(RRE_CAT_SYNC), "sync");
    assert_string_equal(rre_category_name(RRE_CAT_OTHER), "other");
    assert_string_equal(rre_category_name(RRE_CATEGORY_COUNT), "unknown");
    rre_category c = RRE_CAT_OTHER;
    assert_int_equal(rre_category_lookup("TRAINING_PIPELINE", &c), RRE_OK);
    assert_int_equal(c, RRE_CAT_TRAINING_PIPELINE);
    assert_int_equal(rre_category_lookup("cluster_health", &c), RRE_OK);
    assert_int_equal(c, RRE_CAT_CLUSTER_HEALTH);
    assert_int_equal(rre_category_lookup("training", &c), RRE_ECATEGORY);
    assert_non_null(strstr(rre_last_error(), "\"training\""));
    assert_int_equal(rre_category_lookup("", &c), RRE_ECATEGORY);
    assert_int_equal(rre_category_lookup(NULL, &c), RRE_ECATEGORY);
    for (int k = 0; k < RRE_CATEGORY_COUNT; k++) {
        assert_int_equal(rre_category_lookup(rre_category_name((rre_category)k), &c), RRE_OK);
        assert_int_equal(c, k);
    }
}

static void assert_step(const rre_lifecycle_step *step, unsigned flags, rre_event_type a,
                        rre_event_type b)
{
    assert_int_equal(step->flags, flags);
    assert_int_equal(step->types[0], a);
    if (b == RRE_EV_NONE) {
        assert_int_equal(step->type_count, 1);
    } else {
        assert_int_equal(step->type_count, 2);
        assert_int_equal(step->types[1], b);
    }
}

static void test_lifecycles_follow_the_ordering_guarantees(void **state)
{
    (void)state;
    assert_int_equal(rre_lifecycle_count(), 5);
    assert_null(rre_lifecycle_get(5));
    assert_null(rre_lifecycle_find("nonexistent"));
    assert_null(rre_lifecycle_find(NULL));

    const rre_lifecycle *lc = rre_lifecycle_find("training");
    assert_non_null(lc);
    assert_int_equal(lc->step_count, 3);
    assert_step(&lc->steps[0], 0, RRE_EV_TRAINING_STARTED, RRE_EV_NONE);
    assert_step(&lc->steps[1], RRE_STEP_REPEATABLE, RRE_EV_TRAINING_PROGRESS, RRE_EV_NONE);
    assert_step(&lc->steps[2], RRE_STEP_TERMINAL, RRE_EV_TRAINING_COMPLETED,
                RRE_EV_TRAINING_FAILED);
    assert_int_equal(lc->key_field_count, 2);
    assert_string_equal(lc->key_fields[0], "job_id");
    assert_string_equal(lc->key_fields[1], "config_key");

    lc = rre_lifecycle_find("evaluation");
    assert_int_equal(lc->step_count, 3);
    assert_step(&lc->steps[1], RRE_STEP_REPEATABLE, RRE_EV_EVALUATION_PROGRESS, RRE_EV_NONE);
    assert_step(&lc->steps[2], RRE_STEP_TERMINAL, RRE_EV_EVALUATION_COMPLETED,
                RRE_EV_EVALUATION_FAILED);
    assert_int_equal(lc->key_field_count, 3);
    assert_string_equal(lc->key_fields[1], "model_path");

    lc = rre_lifecycle_find("sync");
    assert_int_equal(lc->step_count, 2);
    assert_step(&lc->steps[0], 0, RRE_EV_DATA_SYNC_STARTED, RRE_EV_NONE);
    assert_step(&lc->steps[1], RRE_STEP_TERMINAL, RRE_EV_DATA_SYNC_COMPLETED,
                RRE_EV_DATA_SYNC_FAILED);
    assert_string_equal(lc->key_fields[0], "sync_id");

    lc = rre_lifecycle_find("recovery");
    assert_step(&lc->steps[0], 0, RRE_EV_RECOVERY_INITIATED, RRE_EV_NONE);
    assert_step(&lc->steps[1], RRE_STEP_TERMINAL, RRE_EV_RECOVERY_COMPLETED,
                RRE_EV_RECOVERY_FAILED);
    assert_int_equal(lc->key_field_count, 2);

    lc = rre_lifecycle_find("WORK");
    assert_non_null(lc);
    assert_int_equal(lc->step_count, 4);
    assert_step(&lc->steps[0], 0, RRE_EV_WORK_QUEUED, RRE_EV_NONE);
    assert_step(&lc->steps[1], 0, RRE_EV_WORK_CLAIMED, RRE_EV_NONE);
    assert_step(&lc->steps[2], 0, RRE_EV_WORK_STARTED, RRE_EV_NONE);
    assert_step(&lc->steps[3], RRE_STEP_TERMINAL, RRE_EV_WORK_COMPLETED, RRE_EV_WORK_FAILED);
    assert_int_equal(lc->key_field_count, 1);
    assert_string_equal(lc->key_fields[0], "work_id");
}

static void test_pipeline_chain_is_in_order(void **state)
{
    (void)state;
    static const rre_event_type expected[] = {
        RRE_EV_SELFPLAY_COMPLETE,
        RRE_EV_NEW_GAMES_AVAILABLE,
        RRE_EV_DATA_SYNC_COMPLETED,
        RRE_EV_NPZ_EXPORT_COMPLETE,
        RRE_EV_TRAINING_THRESHOLD_REACHED,
        RRE_EV_TRAINING_STARTED,
        RRE_EV_TRAINING_COMPLETED,
        RRE_EV_EVALUATION_COMPLETED,
        RRE_EV_MODEL_PROMOTED,
        RRE_EV_MODEL_DISTRIBUTION_COMPLETE,
    };
    size_t n = 0;
    const rre_event_type *chain = rre_pipeline_chain(&n);
    assert_int_equal(n, sizeof expected / sizeof expected[0]);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(chain[i], expected[i]);
    assert_ptr_equal(rre_pipeline_chain(NULL), chain);
}

static void test_event_to_json_has_every_key(void **state)
{
    (void)state;
    json_t *obj = NULL;
    assert_int_equal(rre_event_to_json(RRE_EV_TRAINING_COMPLETED, &obj), RRE_OK);
    assert_string_equal(json_string_value(json_object_get(obj, "name")), "TRAINING_COMPLETED");
    assert_string_equal(json_string_value(json_object_get(obj, "value")), "training_completed");
    assert_string_equal(json_string_value(json_object_get(obj, "category")), "training_pipeline");
    assert_string_equal(json_string_value(json_object_get(obj, "queue_spelling")),
                        "TRAINING_COMPLETED");
    assert_true(json_is_true(json_object_get(obj, "documented")));
    assert_true(json_is_null(json_object_get(obj, "alias_of")));
    assert_non_null(json_string_value(json_object_get(obj, "description")));
    json_t *fields = json_object_get(obj, "fields");
    assert_int_equal(json_array_size(fields),
                     rre_event_get(RRE_EV_TRAINING_COMPLETED)->field_count);
    json_t *first = json_array_get(fields, 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "config_key");
    assert_string_equal(json_string_value(json_object_get(first, "type")), "str");
    assert_true(json_is_true(json_object_get(first, "required")));
    assert_true(json_is_false(json_object_get(first, "nullable")));
    assert_true(json_is_string(json_object_get(first, "description")));
    json_decref(obj);

    assert_int_equal(rre_event_to_json(RRE_EV_STAGE_SYNC_COMPLETE, &obj), RRE_OK);
    assert_string_equal(json_string_value(json_object_get(obj, "alias_of")), "DATA_SYNC_COMPLETED");
    assert_int_equal(json_array_size(json_object_get(obj, "fields")), 0);
    json_decref(obj);

    obj = (json_t *)1;
    assert_int_equal(rre_event_to_json(RRE_EV_NONE, &obj), RRE_EUNKNOWN_TYPE);
    assert_null(obj);
    assert_int_equal(rre_event_to_json(RRE_EV_ELO_UPDATED, NULL), RRE_EINVAL);
}

static void test_json_schema_lists_required_fields_and_types(void **state)
{
    (void)state;
    json_t *s = NULL;
    assert_int_equal(rre_event_json_schema(RRE_EV_TRAINING_COMPLETED, &s), RRE_OK);
    assert_string_equal(json_string_value(json_object_get(s, "$schema")),
                        "https://json-schema.org/draft/2020-12/schema");
    assert_string_equal(json_string_value(json_object_get(s, "$id")),
                        "urn:ringrift-events:TRAINING_COMPLETED");
    assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
    assert_true(json_is_true(json_object_get(s, "additionalProperties")));
    json_t *req = json_object_get(s, "required");
    assert_int_equal(json_array_size(req), 7);
    assert_string_equal(json_string_value(json_array_get(req, 0)), "config_key");
    json_t *props = json_object_get(s, "properties");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "num_players"), "type")),
        "integer");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "final_loss"), "type")), "number");
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EV_EVALUATION_COMPLETED, &s), RRE_OK);
    props = json_object_get(s, "properties");
    json_t *ids = json_object_get(props, "composite_participant_ids");
    assert_string_equal(json_string_value(json_object_get(ids, "type")), "array");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ids, "items"), "type")),
                        "string");
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EV_CURRICULUM_REBALANCED, &s), RRE_OK);
    json_t *w = json_object_get(json_object_get(s, "properties"), "weights");
    assert_string_equal(json_string_value(json_object_get(w, "type")), "object");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(w, "additionalProperties"), "type")),
        "number");
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EV_SELFPLAY_COMPLETE, &s), RRE_OK);
    json_t *err = json_object_get(json_object_get(s, "properties"), "error");
    json_t *types = json_object_get(err, "type");
    assert_true(json_is_array(types));
    assert_string_equal(json_string_value(json_array_get(types, 0)), "string");
    assert_string_equal(json_string_value(json_array_get(types, 1)), "null");
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EV_WORK_COMPLETED, &s), RRE_OK);
    json_t *any = json_object_get(json_object_get(s, "properties"), "duration");
    assert_true(json_is_object(any));
    assert_null(json_object_get(any, "type"));
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EV_STAGE_SYNC_COMPLETE, &s), RRE_OK);
    assert_string_equal(json_string_value(json_object_get(s, "$id")),
                        "urn:ringrift-events:DATA_SYNC_COMPLETED");
    json_decref(s);

    assert_int_equal(rre_event_json_schema(RRE_EVENT_TYPE_COUNT, &s), RRE_EUNKNOWN_TYPE);
    assert_null(s);
}

static void test_markdown_is_deterministic_and_mentions_every_type(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL;
    assert_int_equal(rre_catalog_markdown(&a), RRE_OK);
    assert_int_equal(rre_catalog_markdown(&b), RRE_OK);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "# Event catalog"));
    assert_non_null(strstr(a, "rre catalog --format markdown"));
    for (int t = 0; t < RRE_EVENT_TYPE_COUNT; t++) {
        char needle[96];
        snprintf(needle, sizeof needle, "`%s`", rre_event_name((rre_event_type)t));
        if (strstr(a, needle) == NULL)
            fail_msg("markdown does not mention %s", needle);
    }
    for (int c = 0; c < RRE_CATEGORY_COUNT; c++) {
        char needle[64];
        snprintf(needle, sizeof needle, "\n## %s\n", rre_category_name((rre_category)c));
        assert_non_null(strstr(a, needle));
    }
    assert_non_null(strstr(a, "### TRAINING_COMPLETED\n"));
    assert_non_null(strstr(a, "| `samples_trained` | `int` | yes | no |"));
    assert_non_null(strstr(a, "## Lifecycles"));
    assert_non_null(strstr(a, "## Pipeline chain"));
    assert_non_null(strstr(a, "## Stage events"));
    assert_non_null(strstr(a, "| `TRAINING_COMPLETE` | `training_complete` |"));
    free(a);
    free(b);
    assert_int_equal(rre_catalog_markdown(NULL), RRE_EINVAL);
}

struct race {
    rre_event_type got[4];
};

static void *lookup_thread(void *arg)
{
    rre_event_type *out = arg;
    static const char *const names[] = {"training_complete", "SYNC_COMPLETE", "new_games",
                                        "ELO_UPDATED"};
    for (int i = 0; i < 1000; i++)
        (void)rre_event_lookup(names[i % 4], &out[i % 4]);
    return NULL;
}

static void test_concurrent_lookups_agree(void **state)
{
    (void)state;
    pthread_t threads[4];
    struct race results[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, lookup_thread, results[i].got), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(results[i].got[0], RRE_EV_TRAINING_COMPLETED);
        assert_int_equal(results[i].got[1], RRE_EV_DATA_SYNC_COMPLETED);
        assert_int_equal(results[i].got[2], RRE_EV_NEW_GAMES_AVAILABLE);
        assert_int_equal(results[i].got[3], RRE_EV_ELO_UPDATED);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Runs first so the catalog is built by concurrent callers. */
        cmocka_unit_test(test_concurrent_lookups_agree),
        cmocka_unit_test(test_catalog_has_every_type_of_the_spec),
        cmocka_unit_test(test_sample_rows_match_the_spec),
        cmocka_unit_test(test_every_spelling_resolves_to_its_type_or_alias_target),
        cmocka_unit_test(test_lookup_never_returns_an_alias),
        cmocka_unit_test(test_lookup_is_case_insensitive),
        cmocka_unit_test(test_lookup_n_uses_only_len_bytes),
        cmocka_unit_test(test_stage_names_resolve_to_data_events),
        cmocka_unit_test(test_stage_table_has_every_stage_event),
        cmocka_unit_test(test_stage_spelling_owned_by_a_stage_type_keeps_that_type),
        cmocka_unit_test(test_unknown_spellings_are_rejected),
        cmocka_unit_test(test_very_long_spelling_is_unknown_with_a_truncated_message),
        cmocka_unit_test(test_unknown_spelling_message_escapes_control_bytes),
        cmocka_unit_test(test_training_completed_requires_the_seven_schema_fields),
        cmocka_unit_test(test_known_fields_include_the_catalog_documents_fields),
        cmocka_unit_test(test_both_quality_score_variants_are_known),
        cmocka_unit_test(test_stage_sections_merge_into_their_data_event),
        cmocka_unit_test(test_same_as_references_copy_the_fields),
        cmocka_unit_test(test_key_fields_only_in_quick_reference_are_any),
        cmocka_unit_test(test_nullable_and_schema_types_win),
        cmocka_unit_test(test_field_invariants_hold_for_every_type),
        cmocka_unit_test(test_field_type_names),
        cmocka_unit_test(test_categories_have_names_and_lookup_any_case),
        cmocka_unit_test(test_lifecycles_follow_the_ordering_guarantees),
        cmocka_unit_test(test_pipeline_chain_is_in_order),
        cmocka_unit_test(test_event_to_json_has_every_key),
        cmocka_unit_test(test_json_schema_lists_required_fields_and_types),
        cmocka_unit_test(test_markdown_is_deterministic_and_mentions_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
