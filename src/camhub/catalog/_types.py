"""Column types of the catalog: times and durations as integer microseconds (UTC, since the epoch).

Why integers and not ``DATETIME``/``timestamptz``: SQLite has no time type (it stores text or
numbers, and text compares correctly only when every writer used the same format and offset), while
an 8-byte integer compares, indexes and subtracts the same way on SQLite and PostgreSQL. The
segment range query then is a plain integer range scan on both backends, coverage arithmetic is
exact (no float seconds, no rounding), and no session time-zone setting can shift a value.
PostgreSQL's ``timestamptz`` is itself an 8-byte microsecond count, so nothing is lost there.
The Python side only ever sees timezone-aware :class:`~datetime.datetime` values in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = ["EPOCH", "Micros", "UtcMicros", "from_micros", "to_micros", "utc"]

#: The zero of every stored time: 1970-01-01T00:00:00Z.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def utc(value: datetime, what: str = "time") -> datetime:
    """``value`` in UTC; a naive datetime is refused (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got the naive {value.isoformat()}")
    return value.astimezone(UTC)


def to_micros(value: datetime, what: str = "time") -> int:
    """Microseconds since the epoch of an aware datetime (exact: integer arithmetic only)."""
    return (utc(value, what) - EPOCH) // _ONE_US


def from_micros(value: int) -> datetime:
    """The aware UTC datetime of a microsecond count since the epoch."""
    return EPOCH + timedelta(microseconds=value)


class UtcMicros(TypeDecorator[datetime]):
    """An aware UTC datetime stored as a BIGINT of microseconds since the epoch."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> int | None:
        return None if value is None else to_micros(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_micros(int(value))


class Micros(TypeDecorator[timedelta]):
    """A duration stored as a BIGINT of microseconds."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: timedelta | None, dialect: Dialect) -> int | None:
        return None if value is None else value // _ONE_US

    def process_result_value(self, value: Any | None, dialect: Dialect) -> timedelta | None:
        return None if value is None else timedelta(microseconds=int(value))
