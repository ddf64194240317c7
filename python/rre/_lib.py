"""Loading librre with ctypes, the C declarations used by the package, and
the conversion of payloads (JSON text on this side, jansson values on the
other).

The library is looked for, in order: the file named by the environment
variable RRE_LIBRARY; a librre.so next to this package (an installed copy)
or in the build tree the package is run from; the system library path.
"""

import ctypes
import ctypes.util
import json
import os

from . import errors

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("RRE_LIBRARY")
    if env:
        yield env
        return
    yield os.path.join(_HERE, "librre.so.0")
    yield os.path.join(_HERE, "librre.so")
    root = os.path.dirname(os.path.dirname(_HERE))
    for build in ("build", "build-asan", "build-tsan"):
        yield os.path.join(root, build, "librre.so.0")
    found = ctypes.util.find_library("rre")
    if found:
        yield found
    yield "librre.so.0"


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "librre was not found; build it (cmake) or set RRE_LIBRARY to its path. Tried: "
        + "; ".join(tried)
    )


lib = _load()

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_bool = ctypes.c_bool
c_double = ctypes.c_double
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
POINTER = ctypes.POINTER

HASH_SIZE = 32
TIMESTAMP_MAX = 32
TRACE_ID_MAX = 56
PROBLEMS_MAX = 16
PROBLEM_FIELD_MAX = 64
CONFIG_KEY_MAX = 16
ROUTER_ISSUE_MAX = 256


class FieldInfo(ctypes.Structure):
    _fields_ = [
        ("name", c_char_p),
        ("type", c_int),
        ("flags", ctypes.c_uint),
        ("description", c_char_p),
    ]


class EventInfo(ctypes.Structure):
    _fields_ = [
        ("type", c_int),
        ("name", c_char_p),
        ("value", c_char_p),
        ("category", c_int),
        ("documented", c_bool),
        ("queue_spelling", c_char_p),
        ("alias_of", c_int),
        ("description", c_char_p),
        ("field_count", c_size_t),
        ("fields", POINTER(FieldInfo)),
        ("has_schema", c_bool),
    ]


class StageEventInfo(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p), ("maps_to", c_int)]


class Event(ctypes.Structure):
    _fields_ = [
        ("type", c_int),
        ("payload", c_void_p),
        ("source", c_char_p),
        ("hostname", c_char_p),
        ("timestamp", ctypes.c_char * TIMESTAMP_MAX),
        ("trace_id", ctypes.c_char * TRACE_ID_MAX),
        ("hash", ctypes.c_uint8 * HASH_SIZE),
        ("event_id", c_int64),
        ("origin", c_int),
        ("payload_text", c_void_p),
        ("payload_len", c_size_t),
    ]


class Problem(ctypes.Structure):
    _fields_ = [
        ("kind", c_int),
        ("field", ctypes.c_char * PROBLEM_FIELD_MAX),
        ("expected", c_int),
        ("found", c_char_p),
    ]


class Problems(ctypes.Structure):
    _fields_ = [
        ("count", c_size_t),
        ("errors", c_size_t),
        ("notes", c_size_t),
        ("items", Problem * PROBLEMS_MAX),
    ]


class PublishOptions(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint),
        ("source", c_char_p),
        ("timestamp", c_char_p),
        ("trace_id", c_char_p),
    ]


class PublishResult(ctypes.Structure):
    _fields_ = [
        ("type", c_int),
        ("duplicate", c_bool),
        ("hash", ctypes.c_uint8 * HASH_SIZE),
        ("timestamp", ctypes.c_char * TIMESTAMP_MAX),
        ("trace_id", ctypes.c_char * TRACE_ID_MAX),
        ("event_id", c_int64),
        ("delivered", c_size_t),
        ("failed", c_size_t),
        ("sink_status", c_int),
        ("problems", Problems),
    ]


class QueueOptions(ctypes.Structure):
    _fields_ = [
        ("path", c_char_p),
        ("hostname", c_char_p),
        ("default_source", c_char_p),
        ("sync", c_int),
        ("busy_timeout_ms", c_int),
        ("dedup_window_seconds", c_double),
        ("retention_hours", c_double),
        ("subscriber_timeout_s", c_double),
        ("maintenance_interval_ms", c_int),
        ("max_page_count", c_int64),
        ("read_only", c_bool),
    ]


class QueuePublishResult(ctypes.Structure):
    _fields_ = [
        ("event_id", c_int64),
        ("duplicate", c_bool),
        ("hash", ctypes.c_uint8 * HASH_SIZE),
    ]


class SubscriberOptions(ctypes.Structure):
    _fields_ = [
        ("name", c_char_p),
        ("types", POINTER(c_int)),
        ("type_count", c_size_t),
        ("categories", POINTER(c_int)),
        ("category_count", c_size_t),
        ("since_id", c_int64),
        ("no_ack", c_bool),
        ("batch", ctypes.c_uint),
        ("max_attempts", c_int),
        ("retry_delay_s", c_double),
        ("retry_delay_max_s", c_double),
        ("strict_order", c_bool),
        ("lazy_payload", c_bool),
        ("cursor_only", c_bool),
    ]


class LinkOptions(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint),
        ("subscriber_name", c_char_p),
        ("since_id", c_int64),
        ("types", POINTER(c_int)),
        ("type_count", c_size_t),
        ("max_attempts", c_int),
        ("retry_delay_s", c_double),
        ("retry_delay_max_s", c_double),
    ]


class ConfigKey(ctypes.Structure):
    _fields_ = [("board", c_int), ("num_players", c_int)]


HANDLER_FN = ctypes.CFUNCTYPE(c_int, POINTER(Event), c_void_p)
QUEUE_HANDLER_FN = ctypes.CFUNCTYPE(c_int, POINTER(Event), c_void_p)
LOG_FN = ctypes.CFUNCTYPE(None, c_int, c_char_p, c_char_p, c_void_p)

_PROTOS = {
    "rre_version": (c_char_p, []),
    "rre_strerror": (c_char_p, [c_int]),
    "rre_status_name": (c_char_p, [c_int]),
    "rre_last_error": (c_char_p, []),
    "rre_event_get": (POINTER(EventInfo), [c_int]),
    "rre_event_lookup": (c_int, [c_char_p, POINTER(c_int)]),
    "rre_category_name": (c_char_p, [c_int]),
    "rre_category_lookup": (c_int, [c_char_p, POINTER(c_int)]),
    "rre_field_type_name": (c_char_p, [c_int]),
    "rre_stage_event_count": (c_size_t, []),
    "rre_stage_event_get": (POINTER(StageEventInfo), [c_size_t]),
    "rre_payload_parse": (c_int, [c_char_p, c_size_t, POINTER(c_void_p)]),
    "rre_payload_normalize": (c_size_t, [c_void_p]),
    "rre_payload_release": (None, [c_void_p]),
    "rre_json_text": (c_int, [c_void_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "rre_free": (None, [c_void_p]),
    "rre_validate": (c_int, [c_int, c_void_p, ctypes.c_uint, POINTER(Problems)]),
    "rre_problem_format": (c_int, [POINTER(Problem), c_char_p, c_size_t]),
    "rre_content_hash": (c_int, [c_int, c_void_p, ctypes.c_uint8 * HASH_SIZE]),
    "rre_event_to_json": (c_int, [c_int, POINTER(c_void_p)]),
    "rre_config_key_parse": (c_int, [c_char_p, POINTER(ConfigKey)]),
    "rre_config_key_make": (c_int, [c_char_p, c_int, c_char_p, c_size_t]),
    "rre_board_name": (c_char_p, [c_int]),
    "rre_extract_config_key": (c_char_p, [c_void_p, c_char_p, c_size_t]),
    "rre_extract_model_path": (c_char_p, [c_void_p]),
    "rre_router_options_create": (c_int, [POINTER(c_void_p)]),
    "rre_router_options_destroy": (None, [c_void_p]),
    "rre_router_options_set_validation": (c_int, [c_void_p, c_int]),
    "rre_router_options_set_dedup": (c_int, [c_void_p, c_bool]),
    "rre_router_options_set_dedup_window": (c_int, [c_void_p, c_double]),
    "rre_router_options_set_history_size": (c_int, [c_void_p, c_size_t]),
    "rre_router_options_set_handler_timeout": (c_int, [c_void_p, c_double]),
    "rre_router_options_set_source": (c_int, [c_void_p, c_char_p]),
    "rre_router_options_set_hostname": (c_int, [c_void_p, c_char_p]),
    "rre_router_create": (c_int, [POINTER(c_void_p), c_void_p]),
    "rre_router_close": (c_int, [c_void_p]),
    "rre_router_destroy": (None, [c_void_p]),
    "rre_router_publish": (
        c_int,
        [c_void_p, c_char_p, c_void_p, POINTER(PublishOptions), POINTER(PublishResult)],
    ),
    "rre_router_publish_text": (
        c_int,
        [c_void_p, c_char_p, c_char_p, c_size_t, POINTER(PublishOptions), POINTER(PublishResult)],
    ),
    "rre_router_subscribe": (c_int, [c_void_p, c_int, c_char_p, HANDLER_FN, c_void_p, POINTER(c_uint64)]),
    "rre_router_subscribe_all": (c_int, [c_void_p, c_char_p, HANDLER_FN, c_void_p, POINTER(c_uint64)]),
    "rre_router_unsubscribe": (c_int, [c_void_p, c_uint64]),
    "rre_router_history": (c_int, [c_void_p, c_int, c_size_t, c_void_p]),
    "rre_router_stats_json": (c_int, [c_void_p, POINTER(c_void_p)]),
    "rre_router_validate_flow_json": (c_int, [c_void_p, POINTER(c_void_p)]),
    "rre_event_to_json_envelope": (c_int, [POINTER(Event), POINTER(c_void_p)]),
    "rre_queue_options_init": (None, [POINTER(QueueOptions)]),
    "rre_queue_create": (c_int, [POINTER(c_void_p), POINTER(QueueOptions)]),
    "rre_queue_close": (None, [c_void_p]),
    "rre_queue_destroy": (None, [c_void_p]),
    "rre_queue_path": (c_char_p, [c_void_p]),
    "rre_queue_hostname": (c_char_p, [c_void_p]),
    "rre_queue_publish": (
        c_int,
        [c_void_p, c_int, c_void_p, c_char_p, c_char_p, c_char_p, POINTER(QueuePublishResult)],
    ),
    "rre_queue_publish_batch": (c_int, [c_void_p, POINTER(Event), c_size_t, POINTER(c_bool)]),
    "rre_subscriber_options_init": (None, [POINTER(SubscriberOptions)]),
    "rre_subscriber_create": (c_int, [POINTER(c_void_p), c_void_p, POINTER(SubscriberOptions)]),
    "rre_subscriber_poll": (
        c_int,
        [c_void_p, c_int, c_size_t, QUEUE_HANDLER_FN, c_void_p, POINTER(c_size_t)],
    ),
    "rre_subscriber_close": (None, [c_void_p]),
    "rre_subscriber_destroy": (None, [c_void_p]),
    "rre_subscriber_id": (c_char_p, [c_void_p]),
    "rre_link_create": (c_int, [POINTER(c_void_p), c_void_p, c_void_p, POINTER(LinkOptions)]),
    "rre_link_sync": (c_int, [c_void_p, c_int]),
    "rre_link_flush": (c_int, [c_void_p, c_int]),
    "rre_link_destroy": (None, [c_void_p]),
    "rre_queue_stats": (c_int, [c_void_p, POINTER(c_void_p)]),
    "rre_fail": (c_int, [c_int, c_char_p]),
    "rre_queue_dlq_list": (c_int, [c_void_p, c_char_p, POINTER(c_void_p)]),
    "rre_queue_dlq_get": (c_int, [c_void_p, c_int64, POINTER(c_void_p)]),
    "rre_queue_dlq_replay": (c_int, [c_void_p, c_int64, c_char_p, POINTER(c_uint64)]),
    "rre_queue_dlq_drop": (c_int, [c_void_p, c_int64, c_double, c_char_p, POINTER(c_uint64)]),
}

for _name, (_res, _args) in _PROTOS.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

ENCODING = "utf-8"


def enc(s):
    """A str argument as bytes for C (None stays None)."""
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError("expected a str, got %s" % type(s).__name__)
    return s.encode(ENCODING, "surrogatepass")


def dec(b):
    if b is None:
        return None
    return b.decode(ENCODING, "replace")


def last_error():
    return dec(lib.rre_last_error()) or ""


def check(status, what=None):
    """Raises the rre.Error subclass of a failing status."""
    if status != 0:
        raise errors.from_status(status, last_error(), what)


def _default(o):
    if isinstance(o, (set, frozenset)):
        return list(o)
    if hasattr(o, "value") and hasattr(type(o), "__members__"):
        return o.value  # an Enum member
    raise TypeError("payload values must be JSON types; %s is not" % type(o).__name__)


def _bad_key(value, depth=0):
    """The first key that is not a str in nested dicts (Python's json module
    would silently write 1, 2.5, True or None keys as strings), or None."""
    if depth > 64:
        return None  # the library refuses the nesting anyway
    if type(value) is dict:
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                return k
            if type(v) in _CONTAINERS:
                bad = _bad_key(v, depth + 1)
                if bad is not None:
                    return bad
    else:
        for v in value:
            if type(v) in _CONTAINERS:
                bad = _bad_key(v, depth + 1)
                if bad is not None:
                    return bad
    return None


_CONTAINERS = (dict, list, tuple)
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_default,
                            separators=(",", ":"))


def to_json_text(payload):
    """A Python mapping as JSON text (bytes) for the library to parse."""
    if type(payload) is not dict:
        if isinstance(payload, dict):
            pass
        elif hasattr(payload, "keys") and hasattr(payload, "__getitem__"):
            payload = dict(payload)
        else:
            raise errors.NotObjectError(
                "RRE_ENOT_OBJECT", "the payload must be a dict, not %s" % type(payload).__name__
            )
    bad = _bad_key(payload)
    if bad is not None:
        raise errors.InvalidArgumentError(
            "RRE_EINVAL", "payload keys must be str; %r is a %s" % (bad, type(bad).__name__)
        )
    try:
        text = _ENCODER.encode(payload)
    except (ValueError, TypeError, RecursionError) as e:
        raise errors.InvalidArgumentError(
            "RRE_EINVAL", "the payload cannot be written as JSON: %s" % e
        ) from None
    return text.encode(ENCODING, "surrogatepass")


def to_json_t(payload):
    """A Python mapping as a new jansson object (the caller releases it)."""
    data = to_json_text(payload)
    out = c_void_p()
    check(lib.rre_payload_parse(data, len(data), ctypes.byref(out)))
    return out


def json_text(ptr):
    """The JSON text of a jansson value (borrowed pointer)."""
    out = c_void_p()
    check(lib.rre_json_text(ptr, ctypes.byref(out), None))
    try:
        return ctypes.string_at(out).decode(ENCODING)
    finally:
        lib.rre_free(out)


def from_json_t(ptr):
    """A jansson value (borrowed pointer) as Python data."""
    if not ptr:
        return None
    return json.loads(json_text(ptr))


def take_json(ptr):
    """A jansson value the caller owns, as Python data; releases it."""
    try:
        return from_json_t(ptr)
    finally:
        lib.rre_payload_release(ptr)


def hexhash(arr):
    return bytes(arr).hex()
