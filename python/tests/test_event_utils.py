import pytest

from rre.errors import ConfigKeyError
from rre.event_router import RouterEvent
from rre.event_utils import (
    EvaluationEventData,
    ParsedConfigKey,
    TrainingEventData,
    extract_board_type_and_players,
    extract_config_key,
    extract_evaluation_data,
    extract_model_path,
    extract_training_data,
    make_config_key,
    normalize_event_payload,
    parse_config_key,
)


def test_parse_config_key_unpacks_as_the_documents_tuple():
    parsed = parse_config_key("hex8_2p")
    board, players = parsed
    assert (board, players) == ("hex8", 2)
    assert isinstance(parsed, ParsedConfigKey)
    assert parsed.raw == "hex8_2p" and parsed.board_type == "hex8" and parsed.num_players == 2


@pytest.mark.parametrize("key", ["hex8_+2p", "hex8_2", "HEX8_2p", "hex8_5p", "", "hex8_2p\0",
                                 None, 7, "cube_2p"])
def test_parse_config_key_is_strict(key):
    assert parse_config_key(key) is None


def test_make_config_key_and_its_errors():
    assert make_config_key("square19", 4) == "square19_4p"
    with pytest.raises(ConfigKeyError):
        make_config_key("hex8", 5)
    with pytest.raises(ConfigKeyError):
        make_config_key("Hex8", 2)
    with pytest.raises(ConfigKeyError):
        make_config_key("hex8", True)
    assert extract_board_type_and_players("hexagonal_3p") == ("hexagonal", 3)
    assert extract_board_type_and_players("bad") == (None, None)


def test_extract_config_key_and_model_path_use_the_fallbacks():
    assert extract_config_key({"config_key": "hex8_2p"}) == "hex8_2p"
    assert extract_config_key({"config": "square8_3p"}) == "square8_3p"
    assert extract_config_key({"board_type": "hex8", "num_players": 4}) == "hex8_4p"
    assert extract_config_key({"config_key": "nonsense", "config": "hex8_2p"}) == "hex8_2p"
    assert extract_config_key({}) == ""
    assert extract_model_path({"checkpoint_path": "/c", "path": "/p"}) == "/c"
    assert extract_model_path({"model_path": "", "path": "/p"}) == "/p"
    assert extract_model_path({}) == ""


def test_normalize_event_payload_takes_the_payload_out_of_an_event():
    ev = RouterEvent("TRAINING_COMPLETED", {"loss": 0.5, "config": "hex8_2p"})
    assert normalize_event_payload(ev) == {"final_loss": 0.5, "config_key": "hex8_2p"}
    assert normalize_event_payload({"games": 3, "games_played": 4}) == {"games": 3,
                                                                       "games_played": 4}
    assert normalize_event_payload(None) == {}


def test_extract_training_data_honours_aliases_and_says_whether_valid():
    d = extract_training_data({"config_key": "hex8_2p", "model_path": "/m", "epochs": 3,
                               "loss": 0.25, "samples": 100, "job_id": "j"})
    assert d == TrainingEventData("hex8_2p", "hex8", 2, "/m", 3, 0.25, 100, "j", 0.0, False, True)
    bad = extract_training_data({"config_key": "hex8_2p"})
    assert not bad.valid
    assert extract_training_data("not a dict").valid is False


def test_dataclasses_take_documented_fields_positionally_with_defaults_after():
    t = TrainingEventData("hex8_2p", "hex8", 2, "/m")
    assert t.epochs == 0 and t.job_id is None
    e = EvaluationEventData("hex8_2p", "hex8", 2, "/m")
    assert e.harness_results == {} and e.composite_participant_ids == []


def test_extract_evaluation_data_keeps_nested_values():
    d = extract_evaluation_data({
        "config_key": "hex8_2p", "board_type": "hex8", "num_players": 2, "model_path": "/m",
        "elo": 1650.5, "games": 100, "win_rate": 0.72, "is_multi_harness": True,
        "harness_results": {"gumbel_mcts": {"elo": 1650, "games": 50}},
        "best_harness": "gumbel_mcts", "composite_participant_ids": ["a", "b"]})
    assert d.valid and d.games_played == 100 and d.best_harness == "gumbel_mcts"
    assert d.harness_results == {"gumbel_mcts": {"elo": 1650, "games": 50}}
    assert d.composite_participant_ids == ["a", "b"]
