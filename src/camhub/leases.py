"""Scale-out: several hubs share a province's channels through leases in the catalog.

Each hub (``camhub run --lease``) runs a :class:`LeaseKeeper`. It announces the hub in the catalog
(:meth:`~camhub.catalog.Catalog.announce_hub`), then every renewal interval renews the leases it
holds, claims free channels up to its fair share — the channels divided by the hubs alive — and
starts a recorder for each channel it gained. There is no coordinator: the catalog's atomic
claims (:meth:`~camhub.catalog.Catalog.acquire_leases`) are the only arbiter.

**Timing.** ``P`` is the lease period (default 30 s), ``R = P/3`` the renewal interval, ``G = P/4``
the guard. A lease is granted until ``database now + P``, the database's time of the request,
which is never earlier than the moment the hub sent it; the hub counts ``P - G`` on its own
monotonic clock from *before* sending, and at that deadline stops the channel's recorder unless a
renewal sent later succeeded. So, whatever the hubs' clocks say:

* the old holder's recorder is asked to stop by ``t_send + P - G``; a recorder writes no packet
  after it sees the request (it checks before each packet), so its last packet is read by then;
* another hub can claim the channel only once the database's clock passes ``t_db + P >= t_send + P``;
* which leaves ``G`` (7.5 s at the default, 1 s at ``P = 4 s``) for a packet being written, the
  lead of a segment's wall-clock stamps over the packet's arrival, and the hubs' clock offset
  (segment times are stamped by each hub's clock: keep hubs on NTP).

A hub that cannot reach the catalog retries every ``R/3`` and at its deadline stops recording;
a hub that was paused longer than ``G`` (a frozen VM, SIGSTOP) and wakes up still recording is
fenced: every segment it seals is written with its lease's ``(holder, token)``, and the catalog
refuses it once another hub claimed the channel (:class:`~camhub.catalog.LeaseLost`); the
catalog's refusal of overlapping segments is a second line. A killed hub's leases run out at most
``P`` after it died; the surviving hubs wake exactly when a dead hub's lease expires and claim it.

**Fairness without flapping.** A hub claims up to ``ceil(N / H)`` of the ``N`` channels (``H``
hubs alive), preferring channels by a hash of its name and the channel (so hubs starting together
rarely contend for the same channel); a channel free for a whole interval is claimed by any hub,
share or not (recording beats fairness). Only when no channel is free does the hub with the most
channels give some back — when it holds at least two more than the hub with the fewest, at most a
tenth of a share per interval, each recorder stopped (its segment sealed) before its lease is
released — and a released channel is not claimed back by the same hub for three intervals. A
starting hub waits one interval after announcing itself before its first claim, so that hubs
started together see each other.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from camhub.catalog import Catalog, CatalogError, HubAnnouncement, LeaseRecord
from camhub.log import get_logger
from camhub.recorder import ChannelKey, GapCause, RecorderCallbacks, RecorderState, SealedSegment

__all__ = [
    "Fence",
    "FenceableCallbacks",
    "FencedCallbacks",
    "LeaseKeeper",
    "LeaseSettings",
    "RecorderControl",
    "ShareDecision",
    "holder_name",
    "share_out",
]

#: ``(holder, token)``: the lease a recorder writes its segments under.
Fence = tuple[str, int]

#: Hubs with a name longer than this are cut (PostgreSQL keeps 63 characters of a session name).
_HUB_NAME_LIMIT = 32
#: A holder name is at most this long (PostgreSQL session names: 63 less ``camhub-hub ``).
_HOLDER_LIMIT = 52


def holder_name(hub: str | None = None) -> str:
    """A lease holder name unique to this process run: ``<hub>-<pid>-<random>``.

    :param hub: the hub's name (default: the host name); a restarted hub is a new holder, so its
        recorders' old leases can never be mistaken for the new ones.
    """
    base = (hub or socket.gethostname()).replace("/", "_")[:_HUB_NAME_LIMIT] or "hub"
    return f"{base}-{os.getpid()}-{secrets.token_hex(3)}"


@attrs.frozen(kw_only=True)
class LeaseSettings:
    """How a hub shares channels with other hubs (``camhub run --lease``).

    :param holder: this hub's unique lease holder name (:func:`holder_name`).
    :param period: seconds a lease lasts without renewal; a dead hub's channels move within it.
    """

    holder: str
    period: float = 30.0

    def __attrs_post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"the lease period must be positive, got {self.period}")
        if not 0 < len(self.holder) <= _HOLDER_LIMIT or "/" in self.holder:
            raise ValueError(
                f"a lease holder name has 1 to {_HOLDER_LIMIT} characters and no '/', got {self.holder!r}"
            )

    @property
    def interval(self) -> float:
        """Seconds between renewals (a third of the period)."""
        return self.period / 3

    @property
    def guard(self) -> float:
        """Seconds before a lease runs out at which the hub has stopped recording its channel."""
        return self.period / 4


class RecorderControl(Protocol):
    """What the keeper asks of the hub (called on the event loop; neither call may block)."""

    def start_recording(self, key: ChannelKey, fence: Fence) -> None:
        """Start recording ``key``, writing its segments under ``fence``."""

    def stop_recording(self, keys: Sequence[ChannelKey]) -> Callable[[], None]:
        """Ask the recorders of ``keys`` to stop now; return a blocking wait for them to finish."""


class FenceableCallbacks(RecorderCallbacks, Protocol):
    """Recorder callbacks whose ``segment_sealed`` can catalogue a segment under a lease."""

    def segment_sealed(self, segment: SealedSegment, fence: Fence | None = None) -> None: ...


class FencedCallbacks:
    """The callbacks of one recorder that records under a lease: its segments carry the fence.

    The fence belongs to the recorder, not to the channel: a recorder stopped too late writes
    under its own, old token, and the catalog refuses it once the channel has a newer one.
    """

    def __init__(self, callbacks: FenceableCallbacks, fence: Fence) -> None:
        self.callbacks = callbacks
        self.fence = fence

    def segment_sealed(self, segment: SealedSegment) -> None:
        self.callbacks.segment_sealed(segment, self.fence)

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
        self.callbacks.gap_opened(key, start, cause, detail)

    def gap_closed(self, key: ChannelKey, end: datetime) -> None:
        self.callbacks.gap_closed(key, end)

    def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None:
        self.callbacks.state_changed(key, state, detail)


@attrs.frozen
class ShareDecision:
    """What one hub does in one round: channels to claim and channels to give back."""

    claim: list[ChannelKey]
    shed: list[ChannelKey]


def _rank(holder: str, key: ChannelKey) -> bytes:
    return hashlib.blake2b(f"{holder}\0{key.device_id}\0{key.channel}".encode(), digest_size=8).digest()


def share_out(
    me: str,
    scope: Sequence[ChannelKey],
    owners: Mapping[ChannelKey, str],
    hubs: Iterable[str],
    *,
    orphans: Iterable[ChannelKey] = (),
    cooling: Iterable[ChannelKey] = (),
) -> ShareDecision:
    """The fair-share rule (pure; see the module documentation).

    :param me: this hub.
    :param scope: the channels the hubs share.
    :param owners: the holder of every live lease in ``scope``.
    :param hubs: the hubs alive (announced), with or without leases.
    :param orphans: free channels that were already free a whole interval ago.
    :param cooling: channels this hub gave back recently (not claimed again yet).
    """
    everyone = {me, *hubs, *owners.values()}
    counts = dict.fromkeys(everyone, 0)
    for owner in owners.values():
        counts[owner] += 1
    share = math.ceil(len(scope) / len(everyone))
    mine = counts[me]
    cold = set(cooling)
    free = [key for key in scope if key not in owners]
    claimable = sorted((key for key in free if key not in cold), key=lambda key: _rank(me, key))
    claim = claimable[: max(0, share - mine)]
    stray = set(orphans)
    claim += [key for key in claimable[len(claim) :] if key in stray]
    shed: list[ChannelKey] = []
    if not free:
        fewest = min(counts.values())
        top = min(everyone, key=lambda hub: (-counts[hub], hub))
        if top == me and mine - fewest >= 2:
            count = max(1, min((mine - fewest) // 2, math.ceil(share / 10)))
            held = sorted(
                (key for key, owner in owners.items() if owner == me), key=lambda key: _rank(me, key)
            )
            shed = held[-count:]
    return ShareDecision(claim=claim, shed=shed)


@attrs.frozen
class _Round:
    """What one round found (computed in a worker thread, applied on the loop)."""

    sent: float  # monotonic time before the first request
    renewed: list[LeaseRecord]
    lost: list[LeaseRecord]
    acquired: list[LeaseRecord]
    shed: list[LeaseRecord]
    free: frozenset[ChannelKey]
    wake_in: float | None  # seconds until a dead hub's lease runs out


def _key(lease: LeaseRecord) -> ChannelKey:
    return ChannelKey(lease.device_id, lease.channel)


class LeaseKeeper:
    """Claims, keeps and gives back this hub's share of ``channels``; starts and stops their recorders.

    :param catalog: the shared catalog (PostgreSQL for hubs on several machines).
    :param settings: holder name and lease period.
    :param channels: the channels the hubs share (every hub should be given the same ones).
    :param control: starts and stops recorders.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: LeaseSettings,
        channels: Sequence[ChannelKey],
        control: RecorderControl,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.channels = list(dict.fromkeys(channels))
        self.control = control
        #: The leases this hub records under, with the monotonic deadline of each.
        self.held: dict[ChannelKey, tuple[LeaseRecord, float]] = {}
        self._scope = frozenset(self.channels)
        self._announcement: HubAnnouncement | None = None
        self._free_since: dict[ChannelKey, float] = {}
        self._released: dict[ChannelKey, float] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self._round: asyncio.Task[_Round] | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = get_logger(__name__, holder=settings.holder)

    @property
    def holder(self) -> str:
        return self.settings.holder

    # -- the loop --------------------------------------------------------------------------------

    def start(self, stop: asyncio.Event) -> None:
        """Run :meth:`run` in a task of the running loop (:meth:`close` ends it)."""
        self._task = asyncio.create_task(self.run(stop))

    async def run(self, stop: asyncio.Event) -> None:
        """Keep this hub's share until ``stop`` is set (then call :meth:`close`)."""
        try:
            await asyncio.to_thread(self._announce)
        except CatalogError as exc:  # the rounds try again
            self._log.warning("lease_round_failed", error=str(exc), type=type(exc).__name__)
        next_round = (
            time.monotonic() + self.settings.interval
        )  # settle: let hubs started together see each other
        waiter = asyncio.create_task(stop.wait())
        try:
            await self._keep(stop, waiter, next_round)
        except Exception as exc:
            # Without this loop nothing stops the recorders before their leases run out: stop them now.
            self._log.error("lease_keeper_failed", error=str(exc), type=type(exc).__name__)
            self._drop(list(self.held), "the lease keeper failed")
            raise
        finally:
            waiter.cancel()

    async def _keep(self, stop: asyncio.Event, waiter: asyncio.Task[Any], next_round: float) -> None:
        interval = self.settings.interval
        while not stop.is_set():
            now = time.monotonic()
            self._expire(now)
            if self._round is None and now >= next_round:
                self._round = asyncio.create_task(asyncio.to_thread(self._run_round, *self._snapshot(now)))
            wake = min((deadline for _, deadline in self.held.values()), default=math.inf)
            if self._round is None:
                wake = min(wake, next_round)
            waits: set[asyncio.Future[Any]] = {waiter}
            if self._round is not None:
                waits.add(self._round)
            await asyncio.wait(waits, timeout=max(0.0, wake - now), return_when=asyncio.FIRST_COMPLETED)
            if self._round is not None and self._round.done():
                task, self._round = self._round, None
                try:
                    found = task.result()
                except Exception as exc:  # noqa: BLE001 - any failed round is retried; the deadline stands
                    self._log.warning("lease_round_failed", error=str(exc), type=type(exc).__name__)
                    next_round = time.monotonic() + interval / 3
                else:
                    self._apply(found)
                    next_round = found.sent + interval
                    if found.wake_in is not None:
                        next_round = min(next_round, time.monotonic() + found.wake_in)

    async def close(self) -> None:
        """Stop every recorder, then release their leases (others may claim them at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._round is not None:
            await asyncio.wait({self._round}, timeout=self.settings.interval)
            self._round = None
        leases = [lease for lease, _ in self.held.values()]
        await asyncio.to_thread(self.control.stop_recording(list(self.held)))
        self.held.clear()
        if self._pending:
            await asyncio.wait(self._pending)
        try:
            if leases:
                await asyncio.to_thread(self.catalog.release_leases, self.holder, leases)
        except CatalogError as exc:
            self._log.warning("lease_release_failed", error=str(exc))
        if self._announcement is not None:
            await asyncio.to_thread(self._announcement.close)
            self._announcement = None

    # -- one round (in a worker thread) ------------------------------------------------------------

    def _snapshot(self, now: float) -> tuple[float, list[LeaseRecord], list[ChannelKey], list[ChannelKey]]:
        """A round's inputs, taken on the loop: held leases, orphaned and cooling channels."""
        interval = self.settings.interval
        orphans = [key for key, since in self._free_since.items() if now - since >= interval]
        cooling = [key for key, at in self._released.items() if now - at < 3 * interval]
        return now, [lease for lease, _ in self.held.values()], orphans, cooling

    def _run_round(
        self, sent: float, known: list[LeaseRecord], orphans: list[ChannelKey], cooling: list[ChannelKey]
    ) -> _Round:
        catalog, holder = self.catalog, self.holder
        period = timedelta(seconds=self.settings.period)
        self._announce()
        renewed = catalog.renew_leases(holder, known, period) if known else []
        kept = {(lease.device_id, lease.channel, lease.token) for lease in renewed}
        lost = [lease for lease in known if (lease.device_id, lease.channel, lease.token) not in kept]
        now = catalog.database_time()
        hubs = catalog.live_hubs()
        live = {_key(lease): lease for lease in catalog.leases() if lease.expires_at > now}
        owners = {key: lease.holder for key, lease in live.items() if key in self._scope}
        free = frozenset(key for key in self.channels if key not in owners)
        decision = share_out(holder, self.channels, owners, hubs, orphans=orphans, cooling=cooling)
        claim = [(key.device_id, key.channel) for key in decision.claim]
        acquired = catalog.acquire_leases(holder, claim, period) if claim else []
        dead = [
            (lease.expires_at - now).total_seconds()
            for key, lease in live.items()
            if key in self._scope and lease.holder not in hubs
        ]
        return _Round(
            sent=sent,
            renewed=renewed,
            lost=lost,
            acquired=acquired,
            shed=[live[key] for key in decision.shed],
            free=free,
            wake_in=min(dead) + 0.05 if dead else None,
        )

    def _announce(self) -> None:
        if self._announcement is None:
            self._announcement = self.catalog.announce_hub(self.holder)
        else:
            self._announcement.check()

    # -- applying it (on the loop) ---------------------------------------------------------------

    def _apply(self, found: _Round) -> None:
        deadline = found.sent + self.settings.period - self.settings.guard
        now = time.monotonic()
        for key in list(self._free_since):
            if key not in found.free:
                del self._free_since[key]
        for key in found.free:
            self._free_since.setdefault(key, now)
        for key, at in list(self._released.items()):
            if now - at >= 3 * self.settings.interval:
                del self._released[key]
        for lease in found.renewed:
            held = self.held.get(_key(lease))
            if held is not None and held[0].token == lease.token:
                self.held[_key(lease)] = (lease, deadline)
        self._drop([_key(lease) for lease in found.lost if self._holds(lease)], "lost")
        for lease in found.acquired:
            if deadline <= now:
                continue  # the round took too long: the lease runs out unused
            key = _key(lease)
            self._free_since.pop(key, None)
            try:
                self.control.start_recording(key, (self.holder, lease.token))
            except Exception as exc:  # noqa: BLE001 - one channel must not stop the others
                self._log.error("recorder_not_started", channel=str(key), error=str(exc))
                continue  # not renewed: the lease runs out and another hub may try
            self.held[key] = (lease, deadline)
            self._log.info("lease_acquired", channel=str(key), token=lease.token)
        shed = [lease for lease in found.shed if self._holds(lease)]
        if shed:
            self._spawn(self._give_back(shed))

    def _holds(self, lease: LeaseRecord) -> bool:
        held = self.held.get(_key(lease))
        return held is not None and held[0].token == lease.token

    def _expire(self, now: float) -> None:
        due = [key for key, (_, deadline) in self.held.items() if deadline <= now]
        self._drop(due, "not renewed in time")

    def _drop(self, keys: Sequence[ChannelKey], why: str) -> None:
        """Stop recording ``keys`` at once (their leases are lost or about to run out)."""
        if not keys:
            return
        for key in keys:
            self.held.pop(key, None)
            self._log.warning("lease_lost", channel=str(key), reason=why)
        self._spawn(asyncio.to_thread(self.control.stop_recording(keys)))

    async def _give_back(self, leases: Sequence[LeaseRecord]) -> None:
        """Rebalancing: stop the recorders (segments sealed), then release the leases."""
        keys = [_key(lease) for lease in leases]
        for key in keys:
            self.held.pop(key, None)
            self._released[key] = time.monotonic()
            self._log.info("lease_given_back", channel=str(key))
        await asyncio.to_thread(self.control.stop_recording(keys))
        try:
            await asyncio.to_thread(self.catalog.release_leases, self.holder, leases)
        except CatalogError as exc:  # the leases run out by themselves
            self._log.warning("lease_release_failed", error=str(exc))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
