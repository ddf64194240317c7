import asyncio
import inspect
import os
import re

import pytest

import rre
from rre import catalog, event_emitters
from rre.errors import InvalidPayloadError
from rre.event_router import Router

from conftest import ROOT


def c_emitter_names():
    with open(os.path.join(ROOT, "include", "rre", "emitters.h")) as f:
        return set(re.findall(r"RRE_API rre_status rre_(emit_\w+)\(", f.read()))


def test_generated_emitters_are_the_c_emitters():
    assert set(event_emitters.GENERATED) == c_emitter_names()


def test_generated_emitters_take_every_field_of_their_type_by_keyword():
    fn = event_emitters.emit_training_completed
    params = inspect.signature(fn).parameters
    for f in catalog.info("TRAINING_COMPLETED").fields:
        if f.name != "timestamp":
            assert params[f.name].kind is inspect.Parameter.KEYWORD_ONLY
    assert {"extra", "source", "timestamp", "trace_id", "router"} <= set(params)
    assert "TRAINING_COMPLETED" in fn.__doc__


def run(coro):
    return asyncio.run(coro)


def test_a_generated_emitter_publishes_a_valid_payload_and_makes_the_config_key(db):
    with Router(db_path=db, validation="strict") as r:
        ev = run(event_emitters.emit_training_completed(
            board_type="hex8", num_players=2, model_path="/m.pth", epochs=3, final_loss=0.1,
            samples_trained=10, job_id="j", extra={"note": "x"}, source="trainer", router=r))
    assert ev.event_type == "TRAINING_COMPLETED" and ev.payload["config_key"] == "hex8_2p"
    assert ev.payload["note"] == "x" and ev.event_id > 0
    assert rre.validate("TRAINING_COMPLETED", ev.payload) == []


def test_a_generated_emitter_refuses_a_payload_missing_required_fields(db):
    with Router(db_path=db) as r:
        with pytest.raises(InvalidPayloadError) as e:
            run(event_emitters.emit_training_completed(config_key="hex8_2p", router=r))
        assert "missing required field 'epochs' (int)" in e.value.problems
        with pytest.raises(InvalidPayloadError):
            run(event_emitters.emit_training_completed(
                config_key="hex8_2p", board_type="hex8", num_players="two", model_path="/m",
                epochs=1, final_loss=0.1, samples_trained=1, router=r))
        with pytest.raises(TypeError, match="extra="):
            run(event_emitters.emit_training_completed(bogus=1, router=r))
        assert r.get_stats()["events_published"] == 0


@pytest.mark.parametrize("name, call, expected_type", [
    ("emit_training_complete", dict(job_id="square8_2p_123", board_type="square8", num_players=2,
                                    success=True, final_loss=0.05, final_elo=1650.0,
                                    model_path="models/square8_2p_new.pth",
                                    epochs_completed=20), "TRAINING_COMPLETED"),
    ("emit_training_complete", dict(job_id="j", board_type="hex8", num_players=2,
                                    success=False), "TRAINING_FAILED"),
    ("emit_selfplay_complete", dict(task_id="selfplay_001", board_type="hex8", num_players=2,
                                    games_generated=500, success=True, node_id="runpod-h100",
                                    duration_seconds=120.5, selfplay_type="gpu_accelerated"),
     "SELFPLAY_COMPLETE"),
    ("emit_evaluation_complete", dict(model_id="hex8_2p_v123", board_type="hex8", num_players=2,
                                      success=True, win_rate=0.75, elo_delta=50.0,
                                      games_played=100), "EVALUATION_COMPLETED"),
    ("emit_evaluation_complete", dict(model_id="m", success=False, error="crash"),
     "EVALUATION_FAILED"),
    ("emit_promotion_complete", dict(model_id="m1", board_type="hex8", num_players=2,
                                     new_elo=1700.0, previous_elo=1650.0), "MODEL_PROMOTED"),
])
def test_example_emitters_map_their_arguments_to_valid_payloads(db, name, call, expected_type):
    with Router(db_path=db, validation="strict") as r:
        ev = run(getattr(event_emitters, name)(router=r, **call))
    assert ev.event_type == expected_type
    assert rre.validate(expected_type, ev.payload) == []


def test_example_emitters_mapping_details(db):
    with Router(db_path=db) as r:
        t = run(event_emitters.emit_training_complete(
            job_id="j", board_type="square8", num_players=2, final_loss=0.05, final_elo=1650.0,
            model_path="/m", epochs_completed=20, router=r))
        s = run(event_emitters.emit_selfplay_complete(
            task_id="t", board_type="hex8", num_players=3, games_generated=500, router=r))
        e = run(event_emitters.emit_evaluation_complete(
            model_id="v1", board_type="hex8", num_players=2, win_rate=0.5, games_played=10,
            router=r))
        p = run(event_emitters.emit_promotion_complete(
            model_id="m1", config_key="hex8_2p", new_elo=1700.0, previous_elo=1650.0, router=r))
    assert t.payload["epochs"] == 20 and t.payload["config_key"] == "square8_2p"
    assert t.payload["samples_trained"] == 0 and t.payload["final_elo"] == 1650.0
    assert s.payload["games_completed"] == 500 and s.payload["config_key"] == "hex8_3p"
    assert e.payload["model_path"] == "v1" and e.payload["elo"] == 0.0
    assert e.payload["elo_known"] is False
    assert p.payload["elo_delta"] == 50.0 and p.payload["model_path"] == "m1"
