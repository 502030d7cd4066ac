"""The uploader (store and forward, issue #5 item 2).

Fast tests on the folder store, on SQLite and on a real PostgreSQL: order, the concurrency
bound, a digest the store refuses, retry with backoff, re-queue after a restart, the retention
lock, the backlog in the status and the metrics, the alerts. Then the hub uploading while it
records from a real RTSP server (``camhub run --site``, ``camhub status``, the metrics), and the
acceptance test: a real SeaweedFS stopped for two minutes while a hub records.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import peers
import pytest
import structlog
from gst_peer import GstRtspServer
from prometheus_client import CollectorRegistry, generate_latest
from seaweed_peer import SeaweedS3, require_weed
from test_catalog import add_camera, database_url  # noqa: F401 - the fixture, on SQLite and PostgreSQL
from test_hub import PASSWORD, camhub, peer, province_yaml, wait_for  # noqa: F401 - peer: the fixture

from camhub import PluginHost, load_config
from camhub.catalog import Catalog, CatalogUnavailable, SegmentRecord, SyncState
from camhub.hub import Hub, HubSettings
from camhub.metrics import HubCollector
from camhub.storage import FilesystemStorage, StorageUnavailable, StoredObject, segment_key
from camhub.uploader import SPOOL_ALERT, UNREACHABLE_ALERT, Uploader, open_central_storage
from provinces import BASE, REPO

postgres_server = peers.postgres_server
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
SEGMENT = timedelta(seconds=4)
PROVINCE = "thu"


class WatchedStorage(FilesystemStorage):
    """The real folder store, watched: it keeps the order and overlap of puts, and can be made to
    fail (as a store that is down does) or to take its time (as a slow one does)."""

    def __init__(self, root: Path, *, fail_first: int = 0, delay: float = 0.0) -> None:
        super().__init__(root)
        self.fail_first = fail_first
        self.delay = delay
        self.calls: list[tuple[float, str]] = []  # (monotonic time, key) of every put attempt
        self.active: dict[str, int] = {}
        self.most_at_once = 0
        self.same_channel_at_once = False
        self._guard = threading.Lock()

    def put(self, key: str, path: Path, sha256: str) -> StoredObject:
        channel = key.rsplit("/", 2)[0]
        with self._guard:
            self.calls.append((time.monotonic(), key))
            failing = len(self.calls) <= self.fail_first
            self.same_channel_at_once |= self.active.get(channel, 0) > 0
            self.active[channel] = self.active.get(channel, 0) + 1
            self.most_at_once = max(self.most_at_once, sum(self.active.values()))
        try:
            time.sleep(self.delay)
            if failing:
                raise StorageUnavailable("the store cannot be reached: ConnectionRefused", key=key)
            return super().put(key, path, sha256)
        finally:
            with self._guard:
                self.active[channel] -= 1


@pytest.fixture
def catalog(database_url: str) -> Iterator[Catalog]:  # noqa: F811 - the imported fixture
    with Catalog.open(database_url) as opened:
        add_camera(opened, "cam-1", channels=3)
        add_camera(opened, "cam-2", channels=3)
        yield opened


def record(
    catalog: Catalog, spool: Path, device: str, channel: int, index: int, size: int = 3000
) -> SegmentRecord:
    """Write a segment file into the spool and catalogue it, as the recorder does."""
    start = T0 + index * SEGMENT
    data = os.urandom(size)
    path = spool / device / str(channel) / f"{index:04d}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return catalog.add_segment(
        device_id=device,
        channel=channel,
        start=start,
        end=start + SEGMENT,
        size=size,
        sha256=hashlib.sha256(data).hexdigest(),
        video_codec="h264",
        local_path=path,
    )


def key_of(segment: SegmentRecord) -> str:
    return segment_key(PROVINCE, segment.device_id, segment.channel, segment.start, segment.end)


def uploader(catalog: Catalog, store: FilesystemStorage, **options: object) -> Uploader:
    return Uploader(catalog, store, province_id=PROVINCE, **options)  # type: ignore[arg-type]


def test_segments_go_up_oldest_first_and_are_synced_once_the_store_confirms(
    catalog: Catalog, tmp_path: Path
) -> None:
    spool, store = tmp_path / "spool", WatchedStorage(tmp_path / "central")
    # Catalogued out of order: the uploader goes by recording time, not by row.
    segments = [record(catalog, spool, "cam-1", ch, i) for i in (3, 1, 0, 2) for ch in (1, 2)]
    report = uploader(catalog, store, concurrency=2).run_once()
    assert report.uploaded == len(segments) and report.failed == 0
    for segment in segments:
        synced = catalog.segment(segment.id)
        assert synced is not None and synced.sync_state is SyncState.SYNCED
        assert synced.storage_key == key_of(segment)
        info = store.get(key_of(segment), tmp_path / "back.mp4")  # re-read, digest checked on the way
        assert info.sha256 == segment.sha256
        assert (tmp_path / "back.mp4").read_bytes() == Path(str(segment.local_path)).read_bytes()
    for channel in (1, 2):
        sent = [key for _, key in store.calls if f"/cam-1/{channel}/" in key]
        assert sent == sorted(sent) and len(sent) == 4, "a channel's segments go up in recording order"
    assert catalog.backlog().count == 0


def test_concurrency_is_bounded_and_one_channel_never_has_two_uploads_at_once(
    catalog: Catalog, tmp_path: Path
) -> None:
    spool, store = tmp_path / "spool", WatchedStorage(tmp_path / "central", delay=0.15)
    for device in ("cam-1", "cam-2"):
        for channel in (1, 2, 3):
            for index in range(3):
                record(catalog, spool, device, channel, index)
    assert uploader(catalog, store, concurrency=4).run_once().uploaded == 18
    assert store.most_at_once == 4, "four at once, never more"
    assert not store.same_channel_at_once


def test_a_digest_the_store_refuses_is_not_synced_and_does_not_block_the_channel(
    catalog: Catalog, tmp_path: Path
) -> None:
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    damaged, later = record(catalog, spool, "cam-1", 1, 0), record(catalog, spool, "cam-1", 1, 1)
    path = Path(str(damaged.local_path))
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # a bit flipped in the spool after the segment was sealed
    path.write_bytes(bytes(data))
    up = uploader(catalog, store)
    report = up.run_once()
    after = catalog.segment(damaged.id)
    assert after is not None and after.sync_state is SyncState.FAILED
    assert "SHA-256" in str(after.sync_error) and after.sync_failures == 1
    assert store.head(key_of(damaged)) is None, "the store kept nothing of the refused bytes"
    assert report.set_aside == 1 and up.status().set_aside == 1
    synced = catalog.segment(later.id)
    assert synced is not None and synced.sync_state is SyncState.SYNCED
    assert up.run_once().failed == 0, "set aside: not retried in a loop"


def test_a_failing_store_is_retried_with_capped_exponential_backoff(catalog: Catalog, tmp_path: Path) -> None:
    spool, store = tmp_path / "spool", WatchedStorage(tmp_path / "central", fail_first=4)
    first = record(catalog, spool, "cam-1", 1, 0)
    for index in (1, 2):
        record(catalog, spool, "cam-1", 1, index)
    up = uploader(catalog, store, concurrency=3, retry_min=0.1, retry_max=0.3)
    report = up.run_once()
    assert report.store_failed and report.uploaded == 0
    assert len(store.calls) == 1, "one channel: one upload at a time, and the pass stops at the failure"
    failed = catalog.segment(first.id)
    assert failed is not None and failed.sync_state is SyncState.FAILED
    assert "cannot be reached" in str(failed.sync_error)
    status = up.drain(timeout=30)
    assert status.backlog_count == 0 and status.reachable
    times = [t for t, _ in store.calls]
    pauses = [b - a for a, b in itertools.pairwise(times[:5])]
    # 0.1, 0.2, then capped at 0.3 (each with up to 20 % jitter below): never a tight loop.
    assert pauses[0] >= 0.08 and pauses[1] >= 0.16 and min(pauses[2:]) >= 0.24, pauses
    done = catalog.segment(first.id)
    assert done is not None and done.sync_state is SyncState.SYNCED and done.sync_failures == 4


def test_segments_left_uploading_by_a_crash_are_requeued(catalog: Catalog, tmp_path: Path) -> None:
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    interrupted = record(catalog, spool, "cam-1", 1, 0)
    catalog.mark_uploading(interrupted.id)  # the process died during the put
    mine, theirs = record(catalog, spool, "cam-2", 1, 0), record(catalog, spool, "cam-2", 2, 0)
    # Two workers share the spool; each re-queues and uploads only its own channels.
    shares = [uploader(catalog, store, share=(index, 2)) for index in (0, 1)]
    assert sum(up.run_once().uploaded for up in shares) == 3
    for segment in (interrupted, mine, theirs):
        after = catalog.segment(segment.id)
        assert after is not None and after.sync_state is SyncState.SYNCED


def test_backfilled_segments_go_up_and_another_hubs_backlog_does_not_hide_ours(
    catalog: Catalog, tmp_path: Path
) -> None:
    """An uploader sends from every folder it owns (the spool and the hub's backfill folder), and
    pages past older segments of another hub's spool (a dead hub's backlog) to find its own."""
    spool, backfill, other = tmp_path / "spool", tmp_path / "backfill", tmp_path / "other-hub"
    store = FilesystemStorage(tmp_path / "central")
    theirs = [record(catalog, other, "cam-1", 1, index) for index in range(40)]  # 5 pages' worth
    live = record(catalog, spool, "cam-2", 1, 40)
    backfilled = record(catalog, backfill, "cam-2", 2, 41)
    report = uploader(catalog, store, concurrency=1, spool=(spool, backfill)).run_once()
    assert report.uploaded == 2
    for segment in (live, backfilled):
        after = catalog.segment(segment.id)
        assert after is not None and after.sync_state is SyncState.SYNCED
    assert all(catalog.segment(s.id).sync_state is SyncState.PENDING for s in theirs)  # type: ignore[union-attr]


def test_a_segment_the_catalog_failed_to_mark_is_sent_again_once_it_answers(
    catalog: Catalog, tmp_path: Path
) -> None:
    """The store took the object but the catalog failed to record it (and to mark the failure):
    the segment, left 'uploading', is queued again when the catalog answers, not stuck."""
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    first, second = record(catalog, spool, "cam-1", 1, 0), record(catalog, spool, "cam-1", 1, 1)
    real_synced, real_failed = catalog.mark_synced, catalog.mark_failed
    outage = {"left": 1}

    def mark_synced(segment_id: int, storage_key: str, at: datetime | None = None) -> SegmentRecord:
        if outage["left"]:
            raise CatalogUnavailable("the catalog went away")
        return real_synced(segment_id, storage_key, at)

    def mark_failed(segment_id: int, error: str) -> SegmentRecord:
        if outage["left"]:
            outage["left"] = 0  # back after this call
            raise CatalogUnavailable("the catalog went away")
        return real_failed(segment_id, error)

    catalog.mark_synced, catalog.mark_failed = mark_synced, mark_failed  # type: ignore[method-assign]
    up = uploader(catalog, store, retry_min=0.01, retry_max=0.01)
    up.drain(timeout=20)
    for segment in (first, second):
        after = catalog.segment(segment.id)
        assert after is not None and after.sync_state is SyncState.SYNCED, after


def test_an_object_stored_and_locked_before_a_crash_is_accepted_once_read_back(
    catalog: Catalog, tmp_path: Path
) -> None:
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    done, clash = record(catalog, spool, "cam-1", 1, 0), record(catalog, spool, "cam-1", 2, 0)
    until = datetime.now(UTC) + timedelta(days=7)
    for segment, source in ((done, done), (clash, done)):  # the clash: other bytes under its key
        store.put(key_of(segment), Path(str(source.local_path)), source.sha256)
        store.lock(key_of(segment), until)
    report = uploader(catalog, store).run_once()
    assert report.uploaded == 1 and report.set_aside == 1
    synced, refused = catalog.segment(done.id), catalog.segment(clash.id)
    assert synced is not None and synced.sync_state is SyncState.SYNCED
    assert refused is not None and "different locked object" in str(refused.sync_error)


@pytest.mark.parametrize(("lock_days", "expected"), [(30, 30), (3, 7), (None, None)])
def test_each_object_is_locked_until_segment_end_plus_the_central_floor(
    catalog: Catalog, tmp_path: Path, lock_days: int | None, expected: int | None
) -> None:
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    segment = record(catalog, spool, "cam-1", 1, 0)
    segment = catalog.add_segment(  # a recent one: a lock into the past is not set
        device_id="cam-1",
        channel=2,
        start=datetime.now(UTC).replace(microsecond=0) - SEGMENT,
        end=datetime.now(UTC).replace(microsecond=0),
        size=segment.size,
        sha256=segment.sha256,
        video_codec="h264",
        local_path=segment.local_path,
    )
    uploader(catalog, store, lock_days=lock_days).run_once()
    info = store.head(key_of(segment))
    assert info is not None
    if expected is None:
        assert info.retain_until is None
    else:
        assert info.retain_until == segment.end + timedelta(days=expected)


def test_backlog_is_in_the_status_and_the_metrics(catalog: Catalog, tmp_path: Path, host: PluginHost) -> None:
    spool = tmp_path / "spool"
    segments = [record(catalog, spool, "cam-1", 1, i, size=1000 + i) for i in range(3)]
    store = WatchedStorage(tmp_path / "central", fail_first=1)
    up = uploader(catalog, store, spool_limit_bytes=10**9)
    status = up.status(refresh=True)
    assert (status.backlog_count, status.backlog_bytes, status.oldest) == (3, 3003, segments[0].start)
    assert status.oldest_age > 0 and status.alerts == ()
    up.run_once()  # the store fails once
    (tmp_path / "p.yaml").write_text(BASE, encoding="utf-8")
    hub = Hub(load_config(tmp_path / "p.yaml", host=host), host, catalog, HubSettings(data_dir=tmp_path))
    hub.uploader = up
    document = hub.status()["upload"]
    assert document["backlog"]["segments"] == 3 and document["backlog"]["bytes"] == 3003
    assert document["store"]["reachable"] is False and "ConnectionRefused" in document["store"]["last_error"]
    registry = CollectorRegistry()
    registry.register(HubCollector(hub))
    metrics = generate_latest(registry).decode()
    assert "camhub_upload_backlog_segments 3.0" in metrics
    assert "camhub_upload_backlog_bytes 3003.0" in metrics
    assert "camhub_central_store_reachable 0.0" in metrics
    assert "camhub_upload_failures_total 1.0" in metrics
    up.drain(timeout=30)
    metrics = generate_latest(registry).decode()
    assert "camhub_upload_backlog_segments 0.0" in metrics and "camhub_uploaded_segments_total 3.0" in metrics
    assert "camhub_upload_backlog_oldest_age_seconds 0.0" in metrics


def test_spool_alert_at_its_share_of_the_spool_limit(catalog: Catalog, tmp_path: Path) -> None:
    spool, store = tmp_path / "spool", FilesystemStorage(tmp_path / "central")
    record(catalog, spool, "cam-1", 1, 0, size=400)
    up = uploader(catalog, store, spool_limit_bytes=1000, spool_alert_fraction=0.5)
    with structlog.testing.capture_logs() as logs:
        assert up.status(refresh=True).alerts == ()  # 40 % of the limit
        record(catalog, spool, "cam-1", 1, 1, size=100)  # 50 %: the alert
        assert up.status(refresh=True).alerts == (SPOOL_ALERT,)
        up.status(refresh=True)  # logged once, when it starts
        up.run_once()
        assert up.status().alerts == ()
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["upload_backlog_alert"]
    assert warnings[0]["percent"] == 50.0 and warnings[0]["backlog_bytes"] == 500
    assert any(entry["event"] == "spool_backlog_cleared" for entry in logs)


def test_unreachable_alert_after_its_threshold(catalog: Catalog, tmp_path: Path) -> None:
    spool, store = tmp_path / "spool", WatchedStorage(tmp_path / "central", fail_first=2)
    record(catalog, spool, "cam-1", 1, 0)
    up = uploader(catalog, store, unreachable_alert_seconds=0.3, retry_min=0.01)
    with structlog.testing.capture_logs() as logs:
        up.run_once()
        assert up.status().alerts == (), "not at the first failure"
        time.sleep(0.35)
        up.run_once()  # fails again: 0.35 s unreachable
        status = up.status()
        assert status.alerts == (UNREACHABLE_ALERT,) and not status.reachable
        up.run_once()
        assert up.status().alerts == () and up.status().reachable
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["central_store_unreachable"]
    assert "ConnectionRefused" in warnings[0]["reason"]


def test_a_store_that_cannot_be_opened_is_retried(catalog: Catalog, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    segment = record(catalog, spool, "cam-1", 1, 0)
    opened: list[FilesystemStorage] = []

    def open_store() -> FilesystemStorage:
        if not opened:
            opened.append(FilesystemStorage(tmp_path / "central"))
            raise StorageUnavailable("the store cannot be reached: EndpointConnectionError")
        return opened[0]

    up = Uploader(catalog, open_store, province_id=PROVINCE, retry_min=0.01)
    assert up.run_once().store_failed
    assert up.drain(timeout=10).backlog_count == 0
    assert opened[0].head(key_of(segment)) is not None


# -- the hub uploading while it records ----------------------------------------------------------

EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _segments(catalog: Catalog, channel: int) -> list[SegmentRecord]:
    return catalog.segments("enc-1", channel, EPOCH, FAR)


def test_site_hub_pushes_to_the_central_store_under_the_province_keys(
    peer: GstRtspServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    """Topology (b): ``camhub run --site UNIT``; the keys carry no unit, so they are the ones a
    province hub pulling the same streams would write. Status and metrics show the backlog."""
    config, data = province_yaml(peer, tmp_path), tmp_path / "data"
    port = _free_port()
    hub = camhub(
        "run", str(config), "--site", "xa-a", "--data-dir", str(data), "--segment-seconds", "2",
        "--metrics-port", str(port),
    )  # fmt: skip
    try:
        wait_for(lambda: len(list((data / "central").rglob("*.mp4"))) >= 6, 40)
        wait_for(lambda: "Central store:" in _status(config, data), 10)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert (
            "camhub_upload_backlog_segments " in metrics and "camhub_central_store_reachable 1.0" in metrics
        )
    finally:
        hub.send_signal(signal.SIGTERM)
        _, err = hub.communicate(timeout=60)
    assert hub.returncode == 0, err
    central = FilesystemStorage(data / "central")
    with Catalog.open(str(data / "catalog.db")) as catalog:
        synced = [s for ch in (1, 2, 3) for s in _segments(catalog, ch) if s.sync_state is SyncState.SYNCED]
        assert len(synced) >= 6
        for segment in synced:
            assert segment.storage_key == segment_key(
                "thu", "enc-1", segment.channel, segment.start, segment.end
            )
            info = central.head(str(segment.storage_key))
            assert info is not None and info.sha256 == segment.sha256
            assert info.retain_until == segment.end + timedelta(days=30)  # retention.central_days


def _status(config: Path, data: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "camhub", "status", str(config), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RestartableSeaweed(SeaweedS3):
    """SeaweedFS that can be stopped and started again on the same data and ports (an outage)."""

    def halt(self) -> None:
        assert self._proc is not None
        self._args = self._proc.args
        self._proc.send_signal(signal.SIGTERM)
        self._proc.wait(timeout=30)

    def resume(self) -> None:
        assert self._tmp is not None
        root = Path(self._tmp.name)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        with (root / "weed.log").open("ab") as log:
            self._proc = subprocess.Popen(
                self._args, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready()


OUTAGE = 120.0  # seconds: the two minutes


def test_central_store_stopped_for_two_minutes_while_recording(
    peer: GstRtspServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
    host: PluginHost,
) -> None:
    """Acceptance (issue #5): SeaweedFS stopped for 2 minutes while the hub records, then started
    again: every segment reaches it, digests verified by reading the objects back, nothing
    recorded during the outage is lost (contiguous segments, no gap), the backlog drains."""

    weed = require_weed()
    with RestartableSeaweed(weed) as store:
        store.client().create_bucket(Bucket="camhub-central", ObjectLockEnabledForBucket=True)
        (tmp_path / "s3-access").write_text(store.access_key, encoding="utf-8")
        (tmp_path / "s3-secret").write_text(store.secret_key, encoding="utf-8")
        config = province_yaml(peer, tmp_path)
        with config.open("a", encoding="utf-8") as f:
            f.write(
                f"""\
storage:
  central:
    backend: s3
    endpoint: {store.endpoint}
    bucket: camhub-central
    access_key: {{$file: s3-access}}
    secret_key: {{$file: s3-secret}}
  unreachable_alert_minutes: 0.25
retention: {{central_days: 7}}
"""
            )
        province = load_config(config, host=host)
        data = tmp_path / "data"
        data.mkdir()
        seen: list[dict[str, Any]] = []
        with Catalog.open(str(data / "catalog.db")) as catalog:
            hub = Hub(
                province,
                host,
                catalog,
                HubSettings(data_dir=data, segment_seconds=3, upload_retry_max=5, status_interval=1),
            )

            async def scenario() -> tuple[datetime, datetime]:
                stop = asyncio.Event()
                task = asyncio.create_task(hub.run(stop))
                await asyncio.sleep(12)
                await asyncio.to_thread(store.halt)
                down = datetime.now(UTC)
                while (datetime.now(UTC) - down).total_seconds() < OUTAGE:
                    await asyncio.sleep(2)
                    seen.append(hub.status()["upload"])
                await asyncio.to_thread(store.resume)
                up = datetime.now(UTC)
                for _ in range(120):  # the backlog drains while recording goes on
                    await asyncio.sleep(1)
                    if catalog.backlog().count <= 3:  # at most the segments being sealed and sent
                        break
                stop.set()
                await task
                return down, up

            down, up = asyncio.run(scenario())
            # What the hub sealed on stopping goes up through the library entry point.
            final = Uploader.from_config(province, host, catalog, data).drain(timeout=60)
            assert final.backlog_count == 0 and final.backlog_bytes == 0 and final.oldest is None

            # During the outage: the backlog grew, the store was unreachable, and it was alerted.
            assert max(s["backlog"]["segments"] for s in seen) >= 3 * (OUTAGE / 3 - 4)
            assert not seen[-1]["store"]["reachable"]
            assert "store_unreachable" in seen[-1]["alerts"]

            s3 = open_central_storage(province, host, data)
            for channel in (1, 2, 3):
                segments = _segments(catalog, channel)
                during = [s for s in segments if down <= s.start and s.end <= up]
                assert len(during) >= OUTAGE / 3 - 4, f"channel {channel} recorded through the outage"
                for before, after in itertools.pairwise(segments):
                    assert before.end == after.start, "contiguous: nothing lost"
                assert catalog.gaps("enc-1", channel, EPOCH, FAR) == [], "no gap"
                for segment in segments:
                    assert segment.sync_state is SyncState.SYNCED
                    key = segment_key("thu", "enc-1", channel, segment.start, segment.end)
                    assert segment.storage_key == key
                    info = s3.get(key, tmp_path / "back.mp4")  # SHA-256 checked while reading
                    assert info.sha256 == segment.sha256
                    assert hashlib.sha256((tmp_path / "back.mp4").read_bytes()).hexdigest() == segment.sha256
                    assert info.retain_until is not None
                    assert info.retain_until >= segment.end + timedelta(days=7) - timedelta(seconds=1)
            s3.close()
