"""The hub: records every channel of every configured device, and shows how each one is doing.

One process records many channels: PyAV I/O runs in one thread per channel (it releases the
GIL while it waits on sockets), asyncio does the control work (adapters, status, metrics). A
recorder asks its device's adapter for the stream address at each (re)connect, so a device
whose API is down counts as an outage like a dead stream, with a gap and its cause. Sealed
segments and gaps go into the catalog from the recorder threads. ``status.json`` in the data
folder is rewritten every few seconds for ``camhub status``; Prometheus metrics are served on
request. Stopping (SIGINT/SIGTERM) seals every open segment.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from camhub.adapter import DeviceAdapter, StreamProfile
from camhub.devices import ClientPool, open_adapter
from camhub.leases import FencedCallbacks
from camhub.log import get_logger
from camhub.model import DeviceConfig
from camhub.plugins import PluginHost
from camhub.province import ProvinceConfig
from camhub.recorder import (
    ChannelKey,
    ChannelRecorder,
    GapCause,
    RecorderState,
    SealedSegment,
    recover_partials,
)
from camhub.recorder.memory import limit_freed_memory

if TYPE_CHECKING:
    from camhub.catalog import Catalog
    from camhub.leases import Fence, LeaseKeeper, LeaseSettings
    from camhub.storage import Storage
    from camhub.uploader import Uploader

__all__ = ["Hub", "HubSettings", "read_status"]

STATUS_FILE = "status.json"


@attrs.frozen(kw_only=True)
class HubSettings:
    """How the hub records.

    :param data_dir: the hub's folder: spool, catalog (by default), status.
    :param segment_seconds: the segment grid.
    :param socket_timeout: seconds of silence before a stream counts as stalled.
    :param site: record only this unit and the units below it (a site hub, ``--site``).
    :param worker: ``(index, count)``: record only this worker's share of the channels.
    :param metrics_port: serve Prometheus metrics here (``None``: off).
    :param metrics_address: the address to serve metrics on.
    :param status_interval: seconds between rewrites of ``status.json``.
    :param lease: share the channels with other hubs through leases in the catalog (scale-out,
        :mod:`camhub.leases`) instead of the static ``worker`` split; each worker then has a
        spool of its own.
    :param upload: send sealed segments to the central store (``storage.central``) while recording.
    :param upload_retry_max: longest pause, in seconds, between retries of a failing central store.
    :param retention_interval: seconds between retention passes (:mod:`camhub.retention`;
        ``None``: off). Static workers other than the first leave it to the first (one spool).
    :param backfill_after: when a channel's gap closes, fill it this many seconds later from what
        the device kept on its own storage (:mod:`camhub.backfill`; ``None``: off). The delay lets
        the device finish writing the span.
    """

    data_dir: Path
    segment_seconds: float = 60.0
    socket_timeout: float = 5.0
    site: str | None = None
    worker: tuple[int, int] = (0, 1)
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    status_interval: float = 2.0
    lease: LeaseSettings | None = None
    upload: bool = True
    upload_retry_max: float = 60.0
    retention_interval: float | None = 600.0
    backfill_after: float | None = None

    @property
    def spool(self) -> Path:
        index, count = self.worker
        if self.lease is not None and count > 1:
            # A worker's channels move to other workers: its spool (and the partial segments a
            # restart recovers) must be its own.
            return self.data_dir / "spool" / f"worker-{index}"
        return self.data_dir / "spool"


#: A span before a recorder started that nothing accounts for (see ``_Sink.expect``) shorter than
#: this is not recorded as a gap.
_UNACCOUNTED_MIN = timedelta(seconds=1)


class _Sink:
    """Recorder callbacks into the catalog and the status board; called from recorder threads."""

    def __init__(self, catalog: Catalog, province_id: str, on_sealed: Callable[[Any], None]) -> None:
        self.catalog = catalog
        self.on_sealed = on_sealed
        self.province_id = province_id
        self._lock = threading.Lock()
        self._open_gaps: dict[ChannelKey, tuple[int, datetime]] = {}
        self.board: dict[ChannelKey, dict[str, Any]] = {}
        #: Called (from the recorder's thread) after a gap closed.
        self.on_gap_closed: Callable[[ChannelKey], None] | None = None
        # Per channel whose recorder started: when, until its first segment or gap (see expect()).
        self._starting: dict[ChannelKey, datetime] = {}
        self._log = get_logger(__name__)

    def expect(self, key: ChannelKey, at: datetime) -> None:
        """A recorder of ``key`` starts at ``at``. At its first segment or gap, the span since the
        channel's latest segment or gap in the catalog, when no recorder was running (a hub
        stopped, restarted or handed the channel over), becomes a gap of its own; gaps a stopped
        hub left open end at ``at`` (:meth:`Catalog.recording_starts`). Done then, in the recorder's
        thread, not here on the hub's loop."""
        self._starting[key] = at

    def _account(self, key: ChannelKey, until: datetime) -> None:
        from camhub.catalog import CatalogError

        started = self._starting.pop(key, None)
        if started is None:
            return
        try:
            since = self.catalog.recording_starts(key.device_id, key.channel, started)
            # Only time before this recorder started: its own start-up (connecting, waiting for
            # a keyframe) is not a span when no recorder ran.
            if since is None or started - since < _UNACCOUNTED_MIN:
                return
            gap_id = self.catalog.open_gap(
                key.device_id, key.channel, since, GapCause.OTHER, "not recorded: no recorder was running"
            )
            self.catalog.close_gap(gap_id, until, closed_by="recording started")
        except CatalogError as exc:  # the segment or gap at hand matters more: carry on with it
            self._log.warning("unaccounted_span_not_recorded", channel=str(key), error=str(exc))

    def _entry(self, key: ChannelKey) -> dict[str, Any]:
        return self.board.setdefault(
            key, {"state": "starting", "detail": "", "gap": None, "last_segment": None}
        )

    def segment_sealed(self, segment: SealedSegment, fence: Fence | None = None) -> None:
        """Catalogue a sealed segment; under a lease (``fence``), only while the lease is still ours."""
        from camhub.catalog import LeaseLost

        self._account(segment.key, segment.start)
        try:
            record = self.catalog.add_segment(**segment.catalog_fields(), lease=fence)
        except LeaseLost as exc:
            # Another hub records the channel now: the file stays in the spool, uncatalogued.
            self._log.warning("segment_fenced", path=str(segment.path), error=str(exc))
            return
        with self._lock:
            self._entry(segment.key)["last_segment"] = {
                "start": segment.start.isoformat(),
                "end": segment.end.isoformat(),
                "bytes": segment.bytes,
            }
        self.on_sealed(record)

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
        self._account(key, start)
        gap_id = self.catalog.open_gap(key.device_id, key.channel, start, cause, detail)
        with self._lock:
            self._open_gaps[key] = (gap_id, start)
            self._entry(key)["gap"] = {"start": start.isoformat(), "cause": cause.value, "detail": detail}

    def gap_closed(self, key: ChannelKey, end: datetime) -> None:
        with self._lock:
            gap = self._open_gaps.pop(key, None)
            self._entry(key)["gap"] = None
        if gap is not None:
            from camhub.catalog import InvalidChange

            gap_id, start = gap
            try:
                # A reconnect within the same microsecond still leaves a (tiny) gap: end after start.
                self.catalog.close_gap(
                    gap_id, max(end, start + timedelta(microseconds=1)), closed_by="reconnected"
                )
            except InvalidChange as exc:  # closed already by a hub that took the channel over
                self._log.info("gap_closed_elsewhere", channel=str(key), detail=str(exc))
                return
            if self.on_gap_closed is not None:
                self.on_gap_closed(key)

    def state_changed(self, key: ChannelKey, state: RecorderState, detail: str) -> None:
        with self._lock:
            entry = self._entry(key)
            entry["state"], entry["detail"] = state.value, detail
        self._log.info("channel_state", channel=str(key), state=state.value, detail=detail)


class Hub:
    """Records the province's (or one site's) channels until stopped."""

    def __init__(
        self, province: ProvinceConfig, host: PluginHost, catalog: Catalog, settings: HubSettings
    ) -> None:
        self.province = province
        self.host = host
        self.catalog = catalog
        self.settings = settings
        self.sink = _Sink(catalog, province.province.id, self._segment_sealed)
        #: Sends sealed segments to the central store while :meth:`run` runs (``settings.upload``).
        self.uploader: Uploader | None = None
        self.recorders: dict[ChannelKey, ChannelRecorder] = {}
        self._adapters: dict[str, DeviceAdapter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger(__name__)
        self._started = time.monotonic()
        self._last_bytes: dict[ChannelKey, tuple[float, int]] = {}
        #: Claims this hub's share of the channels (``settings.lease``) while :meth:`run` runs.
        self.leases: LeaseKeeper | None = None
        self._pool: ClientPool | None = None
        self._backfills: dict[str, asyncio.Task[None]] = {}  # device → its pending backfill
        self._backfilling = asyncio.Lock()
        if settings.backfill_after is not None:
            self.sink.on_gap_closed = self._backfill_soon
        #: The last retention pass (``RetentionReport.status()``), for ``status.json``.
        self.retention_status: dict[str, Any] | None = None
        self._paused: list[ChannelKey] = []  # recording paused by disk pressure

    # -- what to record -----------------------------------------------------------------------
    def devices(self) -> list[DeviceConfig]:
        """The devices this hub records: all, or those of its site and the units below it."""
        if self.settings.site is None:
            return list(self.province.devices)
        units = {unit.id for unit in self.province.subtree(self.settings.site)}
        return [d for d in self.province.devices if d.unit in units]

    def channels(self) -> list[tuple[DeviceConfig, int]]:
        """``(device, channel)`` pairs of this worker's share, in configuration order."""
        pairs = [(d, c.id) for d in self.devices() for c in d.effective_channels()]
        index, count = self.settings.worker
        if self.settings.lease is not None:
            return pairs  # every hub may claim any channel; its share is what it holds leases for
        return [pair for n, pair in enumerate(pairs) if n % count == index]

    # -- running ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Record until ``stop`` is set, then seal every open segment."""
        self._loop = asyncio.get_running_loop()
        limit_freed_memory()  # many channel threads in one process: see camhub.recorder.memory
        spool = self.settings.spool
        spool.mkdir(parents=True, exist_ok=True)
        recovered = await asyncio.to_thread(recover_partials, spool, self.sink)
        if recovered:
            self._log.info("recovered_partial_segments", count=len(recovered))
        self._start_uploader()
        self.host.notify_hub_started(self)
        metrics = self._serve_metrics()
        self._catalogue_devices()
        async with ClientPool() as pool:
            self._pool = pool
            if self.settings.lease is None:
                for device, channel in self.channels():
                    self._start_recorder(device, channel, pool)
            else:
                self._start_leases(stop)
            status = asyncio.create_task(self._write_status_forever())
            retention = asyncio.create_task(self._retain_forever())
            try:
                await stop.wait()
            finally:
                self.host.notify_hub_stopping(self)
                status.cancel()
                for task in list(self._backfills.values()):
                    task.cancel()
                await asyncio.gather(*self._backfills.values(), return_exceptions=True)
                retention.cancel()
                await asyncio.gather(retention, return_exceptions=True)
                if self.leases is not None:
                    await self.leases.close()  # recorders stopped first, then the leases released
                await asyncio.to_thread(self._stop_recorders)
                stopped = datetime.now(UTC)
                for key in self._paused:  # paused for disk pressure: the gap ends with the hub
                    self.sink.gap_closed(key, stopped)
                if self.uploader is not None:
                    await asyncio.to_thread(self.uploader.stop)
                self._write_status()
                for adapter in self._adapters.values():
                    await adapter.aclose()
                if metrics is not None:
                    metrics()

    def _backfill_soon(self, key: ChannelKey) -> None:
        """A gap of ``key`` closed (called from its recorder's thread): backfill its device soon."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_backfill, key.device_id)

    def _schedule_backfill(self, device_id: str) -> None:
        if device_id not in self._backfills:  # one pending run takes every gap closed meanwhile
            self._backfills[device_id] = asyncio.create_task(self._backfill(device_id))

    async def _backfill(self, device_id: str) -> None:
        """Fill the device's closed gaps of the last day from its storage; failures wait for the next."""
        from camhub.backfill import backfill_gaps

        assert self.settings.backfill_after is not None
        try:
            await asyncio.sleep(self.settings.backfill_after)
            async with self._backfilling:  # one device at a time: fetching is heavy for a site uplink
                self._backfills.pop(device_id, None)  # a gap closing from now on gets a new run
                report = await backfill_gaps(
                    self.province,
                    self.catalog,
                    self.host,
                    self.settings.data_dir / "backfill",
                    since=datetime.now(UTC) - timedelta(days=1),
                    devices=[device_id],
                    segment_seconds=self.settings.segment_seconds,
                    socket_timeout=self.settings.socket_timeout,
                    pool=self._pool,
                )
            self._log.info("backfilled", device=device_id, seconds=round(report.filled_seconds, 3))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed backfill must never stop the hub
            self._log.warning("backfill_failed", device=device_id, error=str(exc), type=type(exc).__name__)
        finally:
            if self._backfills.get(device_id) is asyncio.current_task():
                del self._backfills[device_id]

    def _start_uploader(self) -> None:
        """Upload the spool to the central store beside the recorders (store and forward)."""
        if not self.settings.upload:
            return
        from camhub.uploader import Uploader

        self.uploader = Uploader.from_config(
            self.province,
            self.host,
            self.catalog,
            self.settings.data_dir,
            share=self.settings.worker if self.settings.lease is None else (0, 1),
            spool=(self.settings.spool, self.settings.data_dir / "backfill"),
            retry_max=self.settings.upload_retry_max,
        )
        self.uploader.start()

    # -- retention (camhub.retention) -------------------------------------------------------------
    async def _retain_forever(self) -> None:
        """A retention pass every ``retention_interval``; recording pauses while the pass reports the
        spool degraded (only protected footage left and still short of space), and resumes after."""
        interval = self.settings.retention_interval
        if interval is None or (self.settings.lease is None and self.settings.worker[0] != 0):
            return
        from camhub.retention import Retention, RetentionPolicy
        from camhub.uploader import open_central_storage

        holder = self.settings.lease.holder if self.settings.lease is not None else None
        by = holder or f"hub:{os.uname().nodename}:{os.getpid()}"
        policy = RetentionPolicy.from_config(self.province)
        storage: Storage | None = None
        try:
            while True:
                if storage is None:  # a store that is down: local copies are looked after meanwhile
                    try:
                        storage = await asyncio.to_thread(
                            open_central_storage, self.province, self.host, self.settings.data_dir
                        )
                    except Exception as exc:  # noqa: BLE001 - tried again at the next pass
                        self._log.warning("retention.store_unavailable", error=str(exc))
                keeper = Retention(self.catalog, storage, self.settings.spool, policy, by=by)
                running = asyncio.ensure_future(asyncio.to_thread(keeper.run))
                try:
                    report = await asyncio.shield(running)
                except asyncio.CancelledError:
                    # The hub stops: let the pass finish (a deletion is recorded right after it is
                    # made) before the store and the catalog close under it.
                    await asyncio.wait([running])
                    raise
                except Exception as exc:  # noqa: BLE001 - one failed pass must not end retention
                    self._log.warning("retention.failed", error=str(exc), type=type(exc).__name__)
                else:
                    self.retention_status = report.status()
                    if report.pressure.degraded and not self._paused:
                        await self._pause_recording()
                    elif not report.pressure.degraded and self._paused:
                        self._resume_recording()
                await asyncio.sleep(interval)
        finally:
            if storage is not None:
                storage.close()

    async def _pause_recording(self) -> None:
        """Stop every recorder, each with an open gap of cause ``other`` ("disk full")."""
        if self.settings.lease is not None:  # a leased channel must be handed over, not paused
            self._log.warning("retention.cannot_pause", detail="recording under leases is not paused")
            return
        self._paused = list(self.recorders)
        await asyncio.to_thread(self.stop_recording(self._paused))
        now = datetime.now(UTC)
        for key in self._paused:
            self.sink.gap_opened(
                key, now, GapCause.OTHER, "disk full: recording paused to keep protected footage"
            )
        self._log.warning("recording_paused", channels=len(self._paused), cause="disk full")

    def _resume_recording(self) -> None:
        assert self._pool is not None
        paused, self._paused = self._paused, []
        now = datetime.now(UTC)
        for key in paused:
            self.sink.gap_closed(key, now)
            self._start_recorder(self.province.device(key.device_id), key.channel, self._pool)
        self._log.info("recording_resumed", channels=len(paused))

    def _segment_sealed(self, record: Any) -> None:
        self.host.notify_segment_sealed(record)
        if self.uploader is not None:
            self.uploader.wake()

    def _catalogue_devices(self) -> None:
        """Enter the recorded devices and channels in the catalog (gaps and segments refer to them)."""
        for device in self.devices():
            self.catalog.upsert_device(
                device.id,
                unit=str(device.unit),
                vendor=device.vendor,
                kind=device.kind,
                host=device.host,
                name=device.name or None,
            )
            self.catalog.upsert_channels(device.id, device.effective_channels())

    # -- scale-out (camhub.leases) ---------------------------------------------------------------
    def _start_leases(self, stop: asyncio.Event) -> None:
        from camhub.leases import LeaseKeeper

        assert self.settings.lease is not None
        keys = [ChannelKey(device.id, channel) for device, channel in self.channels()]
        self.leases = LeaseKeeper(self.catalog, self.settings.lease, keys, self)
        self.leases.start(stop)

    def start_recording(self, key: ChannelKey, fence: Fence) -> None:
        """Start recording a channel this hub now holds the lease ``fence`` for."""
        assert self._pool is not None
        self._start_recorder(self.province.device(key.device_id), key.channel, self._pool, fence)

    def stop_recording(self, keys: Sequence[ChannelKey]) -> Callable[[], None]:
        """Ask the recorders of ``keys`` to stop now; returns the (blocking) wait for them."""
        stopping = [recorder for key in keys if (recorder := self.recorders.pop(key, None)) is not None]
        for recorder in stopping:
            recorder.request_stop()

        def wait() -> None:
            for recorder in stopping:
                recorder.stop(self.settings.socket_timeout + 10)

        return wait

    def _start_recorder(
        self, device: DeviceConfig, channel: int, pool: ClientPool, fence: Fence | None = None
    ) -> None:
        adapter = self._adapters.get(device.id)
        if adapter is None:
            adapter = open_adapter(self.province, device.id, self.host, pool)
            self._adapters[device.id] = adapter
        key = ChannelKey(device.id, channel)
        self.sink.expect(key, datetime.now(UTC))
        resolver = _StreamResolver(adapter, channel, self._call)
        recorder = ChannelRecorder(
            key,
            resolver.url,
            f"{device.vendor}://{device.host}/channel/{channel}",
            self.settings.spool,
            self.sink if fence is None else FencedCallbacks(self.sink, fence),
            segment_seconds=self.settings.segment_seconds,
            socket_timeout=self.settings.socket_timeout,
            forget_url=resolver.forget,
        )
        self.recorders[key] = recorder
        recorder.start()

    def _call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run an adapter coroutine on the hub's loop from a recorder thread."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def _stop_recorders(self) -> None:
        for recorder in self.recorders.values():
            recorder.request_stop()  # ask all first, then wait: the recorders stop in parallel
        for recorder in self.recorders.values():
            recorder.stop(self.settings.socket_timeout + 10)

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per channel: state, detail, bitrate, last segment, open gap (for ``status.json``)."""
        now = time.monotonic()
        channels = []
        for key, recorder in self.recorders.items():
            entry = dict(self.sink.board.get(key, {}))
            last_time, last_bytes = self._last_bytes.get(key, (self._started, 0))
            elapsed = max(now - last_time, 1e-6)
            bitrate = (recorder.bytes_in - last_bytes) * 8 / elapsed
            self._last_bytes[key] = (now, recorder.bytes_in)
            channels.append(
                {
                    "device": key.device_id,
                    "channel": key.channel,
                    "state": recorder.state.value,
                    "detail": recorder.detail,
                    "bitrate": round(bitrate),
                    "segments": recorder.segments,
                    "last_segment": entry.get("last_segment"),
                    "gap": entry.get("gap"),
                }
            )
        return {
            "updated": datetime.now(UTC).isoformat(),
            "pid": os.getpid(),
            "worker": list(self.settings.worker),
            "site": self.settings.site,
            "holder": None if self.settings.lease is None else self.settings.lease.holder,
            "channels": channels,
            "upload": None if self.uploader is None else self.uploader.status().as_dict(),
            "retention": self.retention_status,
        }

    def _write_status(self) -> None:
        worker, count = self.settings.worker
        name = STATUS_FILE if count == 1 else f"status-{worker}.json"
        path = self.settings.data_dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    async def _write_status_forever(self) -> None:
        while True:
            self._write_status()
            await asyncio.sleep(self.settings.status_interval)

    def _serve_metrics(self) -> Callable[[], None] | None:
        if self.settings.metrics_port is None:
            return None
        from camhub.metrics import serve_metrics

        return serve_metrics(self, self.settings.metrics_address, self.settings.metrics_port)


class _StreamResolver:
    """The stream URL of one channel, asked of the adapter at connect time and cached."""

    def __init__(self, adapter: DeviceAdapter, channel: int, call: Callable[..., Any]) -> None:
        self.adapter = adapter
        self.channel = channel
        self.call = call
        self._url: str | None = None

    def url(self) -> str:
        """The URL with credentials; raises DeviceError (auth or unreachable) when it cannot."""
        if self._url is None:
            source = self.call(self.adapter.stream(self.channel, StreamProfile.MAIN))
            self._url = source.authenticated_url()
        return self._url

    def forget(self) -> None:
        self._url = None


def read_status(data_dir: Path) -> list[dict[str, Any]]:
    """The status documents the hub (or its workers) last wrote in ``data_dir``."""
    documents = []
    for path in sorted(data_dir.glob("status*.json")):
        try:
            documents.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return documents
