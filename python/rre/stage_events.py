"""StageEvent: the names of the stage bus, each resolving to a data event
as in the library (StageEvent.TRAINING_COMPLETE.value is
"training_complete", and publishing it publishes TRAINING_COMPLETED)."""

import enum

from . import catalog

StageEvent = enum.Enum(
    "StageEvent",
    [(s.name, s.value) for s in catalog.STAGE_EVENTS],
    module=__name__,
)
StageEvent.__doc__ = "The stage events (NAME = stage name)."

_MAPS = {s.name: s.maps_to for s in catalog.STAGE_EVENTS}


def data_event_of(stage_event):
    """The DataEventType member a stage event resolves to."""
    from .data_events import DataEventType

    if isinstance(stage_event, StageEvent):
        return DataEventType[_MAPS[stage_event.name]]
    return DataEventType[catalog.canonical_name(stage_event)]


StageEvent.data_event = property(lambda self: data_event_of(self))

__all__ = ["StageEvent", "data_event_of"]
