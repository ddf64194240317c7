"""rre: the Python face of ringrift-events, over librre.

Modules named after the original's, with the same public names:
rre.event_router, rre.data_events, rre.stage_events, rre.event_utils.
Lower level: rre.Router, rre.Queue, rre.Subscriber, rre.catalog,
rre.validate, rre.content_hash, and the rre.Error exceptions."""

import ctypes

from . import _lib, catalog, errors
from .data_events import DataEventType
from .errors import Error
from .event_router import Router, RouterEvent
from .queue import Queue, Subscriber
from .stage_events import StageEvent

__version__ = _lib.dec(_lib.lib.rre_version())


def content_hash(event_type, payload):
    """The content hash (lowercase hex) the library, the queue and the
    bridge use for `payload` as an event of `event_type`."""
    code = catalog.code_of(event_type)
    pj = _lib.to_json_t(payload)
    out = (ctypes.c_uint8 * _lib.HASH_SIZE)()
    try:
        _lib.check(_lib.lib.rre_content_hash(code, pj, out))
    finally:
        _lib.lib.rre_payload_release(pj)
    return _lib.hexhash(out)


def validate(event_type, payload, notes=False):
    """The problems of `payload` against the schema of `event_type`, as
    lines of text ([] when it is valid)."""
    code = catalog.code_of(event_type)
    pj = _lib.to_json_t(payload)
    probs = _lib.Problems()
    try:
        lib = _lib.lib
        lib.rre_payload_normalize(pj)
        st = lib.rre_validate(code, pj, 1 if notes else 0, ctypes.byref(probs))
        if st not in (0, 7):
            _lib.check(st)
    finally:
        _lib.lib.rre_payload_release(pj)
    buf = ctypes.create_string_buffer(256)
    out = []
    for k in range(probs.count):
        _lib.lib.rre_problem_format(ctypes.byref(probs.items[k]), buf, len(buf))
        out.append(_lib.dec(buf.value))
    return out


__all__ = ["Error", "Router", "RouterEvent", "Queue", "Subscriber", "DataEventType",
           "StageEvent", "catalog", "errors", "content_hash", "validate"]
