"""Store and forward: sealed segments go from the local spool up to the central store, in order.

The uploader takes the segments the catalog lists as not yet synced, oldest first, and sends
each with its SHA-256 to a :class:`~camhub.storage.Storage`, which verifies the digest before it
keeps the bytes. Only then is the segment marked synced. Rules:

- **Order.** Oldest first; never two segments of one channel at once, so a channel's segments
  reach the store in the order they were recorded. Different channels go up in parallel, at
  most ``concurrency`` at a time (the blocking ``Storage.put`` runs in threads).
- **Failures.** A failed upload is marked ``failed`` with its reason and retried. A failure of
  the store (down, slow, refusing) pauses every upload with a capped exponential backoff
  (1 s, 2 s, 4 s … at most ``retry_max``, with jitter), so a dead store is never hammered. A
  failure of one segment that no retry can mend (its spool file is gone or no longer has its
  recorded SHA-256, its key belongs to another segment) sets it aside with an error log; the
  channel's later segments go on; it is tried again when the uploader next starts.
- **Recording is never held up.** Recorders only write the spool and the catalog; the uploader
  runs in its own threads and the spool keeps the footage while the store is away.
- **Restart.** Segments left ``uploading`` by a stopped or crashed process are queued again
  when an uploader starts (each process re-queues only its own share, see ``share``).
- **Retention lock.** Where the store offers it, every object is locked until the segment's
  end plus ``lock_days`` (the central retention, at least the 7 days of Article 6.2), so not
  even camhub's own retention can delete it inside the floor.
- **Backlog and alerts.** :meth:`Uploader.status` gives the backlog (segments, bytes, start of
  the oldest), the store's reachability and two alerts, each also logged as a WARNING when it
  starts: ``spool_backlog`` when the footage waiting fills ``spool_alert_fraction`` of the
  spool's limit, ``store_unreachable`` when every upload has failed for
  ``unreachable_alert_seconds``.

Keys are :func:`camhub.storage.segment_key` of the province, device, channel and times, never
the unit: a province hub that pulls streams centrally and a site hub (``camhub run --site``)
pushing to the same store write the same key for the same segment.

Other applications drive it as a library::

    with Catalog.open("camhub-data/catalog.db") as catalog:
        uploader = Uploader(catalog, FilesystemStorage("/mnt/central"), province_id="dong-nai")
        status = uploader.drain(timeout=600)  # upload everything now, retrying through failures
        print(status.backlog_count, "segments still waiting")
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from camhub.catalog import CatalogError, InvalidChange, NotInCatalog, SegmentRecord, SyncState
from camhub.log import get_logger
from camhub.model import MIN_CENTRAL_RETENTION_DAYS
from camhub.storage import (
    DigestMismatch,
    ObjectLocked,
    Storage,
    StorageError,
    StoredObject,
    segment_key,
    sha256_file,
)

if TYPE_CHECKING:
    from camhub.catalog import Catalog
    from camhub.plugins import PluginHost
    from camhub.province import ProvinceConfig

__all__ = [
    "SPOOL_ALERT",
    "UNREACHABLE_ALERT",
    "UploadReport",
    "UploadStatus",
    "Uploader",
    "open_central_storage",
]

_T = TypeVar("_T")
#: Pages of the upload queue looked through in one turn for segments of this uploader.
_PAGES = 50

#: Alerts :meth:`Uploader.status` can raise.
SPOOL_ALERT = "spool_backlog"
UNREACHABLE_ALERT = "store_unreachable"


def open_central_storage(province: ProvinceConfig, host: PluginHost, data_dir: Path) -> Storage:
    """The central store of the configuration (``storage.central``), built by its backend plugin.

    :raises StorageError: the store cannot be opened (e.g. an S3 bucket that cannot be reached).
    """
    config = province.storage.central
    return host.storage_backends[config.backend].factory(config, data_dir)


@attrs.frozen(kw_only=True)
class UploadStatus:
    """How the upload stands (for ``camhub status``, ``status.json`` and the metrics).

    :param backlog_count: segments not yet in the central store (every process's, whole catalog).
    :param backlog_bytes: their size.
    :param oldest: start of the oldest of them (UTC), ``None`` without a backlog.
    :param in_flight: uploads under way in this process.
    :param uploaded: segments this uploader sent since it was made.
    :param uploaded_bytes: their size.
    :param failures: failed attempts since it was made.
    :param set_aside: segments set aside until the next start (see the module documentation).
    :param reachable: ``False`` while every upload fails (the store is down or refusing).
    :param unreachable_since: when the current run of failures began (UTC).
    :param last_error: the reason of the latest failure.
    :param last_upload: when the latest segment was confirmed by the store (UTC).
    :param spool_limit_bytes: the spool's limit the backlog alert is measured against.
    :param alerts: the alerts in force: ``spool_backlog``, ``store_unreachable``.
    :param updated: when these figures were taken (UTC).
    """

    backlog_count: int = 0
    backlog_bytes: int = 0
    oldest: datetime | None = None
    in_flight: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    failures: int = 0
    set_aside: int = 0
    reachable: bool = True
    unreachable_since: datetime | None = None
    last_error: str | None = None
    last_upload: datetime | None = None
    spool_limit_bytes: int | None = None
    alerts: tuple[str, ...] = ()
    updated: datetime | None = None

    @property
    def oldest_age(self) -> float:
        """Seconds between the oldest waiting segment's start and ``updated`` (0 without backlog)."""
        if self.oldest is None or self.updated is None:
            return 0.0
        return max((self.updated - self.oldest).total_seconds(), 0.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601), as written into ``status.json``."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "backlog": {
                "segments": self.backlog_count,
                "bytes": self.backlog_bytes,
                "oldest": iso(self.oldest),
                "oldest_age_seconds": round(self.oldest_age, 1),
            },
            "store": {
                "reachable": self.reachable,
                "unreachable_since": iso(self.unreachable_since),
                "last_error": self.last_error,
                "last_upload": iso(self.last_upload),
            },
            "uploaded": {"segments": self.uploaded, "bytes": self.uploaded_bytes},
            "in_flight": self.in_flight,
            "failures": self.failures,
            "set_aside": self.set_aside,
            "spool_limit_bytes": self.spool_limit_bytes,
            "alerts": list(self.alerts),
        }


@attrs.define
class UploadReport:
    """What one pass (:meth:`Uploader.run_once`) or a drain did.

    :param uploaded: segments confirmed by the store and marked synced.
    :param uploaded_bytes: their size.
    :param failed: failed attempts (the segments stay queued).
    :param set_aside: segments set aside (no retry can mend them until the next start).
    :param store_failed: the pass stopped early because the store failed.
    """

    uploaded: int = 0
    uploaded_bytes: int = 0
    failed: int = 0
    set_aside: int = 0
    store_failed: bool = False


class _Unmendable(Exception):
    """A failure of one segment that no retry can mend."""


@attrs.frozen
class _Outcome:
    segment: SegmentRecord
    kind: str  # "uploaded", "store_failed", "set_aside", "skipped"
    reason: str = ""


class Uploader:
    """Sends the catalog's unsynced segments to a central store (see the module documentation).

    :param catalog: the catalog the segments are in.
    :param storage: the central store, or a function that opens it (called again after a
        failure, so a store that is down when the hub starts is simply retried).
    :param province_id: first part of every key.
    :param concurrency: uploads at the same time (at most one per channel).
    :param lock_days: lock every object until the segment's end plus this many days where the
        store offers retention locks (raised to the 7-day floor); ``None``: never lock.
    :param spool_limit_bytes: the spool's limit (``storage.spool_max_gb``); ``None``: no alert.
    :param spool_alert_fraction: alert when the backlog reaches this share of the limit.
    :param unreachable_alert_seconds: alert when every upload has failed for this long.
    :param retry_min: first pause after a store failure, in seconds.
    :param retry_max: longest pause between retries, in seconds.
    :param share: ``(index, count)``: upload only this process's share of the channels (the
        hub's workers share one spool; each uploads the channels whose hash falls to it).
    :param spool: the folders this uploader sends from (the spool, and the hub's ``backfill``
        folder); segments whose file is elsewhere belong to another machine or process and are
        left alone (``None``: every segment is this uploader's).
    :param poll_interval: seconds between looks at the catalog when nothing wakes the uploader.
    """

    def __init__(
        self,
        catalog: Catalog,
        storage: Storage | Callable[[], Storage],
        *,
        province_id: str,
        concurrency: int = 4,
        lock_days: int | None = MIN_CENTRAL_RETENTION_DAYS,
        spool_limit_bytes: int | None = None,
        spool_alert_fraction: float = 0.5,
        unreachable_alert_seconds: float = 600.0,
        retry_min: float = 1.0,
        retry_max: float = 60.0,
        share: tuple[int, int] = (0, 1),
        spool: Path | Sequence[Path] | None = None,
        poll_interval: float = 2.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0 <= share[0] < share[1]:
            raise ValueError(f"share {share} is not (index, count) with 0 <= index < count")
        self.catalog = catalog
        self.province_id = province_id
        self.concurrency = concurrency
        self.lock_days = None if lock_days is None else max(lock_days, MIN_CENTRAL_RETENTION_DAYS)
        self.spool_limit_bytes = spool_limit_bytes
        self.spool_alert_fraction = spool_alert_fraction
        self.unreachable_alert_seconds = unreachable_alert_seconds
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.share = share
        folders = () if spool is None else (spool,) if isinstance(spool, Path) else tuple(spool)
        self.spool = tuple(folder.resolve() for folder in folders) or None
        self.poll_interval = poll_interval
        if isinstance(storage, Storage):
            self._storage: Storage | None = storage
            self._open: Callable[[], Storage] | None = None
        else:
            self._storage, self._open = None, storage
        self._log = get_logger(__name__)
        self._lock = threading.Lock()  # guards everything below
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._requeued = False
        self._set_aside: set[int] = set()
        self._stuck: set[int] = set()  # left 'uploading' because the catalog failed: queue again
        self._in_flight: dict[tuple[str, int], int] = {}
        self._failure_run = 0
        self._retry_at = 0.0  # time.monotonic() before which no upload starts (serving)
        self._status = UploadStatus(spool_limit_bytes=spool_limit_bytes)
        self._status_taken = 0.0
        self._stop_deadline = 0.0

    @classmethod
    def from_config(
        cls, province: ProvinceConfig, host: PluginHost, catalog: Catalog, data_dir: Path, **options: Any
    ) -> Uploader:
        """An uploader to the configuration's central store, with its settings (``storage`` and
        ``retention``); ``options`` are passed on to the constructor and win over them."""
        settings = province.storage
        values: dict[str, Any] = {
            "province_id": province.province.id,
            "concurrency": settings.upload_concurrency,
            "lock_days": province.retention.central_days,
            "spool_limit_bytes": int(settings.spool_max_gb * 1024**3),  # as retention counts it
            "spool_alert_fraction": settings.spool_alert_percent / 100,
            "unreachable_alert_seconds": settings.unreachable_alert_minutes * 60,
            **options,
        }
        return cls(catalog, lambda: open_central_storage(province, host, data_dir), **values)

    # -- the library entry points -----------------------------------------------------------------
    def run_once(self) -> UploadReport:
        """Upload what waits now, ``concurrency`` at a time, in order; return what was done.

        Stops early (``store_failed``) at the first failure of the store: the rest waits for the
        next pass. It tries at once, whatever the backoff: callers that loop use :meth:`drain`.
        Not to be called while :meth:`start` has the uploader running.
        """
        if self._thread is not None:
            raise RuntimeError("the uploader is running (start()); run_once() is for driving it by hand")
        return self._loop(once=True)

    def drain(self, timeout: float | None = None) -> UploadStatus:
        """Upload until nothing more can go up, waiting out the backoff after store failures.

        Returns the status at the end; a backlog left there is segments set aside, or what
        ``timeout`` (seconds) did not leave time for.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = max(self._retry_at - time.monotonic(), 0.0)  # the backoff after a store failure
            if deadline is not None and time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
            report = self._loop(once=True)
            if not report.store_failed and report.uploaded == 0:
                break
        return self.status(refresh=True)

    def status(self, *, refresh: bool = False) -> UploadStatus:
        """The latest figures (taken by the uploader's thread; ``refresh`` takes them now)."""
        if refresh:
            self._take_status()
        with self._lock:
            return self._status

    # -- running beside the recorders -------------------------------------------------------------
    def start(self) -> None:
        """Upload in a background thread until :meth:`stop`; :meth:`wake` hurries it."""
        if self._thread is not None:
            raise RuntimeError("the uploader is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="camhub-uploader", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the catalog now (a segment was sealed). Safe from any thread."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Start no more uploads, give those under way ``timeout`` seconds, close the store.

        An upload still running then is left to its thread; its segment stays ``uploading`` and
        is queued again at the next start.
        """
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop_deadline = time.monotonic() + timeout
            self._stopping.set()
            self._wake.set()
            thread.join(timeout + 5)
        self.close()

    def close(self) -> None:
        """Close the store if this uploader opened it."""
        with self._lock:
            storage = self._storage if self._open is not None else None
            if storage is not None:
                self._storage = None
        if storage is not None:
            with contextlib.suppress(Exception):
                storage.close()

    def _serve(self) -> None:
        try:
            self._loop(once=False)
        except Exception:  # noqa: BLE001 - keep the hub recording; the error is logged
            self._log.exception("uploader_crashed")

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self, *, once: bool) -> UploadReport:
        """Dispatch uploads until idle (``once``) or stopped, ``concurrency`` threads at most."""
        report = UploadReport()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="camhub-upload")
        running: dict[Future[_Outcome], SegmentRecord] = {}
        halted = False  # once: the store failed in this pass, start nothing more
        try:
            while True:
                self._wake.clear()
                for future in [f for f in running if f.done()]:
                    segment = running.pop(future)
                    outcome = future.result()
                    with self._lock:
                        self._in_flight.pop((segment.device_id, segment.channel), None)
                    self._account(outcome, report)
                    halted = halted or (once and outcome.kind == "store_failed")
                stopping = not once and self._stopping.is_set()
                if stopping and (not running or time.monotonic() >= self._stop_deadline):
                    break
                started = 0
                ready = self._requeued or bool(self._guarded(self._requeue_interrupted))
                if ready and not stopping and not halted and (once or time.monotonic() >= self._retry_at):
                    for segment in self._guarded(self._next, self.concurrency - len(running)) or ():
                        future = pool.submit(self._send, segment)
                        future.add_done_callback(lambda _: self._wake.set())
                        running[future] = segment
                        started += 1
                if once and not running and (halted or started == 0):
                    break
                if not once and time.monotonic() - self._status_taken >= 1.0:
                    self._guarded(self._take_status)
                now = time.monotonic()
                pause = self.poll_interval
                for moment in (self._retry_at, self._stop_deadline if stopping else 0.0):
                    if not once and moment > now:  # wake for the end of the backoff or of the stop
                        pause = min(pause, moment - now)
                self._wake.wait(pause)
        finally:
            pool.shutdown(wait=once, cancel_futures=True)
        if once:
            self._take_status()
        return report

    def _guarded(self, work: Callable[..., _T], *args: Any) -> _T | None:
        """``work(*args)``; a catalog that is down is logged and tried again at the next turn."""
        try:
            return work(*args)
        except CatalogError as exc:
            self._log.warning("uploader_catalog_unavailable", error=str(exc))
            return None

    def _requeue_interrupted(self) -> bool:
        """Queue again this process's segments left ``uploading`` by a stop or a crash (once)."""
        if not self._requeued:
            for segment in self.catalog.uploading():
                if self._mine(segment):
                    with contextlib.suppress(InvalidChange):
                        self.catalog.mark_pending(segment.id)
                        self._log.info("upload_requeued", segment=segment.id, device=segment.device_id)
            self._requeued = True
        return True

    def _release_stuck(self) -> None:
        """Queue again the segments a failing catalog left ``uploading`` (see :meth:`_failed`)."""
        with self._lock:
            stuck = set(self._stuck)
        for segment_id in stuck:
            with contextlib.suppress(InvalidChange, NotInCatalog):  # synced or gone meanwhile
                self.catalog.mark_pending(segment_id)
            with self._lock:
                self._stuck.discard(segment_id)

    def _mine(self, segment: SegmentRecord) -> bool:
        index, count = self.share
        if count > 1 and zlib.crc32(f"{segment.device_id}/{segment.channel}".encode()) % count != index:
            return False
        if self.spool is None or segment.local_path is None:
            return True
        path = Path(segment.local_path).resolve()
        return any(path.is_relative_to(folder) for folder in self.spool)

    def _next(self, free: int) -> list[SegmentRecord]:
        """Up to ``free`` segments to send now: the oldest waiting one of each idle channel."""
        if free <= 0:
            return []
        self._release_stuck()
        with self._lock:
            busy = set(self._in_flight)
            limit = (self.concurrency * 8 + len(self._set_aside) + len(busy)) * self.share[1]
            set_aside = set(self._set_aside)
        chosen: list[SegmentRecord] = []
        # Page on past segments that are not ours (another hub's spool, a dead hub's backlog), so
        # that they never hide ours; at most _PAGES pages a turn.
        after: tuple[datetime, int] | None = None
        for _ in range(_PAGES):
            page = self.catalog.unsynced(limit=limit, after=after)
            for segment in page:
                channel = (segment.device_id, segment.channel)
                if segment.id in set_aside or channel in busy or not self._mine(segment):
                    continue
                busy.add(channel)  # later segments of this channel wait for this one
                if segment.sync_state is SyncState.UPLOADING:
                    continue  # another process is sending it
                chosen.append(segment)
                if len(chosen) == free:
                    break
            if len(chosen) == free or len(page) < limit:
                break
            after = (page[-1].start, page[-1].id)
        with self._lock:
            for segment in chosen:
                self._in_flight[(segment.device_id, segment.channel)] = segment.id
        return chosen

    # -- one upload (in a pool thread) ------------------------------------------------------------
    def _send(self, segment: SegmentRecord) -> _Outcome:
        try:
            return self._upload(segment)
        except Exception as exc:  # noqa: BLE001 - any other failure is retried like a store failure
            self._log.exception("upload_error", segment=segment.id, device=segment.device_id)
            return self._failed(segment, f"{type(exc).__name__}: {exc}")

    def _upload(self, segment: SegmentRecord) -> _Outcome:
        key = segment_key(self.province_id, segment.device_id, segment.channel, segment.start, segment.end)
        path = Path(segment.local_path) if segment.local_path else None
        owner = self.catalog.segment_by_storage_key(key)
        if owner is not None and owner.id != segment.id:
            return self._failed(segment, f"the key {key!r} already belongs to segment {owner.id}", final=True)
        if path is None or not path.is_file():
            return self._failed(segment, f"the spool file {str(path)!r} is missing", final=True)
        try:
            self.catalog.mark_uploading(segment.id)
        except InvalidChange:
            return _Outcome(segment, "skipped")  # another process took it meanwhile
        try:
            storage = self._store()
            try:
                stored = storage.put(key, path, segment.sha256)
            except ObjectLocked:
                stored = self._already_stored(storage, key, segment)
            if stored.sha256 != segment.sha256 or stored.size != segment.size:
                raise DigestMismatch(
                    f"the store reports SHA-256 {stored.sha256} and {stored.size} bytes, "
                    f"not {segment.sha256} and {segment.size}",
                    key=key,
                )
            self._lock_object(storage, stored, segment)
            self.catalog.mark_synced(segment.id, key)
        except DigestMismatch as exc:
            if sha256_file(path)[0] != segment.sha256:
                reason = f"the spool file {str(path)!r} no longer has its recorded SHA-256 ({exc})"
                return self._failed(segment, reason, final=True)
            return self._failed(segment, str(exc))  # damaged on the way: send it again
        except (_Unmendable, InvalidChange) as exc:
            return self._failed(segment, str(exc), final=True)
        except StorageError as exc:
            return self._failed(segment, str(exc))
        return _Outcome(segment, "uploaded")

    def _store(self) -> Storage:
        with self._lock:
            if self._storage is not None:
                return self._storage
            assert self._open is not None
        storage = self._open()  # outside the lock: it may take a while against a slow store
        with self._lock:
            if self._storage is None:
                self._storage = storage
            winner = self._storage
        if winner is not storage:
            storage.close()  # another thread opened one first
        return winner

    def _already_stored(self, storage: Storage, key: str, segment: SegmentRecord) -> StoredObject:
        """The put was refused because a locked object is under the key: an earlier upload of this
        segment that was not marked synced (a crash) is accepted once its bytes are read back and
        found to be this segment's; anything else is refused."""
        info = storage.head(key)
        if info is None or info.sha256 != segment.sha256 or info.size != segment.size:
            raise _Unmendable(f"a different locked object is already stored under {key!r}")
        digest = hashlib.sha256()
        with storage.open(key) as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
        if digest.hexdigest() != segment.sha256:
            raise _Unmendable(f"the locked object under {key!r} is damaged and cannot be replaced")
        return info

    def _lock_object(self, storage: Storage, stored: StoredObject, segment: SegmentRecord) -> None:
        if self.lock_days is None or not storage.capabilities.retention_lock:
            return
        until = segment.end + timedelta(days=self.lock_days)
        if until <= datetime.now(UTC) or (stored.retain_until is not None and stored.retain_until >= until):
            return
        storage.lock(stored.key, until)

    def _failed(self, segment: SegmentRecord, reason: str, *, final: bool = False) -> _Outcome:
        """Mark the segment failed; ``final``: no retry can mend it, set it aside until restart."""
        try:
            self.catalog.mark_failed(segment.id, reason)
        except CatalogError:
            with self._lock:  # it stays 'uploading' in the catalog: queued again once it answers
                self._stuck.add(segment.id)
        return _Outcome(segment, "set_aside" if final else "store_failed", reason)

    # -- bookkeeping ------------------------------------------------------------------------------
    def _account(self, outcome: _Outcome, report: UploadReport) -> None:
        segment, now = outcome.segment, datetime.now(UTC)
        with self._lock:
            status = self._status
            if outcome.kind == "uploaded":
                report.uploaded += 1
                report.uploaded_bytes += segment.size
                self._failure_run = 0
                self._retry_at = 0.0
                status = attrs.evolve(
                    status,
                    uploaded=status.uploaded + 1,
                    uploaded_bytes=status.uploaded_bytes + segment.size,
                    reachable=True,
                    unreachable_since=None,
                    last_upload=now,
                )
            elif outcome.kind == "store_failed":
                report.failed += 1
                report.store_failed = True
                self._failure_run += 1
                pause = min(self.retry_max, self.retry_min * 2 ** min(self._failure_run - 1, 30))
                self._retry_at = time.monotonic() + pause * random.uniform(0.8, 1.0)
                status = attrs.evolve(
                    status,
                    failures=status.failures + 1,
                    reachable=False,
                    unreachable_since=status.unreachable_since or now,
                    last_error=outcome.reason,
                )
            elif outcome.kind == "set_aside":
                report.failed += 1
                report.set_aside += 1
                self._set_aside.add(segment.id)
                status = attrs.evolve(
                    status,
                    failures=status.failures + 1,
                    set_aside=len(self._set_aside),
                    last_error=outcome.reason,
                )
            self._status = status
        if outcome.kind == "uploaded":
            self._log.debug("segment_uploaded", segment=segment.id, device=segment.device_id)
        elif outcome.kind == "store_failed":
            self._log.info(
                "upload_failed", segment=segment.id, device=segment.device_id, reason=outcome.reason
            )
        elif outcome.kind == "set_aside":
            self._log.error(
                "upload_set_aside", segment=segment.id, device=segment.device_id, reason=outcome.reason
            )

    def _take_status(self) -> None:
        """Read the backlog from the catalog, raise or clear the alerts (logged when they change)."""
        backlog = self.catalog.backlog()
        now = datetime.now(UTC)
        self._status_taken = time.monotonic()
        with self._lock:
            old = self._status
            alerts = []
            if (
                self.spool_limit_bytes is not None
                and backlog.size >= self.spool_alert_fraction * self.spool_limit_bytes
            ):
                alerts.append(SPOOL_ALERT)
            if (
                old.unreachable_since is not None
                and (now - old.unreachable_since).total_seconds() >= self.unreachable_alert_seconds
            ):
                alerts.append(UNREACHABLE_ALERT)
            self._status = new = attrs.evolve(
                old,
                backlog_count=backlog.count,
                backlog_bytes=backlog.size,
                oldest=backlog.oldest,
                in_flight=len(self._in_flight),
                alerts=tuple(alerts),
                updated=now,
            )
        self._log_alerts(old, new)

    def _log_alerts(self, old: UploadStatus, new: UploadStatus) -> None:
        for alert in _changed(new.alerts, old.alerts):
            if alert == SPOOL_ALERT:
                self._log.warning(
                    "upload_backlog_alert",
                    backlog_bytes=new.backlog_bytes,
                    backlog_segments=new.backlog_count,
                    spool_limit_bytes=new.spool_limit_bytes,
                    percent=round(100 * new.backlog_bytes / (new.spool_limit_bytes or 1), 1),
                )
            else:
                self._log.warning(
                    "central_store_unreachable",
                    since=new.unreachable_since.isoformat() if new.unreachable_since else None,
                    backlog_segments=new.backlog_count,
                    reason=new.last_error,
                )
        for alert in _changed(old.alerts, new.alerts):
            self._log.info(f"{alert}_cleared", backlog_segments=new.backlog_count)


def _changed(now: Iterable[str], before: Iterable[str]) -> list[str]:
    """The alerts in ``now`` that were not in ``before``."""
    seen = set(before)
    return [alert for alert in now if alert not in seen]
