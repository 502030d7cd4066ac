"""The catalog's exceptions, a branch of :class:`camhub.errors.CamhubError`::

    CatalogError
    ├── CatalogUnavailable   the database cannot be opened or reached (its URL shown without password)
    ├── NotInCatalog         the device, channel, segment or gap named is not in the catalog
    ├── SegmentOverlap       a new segment overlaps one already recorded for the channel
    ├── LeaseLost            a hub writes for a channel whose lease another hub took over (fencing)
    └── InvalidChange        the change breaks a rule: a sync transition that is not allowed,
                             a gap closed twice or before it opened, an unsynced segment deleted

No message contains a database password: URLs are always rendered masked.
"""

from __future__ import annotations

from camhub.errors import CamhubError

__all__ = [
    "CatalogError",
    "CatalogUnavailable",
    "InvalidChange",
    "LeaseLost",
    "NotInCatalog",
    "SegmentOverlap",
]


class CatalogError(CamhubError):
    """Base class of the catalog's errors."""


class CatalogUnavailable(CatalogError):
    """The catalog database cannot be opened, reached or migrated."""


class NotInCatalog(CatalogError, LookupError):
    """A device, channel, segment or gap that the call names is not in the catalog."""


class SegmentOverlap(CatalogError):
    """A new segment overlaps a segment already recorded for the same channel."""


class LeaseLost(CatalogError):
    """A hub wrote for a channel under a lease (holder, token) that is no longer the channel's."""


class InvalidChange(CatalogError):
    """The change is not allowed from the row's current state."""
