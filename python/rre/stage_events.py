"""StageEvent: the names of the stage bus, each resolving to a data event
as in the library (StageEvent.TRAINING_COMPLETE.value is
"training_complete", and publishing it publishes TRAINING_COMPLETED)."""

import dataclasses
import enum
from typing import Any, Dict, Optional

from . import catalog
from ._view import RouterView

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

@dataclasses.dataclass
class StageCompletionResult:
    """What a pipeline stage reports on the original's stage bus.
    StageEventBus.emit() publishes it as the stage event's data event with
    the fields that are set (None fields are left out), `metadata` merged
    in, and the config key made from board_type and num_players."""

    event: StageEvent
    success: bool = True
    iteration: Optional[int] = None
    timestamp: Optional[str] = None
    board_type: Optional[str] = None
    num_players: Optional[int] = None
    games_generated: Optional[int] = None
    model_path: Optional[str] = None
    train_loss: Optional[float] = None
    val_loss: Optional[float] = None
    win_rate: Optional[float] = None
    elo_delta: Optional[float] = None
    error: Optional[str] = None
    metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_payload(self):
        payload = dict(self.metadata)
        for f in dataclasses.fields(self):
            if f.name in ("event", "metadata", "timestamp"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                payload[f.name] = value
        if "config_key" not in payload and self.board_type and self.num_players:
            from .event_utils import make_config_key

            payload["config_key"] = make_config_key(self.board_type, self.num_players)
        return payload


class StageEventBus(RouterView):
    """The original's stage event bus, as a thin view of the process's
    router: stage events are published as the data events they resolve to,
    and a subscription to a stage event receives its data event."""

    async def emit(self, result, source=None):
        """Publishes a StageCompletionResult; returns the RouterEvent."""
        return await self.router.publish(result.event, result.to_payload(), source=source,
                                         timestamp=result.timestamp)



_bus = None


def get_event_bus():
    """The process's StageEventBus (a view of get_router())."""
    global _bus
    if _bus is None:
        _bus = StageEventBus()
    return _bus


def reset_event_bus():
    global _bus
    _bus = None
    from .event_router import reset_router

    reset_router()


__all__ = ["StageEvent", "data_event_of", "StageCompletionResult", "StageEventBus",
           "get_event_bus", "reset_event_bus"]
