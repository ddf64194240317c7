"""The catalog of event types, as the library holds it."""

import ctypes
from collections import namedtuple

from . import _lib
from ._lib import dec, enc, lib

Field = namedtuple("Field", "name type required nullable description")
EventTypeInfo = namedtuple(
    "EventTypeInfo",
    "name value category documented queue_spelling alias_of description fields has_schema",
)
StageEventInfo = namedtuple("StageEventInfo", "name value maps_to")


def _count():
    n = 0
    while lib.rre_event_get(n):
        n += 1
    return n


TYPE_COUNT = _count()


def _info(code):
    p = lib.rre_event_get(code)
    if not p:
        return None
    i = p.contents
    fields = tuple(
        Field(
            dec(i.fields[k].name),
            dec(lib.rre_field_type_name(i.fields[k].type)),
            bool(i.fields[k].flags & 0x1),
            bool(i.fields[k].flags & 0x2),
            dec(i.fields[k].description),
        )
        for k in range(i.field_count)
    )
    alias = dec(lib.rre_event_get(i.alias_of).contents.name) if i.alias_of >= 0 else None
    return EventTypeInfo(
        dec(i.name),
        dec(i.value),
        dec(lib.rre_category_name(i.category)),
        bool(i.documented),
        dec(i.queue_spelling),
        alias,
        dec(i.description),
        fields,
        bool(i.has_schema),
    )


TYPES = tuple(_info(c) for c in range(TYPE_COUNT))
_CODES = {t.name: c for c, t in enumerate(TYPES)}
CATEGORIES = tuple(sorted({t.category for t in TYPES}))

STAGE_EVENTS = tuple(
    StageEventInfo(
        dec(lib.rre_stage_event_get(k).contents.name),
        dec(lib.rre_stage_event_get(k).contents.value),
        TYPES[lib.rre_stage_event_get(k).contents.maps_to].name,
    )
    for k in range(lib.rre_stage_event_count())
)


def spelling_of(event_type):
    """The text of an event type given as a str or an enum member."""
    if isinstance(event_type, str):
        return event_type
    value = getattr(event_type, "value", None)
    if isinstance(value, str):
        return value
    raise TypeError("an event type is a str or an event enum member, not %s"
                    % type(event_type).__name__)


def code_of(event_type):
    """The library's code of any spelling of a type (NAME, value, queue
    spelling, stage event; any case), resolved past aliases."""
    spelling = spelling_of(event_type)
    out = ctypes.c_int()
    _lib.check(lib.rre_event_lookup(enc(spelling), ctypes.byref(out)))
    return out.value


def lookup(event_type):
    """The canonical type of any spelling: an EventTypeInfo."""
    return TYPES[code_of(event_type)]


def info(name):
    """The EventTypeInfo of a canonical NAME (aliases included, unresolved)."""
    code = _CODES.get(name)
    if code is None:
        return lookup(name)
    return TYPES[code]


def canonical_name(event_type):
    return TYPES[code_of(event_type)].name
