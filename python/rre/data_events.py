"""DataEventType: every event type of the catalog, as a Python Enum.

The members are made from the library's catalog when the module is
imported (never written by hand), so they always match the library: the
member name is the canonical NAME, `.value` the legacy lowercase value.
Types that share a value with another type (aliases) are Enum aliases of
it, as in the original."""

import dataclasses
import enum
from typing import Any, Dict, Optional

from . import catalog
from ._view import RouterView

DataEventType = enum.Enum(
    "DataEventType",
    [(t.name, t.value) for t in catalog.TYPES],
    module=__name__,
)
DataEventType.__doc__ = "Every event type of the catalog (NAME = legacy value)."

CATEGORIES = catalog.CATEGORIES


def category_of(event_type):
    """The category name of any spelling or member of an event type."""
    return catalog.lookup(event_type).category


def types_in_category(category):
    """The members of one category (canonical types only)."""
    return [DataEventType[t.name] for t in catalog.TYPES
            if t.category == category and t.alias_of is None]


@dataclasses.dataclass
class DataEvent:
    """An event of the original's data bus: what EventBus.publish() takes."""

    event_type: Any
    payload: Dict[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: Optional[str] = None
    source: str = ""


class EventBus(RouterView):
    """The original's data event bus, as a thin view of the process's
    router (get_router()): publishing here is publishing there, so every
    subscriber of the router, the durable queue and the bridge see it."""

    async def publish(self, event, source=None):
        """Publishes a DataEvent; returns the routed RouterEvent."""
        return await self.router.publish(event.event_type, event.payload,
                                         source=source or event.source or None,
                                         timestamp=event.timestamp)

    def publish_sync(self, event, source=None):
        return self.router.publish_sync(event.event_type, event.payload,
                                        source=source or event.source or None,
                                        timestamp=event.timestamp)



_bus = None


def get_event_bus():
    """The process's EventBus (a view of get_router())."""
    global _bus
    if _bus is None:
        _bus = EventBus()
    return _bus


def reset_event_bus():
    """Forgets the bus and resets the process's router."""
    global _bus
    _bus = None
    from .event_router import reset_router

    reset_router()


__all__ = ["DataEventType", "CATEGORIES", "category_of", "types_in_category", "DataEvent",
           "EventBus", "get_event_bus", "reset_event_bus"]
