"""Payload extraction utilities (the original's event_utils), with the
semantics of the library's C functions: strict config keys ("hex8_2p";
"hex8_+2p", "hex8_2" and "HEX8_2p" are invalid), the documented field
aliases (config, checkpoint_path/path, loss, samples, games)."""

import ctypes
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional

from . import _lib
from ._lib import dec, enc, lib


class _BoardAndPlayers(NamedTuple):
    board_type: str
    num_players: int


class ParsedConfigKey(_BoardAndPlayers):
    """A parsed config key: .board_type, .num_players and .raw (the key as
    given). It unpacks as the catalog's tuple: board, players = ..."""

    def __new__(cls, board_type, num_players, raw):
        self = super().__new__(cls, board_type, num_players)
        self.raw = raw
        return self

    def __repr__(self):
        return "ParsedConfigKey(board_type=%r, num_players=%r, raw=%r)" % (
            self.board_type, self.num_players, self.raw)


def parse_config_key(key):
    """"hex8_2p" -> ParsedConfigKey("hex8", 2, "hex8_2p"); None when invalid."""
    if not isinstance(key, str):
        return None
    out = _lib.ConfigKey()
    try:
        data = enc(key)
    except UnicodeError:
        return None
    if b"\0" in data or lib.rre_config_key_parse(data, ctypes.byref(out)) != 0:
        return None
    return ParsedConfigKey(dec(lib.rre_board_name(out.board)), out.num_players, key)


def make_config_key(board_type, num_players):
    """("hex8", 2) -> "hex8_2p"; raises rre.errors.ConfigKeyError when
    the board or the count is not valid."""
    if isinstance(num_players, bool) or not isinstance(num_players, int):
        raise _lib.errors.ConfigKeyError("RRE_ECONFIG_KEY",
                                         "num_players must be an int, not %r" % (num_players,))
    buf = ctypes.create_string_buffer(_lib.CONFIG_KEY_MAX)
    _lib.check(lib.rre_config_key_make(enc(board_type), num_players, buf, len(buf)))
    return dec(buf.value)


def extract_board_type_and_players(key):
    """(board_type, num_players) of a config key, or (None, None)."""
    parsed = parse_config_key(key)
    return (parsed.board_type, parsed.num_players) if parsed else (None, None)


def normalize_event_payload(event):
    """The payload of an event (a RouterEvent, an object with .payload, or a
    dict), as a new dict with the field aliases renamed to their canonical
    names where the canonical one is absent."""
    payload = getattr(event, "payload", event)
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise TypeError("an event payload is a dict, not %s" % type(payload).__name__)
    pj = _lib.to_json_t(payload)
    try:
        lib.rre_payload_normalize(pj)
        return _lib.from_json_t(pj)
    finally:
        lib.rre_payload_release(pj)


def _with_json(payload, fn):
    payload = getattr(payload, "payload", payload)
    if not isinstance(payload, dict):
        return None
    pj = _lib.to_json_t(payload)
    try:
        return fn(pj)
    finally:
        lib.rre_payload_release(pj)


def extract_config_key(payload):
    """config_key, then config, then board_type + num_players; "" when none
    is a valid key."""
    buf = ctypes.create_string_buffer(_lib.CONFIG_KEY_MAX)
    got = _with_json(payload, lambda pj: lib.rre_extract_config_key(pj, buf, len(buf)))
    return dec(got) if got else ""


def extract_model_path(payload):
    """model_path, then checkpoint_path, then path; "" when none."""
    got = _with_json(payload, lambda pj: dec(lib.rre_extract_model_path(pj)))
    return got or ""


class _TrainingData(ctypes.Structure):
    _fields_ = [
        ("config_key", ctypes.c_char_p), ("board_type", ctypes.c_char_p),
        ("num_players", ctypes.c_int), ("model_path", ctypes.c_char_p),
        ("epochs", ctypes.c_int64), ("final_loss", ctypes.c_double),
        ("samples_trained", ctypes.c_int64), ("job_id", ctypes.c_char_p),
        ("duration_seconds", ctypes.c_double), ("early_stopped", ctypes.c_bool),
        ("valid", ctypes.c_bool), ("config_key_buf", ctypes.c_char * _lib.CONFIG_KEY_MAX),
    ]


class _EvaluationData(ctypes.Structure):
    _fields_ = [
        ("config_key", ctypes.c_char_p), ("board_type", ctypes.c_char_p),
        ("num_players", ctypes.c_int), ("model_path", ctypes.c_char_p),
        ("elo", ctypes.c_double), ("games_played", ctypes.c_int64),
        ("win_rate", ctypes.c_double), ("is_multi_harness", ctypes.c_bool),
        ("harness_results", ctypes.c_void_p), ("best_harness", ctypes.c_char_p),
        ("composite_participant_ids", ctypes.c_void_p), ("valid", ctypes.c_bool),
        ("config_key_buf", ctypes.c_char * _lib.CONFIG_KEY_MAX),
    ]


lib.rre_extract_training_data.restype = ctypes.c_int
lib.rre_extract_training_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(_TrainingData)]
lib.rre_extract_evaluation_data.restype = ctypes.c_int
lib.rre_extract_evaluation_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(_EvaluationData)]


@dataclass
class TrainingEventData:
    """A TRAINING_COMPLETED payload, typed. `valid` says whether every
    field the schema requires was found."""

    config_key: str
    board_type: str
    num_players: int
    model_path: str
    epochs: int = 0
    final_loss: float = 0.0
    samples_trained: int = 0
    job_id: Optional[str] = None
    duration_seconds: float = 0.0
    early_stopped: bool = False
    valid: bool = False


@dataclass
class EvaluationEventData:
    """An EVALUATION_COMPLETED payload, typed."""

    config_key: str
    board_type: str
    num_players: int
    model_path: str
    elo: float = 0.0
    games_played: int = 0
    win_rate: float = 0.0
    is_multi_harness: bool = False
    harness_results: Dict[str, Any] = field(default_factory=dict)
    best_harness: Optional[str] = None
    composite_participant_ids: List[str] = field(default_factory=list)
    valid: bool = False


def extract_training_data(payload):
    """TrainingEventData of a payload (or event); aliases loss and samples
    are honoured, board_type/num_players come from the config key when
    absent."""
    def run(pj):
        d = _TrainingData()
        _lib.check(lib.rre_extract_training_data(pj, ctypes.byref(d)))
        return TrainingEventData(
            config_key=dec(d.config_key) or "", board_type=dec(d.board_type) or "",
            num_players=d.num_players, model_path=dec(d.model_path) or "", epochs=d.epochs,
            final_loss=d.final_loss, samples_trained=d.samples_trained,
            job_id=dec(d.job_id), duration_seconds=d.duration_seconds,
            early_stopped=bool(d.early_stopped), valid=bool(d.valid))

    got = _with_json(payload, run)
    return got if got is not None else TrainingEventData("", "", 0, "")


def extract_evaluation_data(payload):
    """EvaluationEventData of a payload (or event); the alias games is
    honoured."""
    def run(pj):
        d = _EvaluationData()
        _lib.check(lib.rre_extract_evaluation_data(pj, ctypes.byref(d)))
        return EvaluationEventData(
            config_key=dec(d.config_key) or "", board_type=dec(d.board_type) or "",
            num_players=d.num_players, model_path=dec(d.model_path) or "", elo=d.elo,
            games_played=d.games_played, win_rate=d.win_rate,
            is_multi_harness=bool(d.is_multi_harness),
            harness_results=_lib.from_json_t(d.harness_results) or {},
            best_harness=dec(d.best_harness),
            composite_participant_ids=_lib.from_json_t(d.composite_participant_ids) or [],
            valid=bool(d.valid))

    got = _with_json(payload, run)
    return got if got is not None else EvaluationEventData("", "", 0, "")


__all__ = [
    "ParsedConfigKey", "parse_config_key", "make_config_key", "extract_board_type_and_players",
    "normalize_event_payload", "extract_config_key", "extract_model_path",
    "TrainingEventData", "EvaluationEventData", "extract_training_data",
    "extract_evaluation_data",
]
