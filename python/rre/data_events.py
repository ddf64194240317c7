"""DataEventType: every event type of the catalog, as a Python Enum.

The members are made from the library's catalog when the module is
imported (never written by hand), so they always match the library: the
member name is the canonical NAME, `.value` the legacy lowercase value.
Types that share a value with another type (aliases) are Enum aliases of
it, as in the original."""

import enum

from . import catalog

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


__all__ = ["DataEventType", "CATEGORIES", "category_of", "types_in_category"]
