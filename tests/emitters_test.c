/*
 * emitters_test.c - the generated typed emitters: required fields as
 * parameters, optional ones through the struct, extra fields, errors.
 */
#include "testutil.h"

#include <string.h>

#include <rre/rre.h>

struct capture {
    int count;
    rre_event *last;
};

static int capture(const rre_event *ev, void *user_data)
{
    struct capture *c = user_data;
    c->count++;
    rre_event_free(c->last);
    c->last = NULL;
    assert_int_equal(rre_event_copy(ev, &c->last), RRE_OK);
    return 0;
}

static rre_router *strict_router(struct capture *c)
{
    rre_router_options *o = NULL;
    assert_int_equal(rre_router_options_create(&o), RRE_OK);
    rre_router_options_set_validation(o, RRE_VALIDATE_STRICT);
    rre_router *r = NULL;
    assert_int_equal(rre_router_create(&r, o), RRE_OK);
    rre_router_options_destroy(o);
    assert_int_equal(rre_router_subscribe_all(r, "capture", capture, c, NULL), RRE_OK);
    return r;
}

static void test_training_completed_emitter_builds_a_valid_payload(void **state)
{
    (void)state;
    struct capture c = {0};
    rre_router *r = strict_router(&c);
    rre_training_completed_optional opt = {.job_id = "train_hex8_2p_1",
                                           .duration_seconds = &(double){1832.5},
                                           .early_stopped = &(bool){true}};
    rre_publish_result res;
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/models/m.pth", 50,
                                                 0.0423, 85000, &opt, NULL, NULL, &res),
                     RRE_OK);
    assert_false(res.duplicate);
    assert_int_equal(c.count, 1);
    const json_t *p = c.last->payload;
    assert_int_equal(c.last->type, RRE_EV_TRAINING_COMPLETED);
    assert_string_equal(json_string_value(json_object_get(p, "config_key")), "hex8_2p");
    assert_int_equal(json_integer_value(json_object_get(p, "epochs")), 50);
    assert_true(json_real_value(json_object_get(p, "final_loss")) == 0.0423);
    assert_int_equal(json_integer_value(json_object_get(p, "samples_trained")), 85000);
    assert_string_equal(json_string_value(json_object_get(p, "job_id")), "train_hex8_2p_1");
    assert_true(json_is_true(json_object_get(p, "early_stopped")));
    assert_int_equal(json_object_size(p), 10);
    rre_event_free(c.last);
    rre_router_destroy(r);
}

static void test_optional_struct_may_be_null_and_absent_members_are_left_out(void **state)
{
    (void)state;
    struct capture c = {0};
    rre_router *r = strict_router(&c);
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/m.pth", 1, 0.5, 10,
                                                 NULL, NULL, NULL, NULL),
                     RRE_OK);
    assert_int_equal(json_object_size(c.last->payload), 7);
    rre_training_completed_optional opt = {.job_id = "j"};
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/m.pth", 2, 0.5, 10,
                                                 &opt, NULL, NULL, NULL),
                     RRE_OK);
    assert_int_equal(json_object_size(c.last->payload), 8);
    assert_null(json_object_get(c.last->payload, "duration_seconds"));
    rre_event_free(c.last);
    rre_router_destroy(r);
}

static void test_extra_fields_are_added_and_typed_fields_win(void **state)
{
    (void)state;
    struct capture c = {0};
    rre_router *r = strict_router(&c);
    json_t *extra = json_pack("{s:s, s:i}", "model_id", "hex8_2p_v7", "epochs", 999);
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/m.pth", 3, 0.5, 10,
                                                 NULL, extra, NULL, NULL),
                     RRE_OK);
    assert_string_equal(json_string_value(json_object_get(c.last->payload, "model_id")),
                        "hex8_2p_v7");
    assert_int_equal(json_integer_value(json_object_get(c.last->payload, "epochs")), 3);
    /* The payload does not share the caller's values. */
    assert_ptr_not_equal(json_object_get(c.last->payload, "model_id"),
                         json_object_get(extra, "model_id"));
    json_decref(extra);
    rre_event_free(c.last);
    rre_router_destroy(r);
}

static void test_null_required_string_is_einval_naming_the_field(void **state)
{
    (void)state;
    struct capture c = {0};
    rre_router *r = strict_router(&c);
    assert_int_equal(rre_emit_training_completed(r, NULL, "hex8", 2, "/m.pth", 3, 0.5, 10, NULL,
                                                 NULL, NULL, NULL),
                     RRE_EINVAL);
    assert_non_null(strstr(rre_last_error(), "config_key"));
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/m.pth", 3,
                                                 __builtin_nan(""), 10, NULL, NULL, NULL, NULL),
                     RRE_EINVAL);
    json_t *arr = json_array();
    assert_int_equal(rre_emit_training_completed(r, "hex8_2p", "hex8", 2, "/m.pth", 3, 0.5, 10,
                                                 NULL, arr, NULL, NULL),
                     RRE_ENOT_OBJECT);
    json_decref(arr);
    assert_int_equal(c.count, 0);
    rre_router_destroy(r);
}

static void test_emitters_pass_publish_options_through(void **state)
{
    (void)state;
    struct capture c = {0};
    rre_router *r = strict_router(&c);
    rre_publish_options po = {.source = "trainer-7"};
    rre_handler_failed_optional opt = {.handler_name = "h", .event_type = "X", .error = "boom"};
    assert_int_equal(rre_emit_handler_failed(r, &opt, NULL, &po, NULL), RRE_OK);
    assert_string_equal(c.last->source, "trainer-7");
    assert_int_equal(c.last->type, RRE_EV_HANDLER_FAILED);
    rre_event_free(c.last);
    rre_router_destroy(r);
}

static void test_every_documented_type_with_a_schema_has_an_emitter(void **state)
{
    (void)state;
    /* A few from each document, by address: a missing one fails to link. */
    void *fns[] = {
        (void *)rre_emit_training_completed,  (void *)rre_emit_evaluation_completed,
        (void *)rre_emit_model_promoted,      (void *)rre_emit_selfplay_complete,
        (void *)rre_emit_new_games_available, (void *)rre_emit_data_sync_completed,
        (void *)rre_emit_handler_timeout,     (void *)rre_emit_work_queued,
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        assert_non_null(fns[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_completed_emitter_builds_a_valid_payload),
        cmocka_unit_test(test_optional_struct_may_be_null_and_absent_members_are_left_out),
        cmocka_unit_test(test_extra_fields_are_added_and_typed_fields_win),
        cmocka_unit_test(test_null_required_string_is_einval_naming_the_field),
        cmocka_unit_test(test_emitters_pass_publish_options_through),
        cmocka_unit_test(test_every_documented_type_with_a_schema_has_an_emitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
