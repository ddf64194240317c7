import os
import re

import pytest

import rre
from rre import catalog
from rre.data_events import DataEventType, category_of, types_in_category
from rre.stage_events import StageEvent, data_event_of

from conftest import ROOT

DEF = os.path.join(ROOT, "include", "rre", "event_types.def")


def def_entries():
    pat = re.compile(r'^RRE_EVENT\((\w+), "([^"]*)", (\w+), (\d), "([^"]*)", (\w+),')
    with open(DEF) as f:
        return [m.groups() for m in map(pat.match, f) if m]


def test_data_event_type_has_every_type_of_the_catalog_with_its_value():
    entries = def_entries()
    assert len(entries) == catalog.TYPE_COUNT
    for name, value, category, _doc, spelling, alias, in entries:
        info = catalog.info(name)
        assert info.value == value
        assert info.category == category.lower()
        assert info.queue_spelling == spelling
        assert info.alias_of == (None if alias == "NONE" else alias)
        member = DataEventType(value)
        assert member.value == value
        if name in DataEventType.__members__:
            assert DataEventType[name].value == value


def test_types_sharing_a_value_are_enum_aliases():
    values = {}
    for name, value, *_ in def_entries():
        values.setdefault(value, []).append(name)
    shared = [names for names in values.values() if len(names) > 1]
    for names in shared:
        assert DataEventType[names[0]] is DataEventType[names[1]]


def test_categories_and_lookup_by_any_spelling():
    assert category_of(DataEventType.TRAINING_COMPLETED) == "training_pipeline"
    assert catalog.lookup("training_completed").name == "TRAINING_COMPLETED"
    assert catalog.lookup("Training_Completed").name == "TRAINING_COMPLETED"
    assert DataEventType.TRAINING_COMPLETED in types_in_category("training_pipeline")
    with pytest.raises(rre.errors.UnknownTypeError) as e:
        catalog.lookup("TRAINING_COMPLETD")
    assert e.value.status == "RRE_EUNKNOWN_TYPE"


def test_stage_events_resolve_to_their_data_event():
    assert StageEvent.TRAINING_COMPLETE.value == "training_complete"
    assert data_event_of(StageEvent.TRAINING_COMPLETE) is DataEventType.TRAINING_COMPLETED
    assert StageEvent.TRAINING_COMPLETE.data_event is DataEventType.TRAINING_COMPLETED
    assert len(StageEvent) == len(catalog.STAGE_EVENTS) > 0


def test_content_hash_ignores_envelope_fields_and_alias_spellings():
    a = rre.content_hash("TRAINING_COMPLETED", {"x": 1, "timestamp": "t1"})
    b = rre.content_hash(DataEventType.TRAINING_COMPLETED, {"x": 1, "timestamp": "t2"})
    c = rre.content_hash("TRAINING_COMPLETED", {"x": 2})
    assert a == b != c
    assert re.fullmatch(r"[0-9a-f]{64}", a)


def test_validate_lists_problems_and_accepts_a_valid_payload():
    from conftest import payload_training

    assert rre.validate("TRAINING_COMPLETED", payload_training()) == []
    problems = rre.validate("TRAINING_COMPLETED", payload_training(epochs="many"))
    assert problems == ["field 'epochs': expected int, found string"]


def test_bad_payloads_raise_clear_errors():
    with pytest.raises(rre.errors.NotObjectError):
        rre.content_hash("TRAINING_COMPLETED", [1, 2])
    with pytest.raises(rre.errors.InvalidArgumentError, match="keys must be str"):
        rre.content_hash("TRAINING_COMPLETED", {1: "x"})
    with pytest.raises(rre.errors.InvalidArgumentError, match="keys must be str"):
        rre.content_hash("TRAINING_COMPLETED", {"a": [{"b": {2.5: "x"}}]})
    with pytest.raises(rre.errors.InvalidArgumentError, match="cannot be written as JSON"):
        rre.content_hash("TRAINING_COMPLETED", {"x": float("nan")})
    with pytest.raises(rre.errors.InvalidArgumentError, match="must be JSON types"):
        rre.content_hash("TRAINING_COMPLETED", {"x": object()})
    deep = {}
    cur = deep
    for _ in range(40):
        cur["d"] = {}
        cur = cur["d"]
    with pytest.raises(rre.errors.LimitError):
        rre.content_hash("TRAINING_COMPLETED", deep)
