"""The catalog's scale-out side: channel leases with fencing tokens, and which hubs are alive.

A mixin of :class:`~camhub.catalog.Catalog` (the policy — how many channels a hub claims, when it
stops recording — lives in :mod:`camhub.leases`).

**One clock.** Every lease time is the database's clock (PostgreSQL ``now()``; on SQLite, which
serves one host, that host's clock): a lease is granted until ``database now + period`` and is
free once ``database now`` passes it. Hubs never compare their own clocks with a lease's expiry,
so a hub whose clock is minutes off can neither keep a lease too long nor take one too early.
A hub only measures an *interval* on its own monotonic clock, from *before* it sent the renewal
(see :mod:`camhub.leases` for the margins).

**Atomic claims.** A claim is ``INSERT … ON CONFLICT (device_id, channel) DO UPDATE … WHERE the
lease has expired … RETURNING``: on PostgreSQL a second hub claiming the same channel at the same
moment waits for the first one's row lock and then finds the lease taken; on SQLite writers are
serialised. Rows are never deleted, so a channel's ``token`` only grows: it is raised at every
acquisition (a new holder, or the same hub again after it lost the lease), and a segment written
under an older token is refused (:meth:`LeaseCatalog.check_fence`).

**Who is alive.** A hub announces itself (:meth:`LeaseCatalog.announce_hub`) for as long as it runs,
even while it holds no lease (a newcomer must be seen before the others give it channels). On
PostgreSQL the announcement is a database session of its own named ``camhub-hub <holder>``
(``application_name``): the server ends it when the process dies, so a killed hub disappears
from :meth:`LeaseCatalog.live_hubs` at once. On SQLite it is an exclusive ``flock`` on a file
beside the database, which the kernel releases when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    URL,
    BigInteger,
    Connection,
    Engine,
    Table,
    column,
    func,
    literal_column,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from camhub.catalog._engine import masked
from camhub.catalog._errors import CatalogUnavailable, LeaseLost
from camhub.catalog._records import LeaseRecord
from camhub.catalog._schema import LeaseRow
from camhub.catalog._types import from_micros

__all__ = ["HubAnnouncement", "LeaseCatalog"]

_LEASES: Table = LeaseRow.__table__  # type: ignore[assignment]
_COLUMNS = (
    _LEASES.c.device_id,
    _LEASES.c.channel,
    _LEASES.c.holder,
    _LEASES.c.token,
    _LEASES.c.acquired_at_us,
    _LEASES.c.expires_at_us,
)
#: Row-value ``IN`` lists are sent in chunks of this many leases.
_CHUNK = 500
#: The ``application_name`` prefix of a hub's announcement session on PostgreSQL.
HUB_SESSION_PREFIX = "camhub-hub "
_PG_STAT_ACTIVITY = table("pg_stat_activity", column("datname"), column("application_name"))
_PG_NAME_LIMIT = 63  # NAMEDATALEN - 1: PostgreSQL truncates application_name beyond it

# The database's "now" in integer microseconds since the epoch. PostgreSQL's now() is the start
# of the transaction: never later than the moment the statement runs, so a lease granted "until
# now() + period" never outlasts what the holder counted from before its request was sent.
_PG_NOW = literal_column("CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)", BigInteger)
_SQLITE_NOW = literal_column("CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)", BigInteger)


def _lease(row: Any) -> LeaseRecord:
    device_id, channel, holder, token, acquired_at, expires_at = tuple(row)  # times typed UtcMicros
    return LeaseRecord(
        device_id=device_id,
        channel=channel,
        holder=holder,
        token=token,
        acquired_at=acquired_at,
        expires_at=expires_at,
    )


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for index in range(0, len(items), _CHUNK):
        yield items[index : index + _CHUNK]


def _micros(period: timedelta) -> int:
    if period <= timedelta(0):
        raise ValueError(f"a lease period must be positive, got {period}")
    return period // timedelta(microseconds=1)


class HubAnnouncement(Protocol):
    """A hub's announcement that it is alive (see :meth:`LeaseCatalog.announce_hub`)."""

    def check(self) -> None:
        """Make sure the announcement still stands (re-announce after a lost database session)."""

    def close(self) -> None:
        """Withdraw the announcement (a clean stop)."""


class LeaseCatalog:
    """Channel leases and live hubs (methods of :class:`~camhub.catalog.Catalog`)."""

    _engine: Engine
    _url: URL
    _sqlite: bool

    if TYPE_CHECKING:  # provided by Catalog

        def _writing(self) -> contextlib.AbstractContextManager[Session]: ...
        def _reading(self) -> contextlib.AbstractContextManager[Session]: ...

    @property
    def _now_us(self) -> Any:
        return _SQLITE_NOW if self._sqlite else _PG_NOW

    def database_time(self) -> datetime:
        """The database's clock: the one clock every lease time is on."""
        with self._reading() as session:
            return from_micros(int(session.execute(select(self._now_us)).scalar_one()))

    def acquire_leases(
        self, holder: str, channels: Iterable[tuple[str, int]], period: timedelta
    ) -> list[LeaseRecord]:
        """Claim each of ``channels`` that is free (never leased, or its lease expired) for ``period``.

        Channels leased to anyone (``holder`` included) until later than now are left alone. Each
        claim raises the channel's token by one. All claims are one transaction, taken in
        ``(device, channel)`` order so that hubs claiming overlapping sets never deadlock.

        :param holder: the claiming hub's unique name (one per process run: see
            :func:`camhub.leases.holder_name`).
        :returns: the leases granted, by channel.
        :raises InvalidChange: a channel is not in the catalog (``upsert_channels`` first).
        """
        if not holder:
            raise ValueError("a lease holder needs a name")
        length = _micros(period)
        insert = sqlite_insert if self._sqlite else pg_insert
        now = self._now_us
        granted = []
        with self._writing() as session:
            for device_id, channel in sorted(set(channels)):
                statement = insert(_LEASES).values(
                    device_id=device_id,
                    channel=channel,
                    holder=holder,
                    token=1,
                    acquired_at_us=now,
                    expires_at_us=now + length,
                )
                upsert = statement.on_conflict_do_update(
                    index_elements=[_LEASES.c.device_id, _LEASES.c.channel],
                    set_={
                        "holder": statement.excluded.holder,
                        "token": _LEASES.c.token + 1,
                        "acquired_at_us": statement.excluded.acquired_at_us,
                        "expires_at_us": statement.excluded.expires_at_us,
                    },
                    where=_LEASES.c.expires_at_us <= statement.excluded.acquired_at_us,
                ).returning(*_COLUMNS)
                row = session.execute(upsert).first()
                if row is not None:
                    granted.append(_lease(row))
        return granted

    def renew_leases(
        self, holder: str, leases: Iterable[LeaseRecord], period: timedelta
    ) -> list[LeaseRecord]:
        """Extend each of ``leases`` to ``period`` from now, if ``holder`` still holds it under the same
        token and it has not expired; returns the leases renewed (the others are lost).
        """
        return self._set_expiry(holder, leases, self._now_us + _micros(period))

    def release_leases(self, holder: str, leases: Iterable[LeaseRecord]) -> int:
        """End ``leases`` now (a clean stop: another hub may claim them at once); returns how many.

        The rows stay (with their tokens): a lease already lost is left as it is.
        """
        return len(self._set_expiry(holder, leases, self._now_us))

    def _set_expiry(self, holder: str, leases: Iterable[LeaseRecord], expires_us: Any) -> list[LeaseRecord]:
        """Move the expiry of those of ``leases`` that ``holder`` still holds, live, under their token."""
        wanted = sorted((lease.device_id, lease.channel, lease.token) for lease in leases)
        changed: list[LeaseRecord] = []
        with self._writing() as session:
            for chunk in _chunks(wanted):
                if not self._sqlite:
                    # Rows locked in (device, channel) order, as acquire_leases takes them: an
                    # UPDATE alone locks them in the order it finds them, and a hub claiming two
                    # of them in the other order would deadlock with it.
                    session.execute(
                        select(_LEASES.c.token)
                        .where(tuple_(_LEASES.c.device_id, _LEASES.c.channel, _LEASES.c.token).in_(chunk))
                        # Byte order, as Python sorts the claims: not the database's collation.
                        .order_by(_LEASES.c.device_id.collate("C"), _LEASES.c.channel)
                        .with_for_update()
                    )
                statement = (
                    update(_LEASES)
                    .where(
                        _LEASES.c.holder == holder,
                        _LEASES.c.expires_at_us > self._now_us,
                        tuple_(_LEASES.c.device_id, _LEASES.c.channel, _LEASES.c.token).in_(chunk),
                    )
                    .values(expires_at_us=expires_us)
                    .returning(*_COLUMNS)
                )
                changed.extend(_lease(row) for row in session.execute(statement))
        return sorted(changed, key=lambda lease: (lease.device_id, lease.channel))

    def leases(self, *, holder: str | None = None) -> list[LeaseRecord]:
        """Every channel's lease row, live or expired (of one ``holder`` when given), by channel.

        Whether a lease is live is ``expires_at > database_time()``.
        """
        query = select(*_COLUMNS).order_by(_LEASES.c.device_id, _LEASES.c.channel)
        if holder is not None:
            query = query.where(_LEASES.c.holder == holder)
        with self._reading() as session:
            return [_lease(row) for row in session.execute(query)]

    @staticmethod
    def check_fence(session: Session, device_id: str, channel: int, fence: tuple[str, int]) -> None:
        """Inside a write: refuse it unless ``fence`` (holder, token) is the channel's current lease.

        The lease row is locked until the transaction ends, so no claim slips in between.

        :raises LeaseLost: another hub took the channel over, or it was never leased so.
        """
        holder, token = fence
        row = session.execute(
            select(_LEASES.c.holder, _LEASES.c.token)
            .where(_LEASES.c.device_id == device_id, _LEASES.c.channel == channel)
            .with_for_update()
        ).first()
        if row is None or (row.holder, row.token) != (holder, token):
            now = "no lease" if row is None else f"lease {row.token} of {row.holder}"
            raise LeaseLost(
                f"{device_id}/{channel}: {holder} writes under lease {token}, but the channel has {now}"
            )

    # -- live hubs -------------------------------------------------------------------------------

    def announce_hub(self, holder: str) -> HubAnnouncement:
        """Announce that hub ``holder`` is alive until the announcement is closed or the process dies."""
        if self._sqlite:
            return _FileAnnouncement(_hubs_folder(self._url), holder)
        return _SessionAnnouncement(self._engine, holder)

    def live_hubs(self) -> frozenset[str]:
        """The holders of every announcement standing now."""
        if self._sqlite:
            return _FileAnnouncement.live(_hubs_folder(self._url))
        name = _PG_STAT_ACTIVITY.c.application_name
        query = select(func.substr(name, len(HUB_SESSION_PREFIX) + 1)).where(
            _PG_STAT_ACTIVITY.c.datname == func.current_database(),
            name.startswith(HUB_SESSION_PREFIX, autoescape=True),
        )
        with self._reading() as session:
            return frozenset(session.scalars(query))


def _hubs_folder(url: URL) -> Path:
    database = Path(url.database or "")
    return database.with_name(database.name + ".hubs")


class _SessionAnnouncement:
    """PostgreSQL: a session of its own, named after the hub, held open until closed."""

    def __init__(self, engine: Engine, holder: str) -> None:
        name = HUB_SESSION_PREFIX + holder
        if len(name) > _PG_NAME_LIMIT:
            raise ValueError(
                f"hub name {holder!r} is too long for PostgreSQL (at most {_PG_NAME_LIMIT - len(HUB_SESSION_PREFIX)})"
            )
        self._engine, self._name = engine, name
        self._connection: Connection | None = None
        self.check()

    def check(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(select(1))
                self._connection.rollback()
                return
            except SQLAlchemyError:
                self._drop()
        connection: Connection | None = None
        try:
            connection = self._engine.connect()
            connection.execute(select(func.set_config("application_name", self._name, False)))
            connection.commit()
        except SQLAlchemyError as exc:
            if connection is not None:
                connection.invalidate()
                connection.close()
            raise CatalogUnavailable(
                f"cannot announce the hub in the catalog at {masked(self._engine.url)}: {type(exc).__name__}"
            ) from exc
        self._connection = connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Never back into the pool: a pooled connection still named after the hub would keep
            # announcing it after the hub stopped.
            with contextlib.suppress(SQLAlchemyError):
                connection.invalidate()
            connection.close()

    def close(self) -> None:
        # Unnamed first: the backend's exit after the connection closes is asynchronous, and
        # until then pg_stat_activity would still show the hub to others.
        if self._connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._connection.execute(select(func.set_config("application_name", "", False)))
                self._connection.commit()
        self._drop()


class _FileAnnouncement:
    """SQLite (one host): an exclusive ``flock`` on ``<database>.hubs/<holder>``, held until closed."""

    def __init__(self, folder: Path, holder: str) -> None:
        if "/" in holder or holder in ("", ".", ".."):
            raise ValueError(f"hub name {holder!r} cannot name a file")
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / holder
        self._fd: int | None = None
        self.check()

    def check(self) -> None:
        if self._fd is not None and self._path.exists():
            return
        self.close()
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._path.unlink(missing_ok=True)
            os.close(fd)

    @staticmethod
    def live(folder: Path) -> frozenset[str]:
        if not folder.is_dir():
            return frozenset()
        alive = set()
        for path in folder.iterdir():
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                alive.add(path.name)  # its hub holds the lock: alive
            else:
                path.unlink(missing_ok=True)  # the hub died without closing: clear its file
            finally:
                os.close(fd)
        return frozenset(alive)
