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
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from camhub.adapter import DeviceAdapter, StreamProfile
from camhub.devices import ClientPool, open_adapter
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

if TYPE_CHECKING:
    from camhub.catalog import Catalog

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
    """

    data_dir: Path
    segment_seconds: float = 60.0
    socket_timeout: float = 5.0
    site: str | None = None
    worker: tuple[int, int] = (0, 1)
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    status_interval: float = 2.0

    @property
    def spool(self) -> Path:
        return self.data_dir / "spool"


class _Sink:
    """Recorder callbacks into the catalog and the status board; called from recorder threads."""

    def __init__(self, catalog: Catalog, province_id: str, on_sealed: Callable[[Any], None]) -> None:
        self.catalog = catalog
        self.on_sealed = on_sealed
        self.province_id = province_id
        self._lock = threading.Lock()
        self._open_gaps: dict[ChannelKey, tuple[int, datetime]] = {}
        self.board: dict[ChannelKey, dict[str, Any]] = {}
        self._log = get_logger(__name__)

    def _entry(self, key: ChannelKey) -> dict[str, Any]:
        return self.board.setdefault(
            key, {"state": "starting", "detail": "", "gap": None, "last_segment": None}
        )

    def segment_sealed(self, segment: SealedSegment) -> None:
        record = self.catalog.add_segment(
            device_id=segment.key.device_id,
            channel=segment.key.channel,
            start=segment.start,
            end=segment.end,
            duration=segment.duration,
            size=segment.bytes,
            sha256=segment.sha256,
            video_codec=segment.video_codec,
            audio_codec=segment.audio_codec,
            audio_source_codec=segment.audio_source_codec
            if segment.audio_source_codec != segment.audio_codec
            else None,
            container=segment.container,
            local_path=str(segment.path),
        )
        with self._lock:
            self._entry(segment.key)["last_segment"] = {
                "start": segment.start.isoformat(),
                "end": segment.end.isoformat(),
                "bytes": segment.bytes,
            }
        self.on_sealed(record)

    def gap_opened(self, key: ChannelKey, start: datetime, cause: GapCause, detail: str) -> None:
        gap_id = self.catalog.open_gap(key.device_id, key.channel, start, cause, detail)
        with self._lock:
            self._open_gaps[key] = (gap_id, start)
            self._entry(key)["gap"] = {"start": start.isoformat(), "cause": cause.value, "detail": detail}

    def gap_closed(self, key: ChannelKey, end: datetime) -> None:
        with self._lock:
            gap = self._open_gaps.pop(key, None)
            self._entry(key)["gap"] = None
        if gap is not None:
            gap_id, start = gap
            # A reconnect within the same microsecond still leaves a (tiny) gap: end after start.
            self.catalog.close_gap(
                gap_id, max(end, start + timedelta(microseconds=1)), closed_by="reconnected"
            )

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
        self.sink = _Sink(catalog, province.province.id, host.notify_segment_sealed)
        self.recorders: dict[ChannelKey, ChannelRecorder] = {}
        self._adapters: dict[str, DeviceAdapter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log = get_logger(__name__)
        self._started = time.monotonic()
        self._last_bytes: dict[ChannelKey, tuple[float, int]] = {}

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
        return [pair for n, pair in enumerate(pairs) if n % count == index]

    # -- running ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Record until ``stop`` is set, then seal every open segment."""
        self._loop = asyncio.get_running_loop()
        spool = self.settings.spool
        spool.mkdir(parents=True, exist_ok=True)
        recovered = await asyncio.to_thread(recover_partials, spool, self.sink)
        if recovered:
            self._log.info("recovered_partial_segments", count=len(recovered))
        self.host.notify_hub_started(self)
        metrics = self._serve_metrics()
        self._catalogue_devices()
        async with ClientPool() as pool:
            for device, channel in self.channels():
                self._start_recorder(device, channel, pool)
            status = asyncio.create_task(self._write_status_forever())
            try:
                await stop.wait()
            finally:
                self.host.notify_hub_stopping(self)
                status.cancel()
                await asyncio.to_thread(self._stop_recorders)
                self._write_status()
                for adapter in self._adapters.values():
                    await adapter.aclose()
                if metrics is not None:
                    metrics()

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

    def _start_recorder(self, device: DeviceConfig, channel: int, pool: ClientPool) -> None:
        adapter = self._adapters.get(device.id)
        if adapter is None:
            adapter = open_adapter(self.province, device.id, self.host, pool)
            self._adapters[device.id] = adapter
        key = ChannelKey(device.id, channel)
        resolver = _StreamResolver(adapter, channel, self._call)
        recorder = ChannelRecorder(
            key,
            resolver.url,
            f"{device.vendor}://{device.host}/channel/{channel}",
            self.settings.spool,
            self.sink,
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
            "channels": channels,
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
