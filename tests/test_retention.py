"""Retention on SQLite and a real PostgreSQL, with real spool files and a real central store (a
folder, and SeaweedFS with object lock): nothing protected is ever deleted, everything past its
policy is, and every deletion is in the audit."""

from __future__ import annotations

import hashlib
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import peers
import pytest
import structlog
import test_catalog
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, make_url, text

from camhub.catalog import (
    Catalog,
    DeletionRecord,
    HoldKind,
    HoldRecord,
    InvalidChange,
    NotInCatalog,
    SegmentRecord,
    StorageTier,
    SyncState,
)
from camhub.cli import main
from camhub.model import Channel, DeviceKind
from camhub.retention import FLOOR, Retention, RetentionPolicy, protection
from camhub.storage import FilesystemStorage, segment_key
from provinces import BASE

postgres_server = peers.postgres_server
database_url = test_catalog.database_url  # SQLite, and a fresh database on a real PostgreSQL

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
DEVICE = "cam-1"
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # the test province's time zone
NO_PRESSURE = {"spool_max_bytes": 10**15, "spool_min_free_bytes": 0}


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The CLI tests point structlog at pytest's captured stderr, closed after them."""
    yield
    structlog.reset_defaults()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class Site:
    """A catalog with one camera of two channels, its spool and a folder as central store."""

    catalog: Catalog
    store: FilesystemStorage
    spool: Path
    clock: Clock
    url: str

    def segment(
        self, start: datetime, *, channel: int = 1, synced: bool = True, size: int = 1000
    ) -> SegmentRecord:
        """A real spool file catalogued; uploaded to the store and marked synced when ``synced``."""
        end = start + MINUTE
        path = self.spool / DEVICE / str(channel) / f"{start:%Y%m%dT%H%M%S}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(start.isoformat().encode().ljust(size, b"."))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        record = self.catalog.add_segment(
            device_id=DEVICE,
            channel=channel,
            start=start,
            end=end,
            size=size,
            sha256=digest,
            local_path=str(path),
            video_codec="h264",
        )
        if synced:
            key = segment_key("thu", DEVICE, channel, start, end)
            self.store.put(key, path, digest)
            record = self.catalog.mark_synced(record.id, key)
        return record

    def retention(self, **policy: int) -> Retention:
        values = {"central_days": 7, "spool_days": 1, **NO_PRESSURE, **policy}
        return Retention(
            self.catalog, self.store, self.spool, RetentionPolicy(**values), by="hub:test", clock=self.clock
        )

    def reset(self) -> None:
        """Forget every segment, hold and deletion, and every file (between hypothesis examples)."""
        engine = create_engine(make_url(self.url) if "://" in self.url else make_url(f"sqlite:///{self.url}"))
        with engine.begin() as connection:
            for table in ("deletions", "holds", "segments"):
                connection.execute(text(f"DELETE FROM {table}"))
        engine.dispose()
        for folder in (self.spool, self.store.root):
            for path in sorted(folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    clock = Clock(NOW)
    with Catalog.open(database_url, clock=clock) as catalog:
        catalog.upsert_device(
            DEVICE, unit="xa-b", vendor="hikvision", kind=DeviceKind.CAMERA, host="127.0.0.1"
        )
        catalog.upsert_channels(DEVICE, [Channel(id=1), Channel(id=2)])
        spool = tmp_path / "spool"
        spool.mkdir()
        yield Site(catalog, FilesystemStorage(tmp_path / "central"), spool, clock, database_url)


# -- holds and the audit in the catalog --------------------------------------------------------------


def test_holds_need_a_reason_and_release_once(site: Site) -> None:
    catalog = site.catalog
    span = NOW - DAY, NOW
    for reason in ("", "   "):
        with pytest.raises(ValueError, match="needs a reason"):
            catalog.add_hold(DEVICE, 1, *span, kind=HoldKind.MANUAL, reason=reason, by="an")
    with pytest.raises(NotInCatalog, match="cam-9"):
        catalog.add_hold("cam-9", 1, *span, kind=HoldKind.MANUAL, reason="x", by="an")
    incident = catalog.add_hold(DEVICE, None, *span, kind=HoldKind.INCIDENT, reason="incident 12", by="an")
    export = catalog.add_hold(DEVICE, 2, NOW - HOUR, NOW, kind=HoldKind.EXPORT, reason="export 3", by="binh")
    assert incident.active and incident.channel is None and incident.created_at == NOW
    assert [h.id for h in catalog.holds(device_id=DEVICE, channel=1)] == [incident.id]
    assert [h.id for h in catalog.holds(channel=2)] == [incident.id, export.id]
    assert catalog.holds(start=NOW - 3 * DAY, end=NOW - 2 * DAY) == []
    released = catalog.release_hold(incident.id, by="chi")
    assert not released.active and released.released_by == "chi"
    with pytest.raises(InvalidChange, match="already released by chi"):
        catalog.release_hold(incident.id, by="chi")
    assert [h.id for h in catalog.holds()] == [export.id]
    assert [h.id for h in catalog.holds(active_only=False)] == [incident.id, export.id]
    assert catalog.hold(incident.id) == released


def test_a_hold_placed_while_a_copy_is_deleted_is_never_missed(site: Site) -> None:
    """A new hold on the device waits for a deletion under way, which a recorder's writes do not."""
    deleting, placed_first = site.segment(NOW - 10 * DAY), site.segment(NOW - 10 * DAY + MINUTE)
    assert deleting.local_path is not None and placed_first.local_path is not None

    def keep(segment: SegmentRecord, holds: list[HoldRecord]) -> str | None:
        return protection(segment, StorageTier.LOCAL, holds, now=NOW, keep_for=timedelta(0))

    started, proceed = threading.Event(), threading.Event()

    def remove(location: str) -> None:
        started.set()
        assert proceed.wait(10)
        Path(location).unlink()

    def place_hold() -> HoldRecord:
        assert started.wait(10)
        return site.catalog.add_hold(
            DEVICE, 1, deleting.start, deleting.end, kind=HoldKind.INCIDENT, reason="incident 7", by="an"
        )

    with ThreadPoolExecutor(3) as pool:
        deletion = pool.submit(
            site.catalog.delete_copy,
            deleting.id,
            StorageTier.LOCAL,
            keep=keep,
            remove=remove,
            rule="r",
            by="b",
        )
        hold = pool.submit(place_hold)
        assert started.wait(10)
        # Recording goes on meanwhile: a deletion (a central one may take a store's timeout)
        # never holds up a recorder's catalog writes.
        assert pool.submit(site.segment, NOW - HOUR, synced=False).result(10).sync_state is SyncState.PENDING
        assert pool.submit(site.catalog.record_state, DEVICE, "online").result(10).state == "online"
        time.sleep(0.5)
        assert not hold.done()  # the hold waits for the deletion under way
        proceed.set()
        record = deletion.result(10)
        placed = hold.result(10)
    assert isinstance(record, DeletionRecord) and record.deleted_at <= placed.created_at
    assert not Path(deleting.local_path).exists()
    # A hold placed before the deletion's transaction is seen by its check: nothing is removed.
    site.catalog.add_hold(
        DEVICE, 1, placed_first.start, placed_first.end, kind=HoldKind.EXPORT, reason="e", by="an"
    )
    outcome = site.catalog.delete_copy(
        placed_first.id, StorageTier.LOCAL, keep=keep, remove=remove, rule="r", by="b"
    )
    assert isinstance(outcome, str) and outcome.startswith("held")
    assert Path(placed_first.local_path).exists()
    assert site.catalog.segment(placed_first.id) == placed_first


def test_the_row_goes_when_no_copy_is_left_and_the_audit_keeps_it(site: Site) -> None:
    segment = site.segment(NOW - 10 * DAY)
    assert segment.local_path is not None and segment.storage_key is not None
    with pytest.raises(InvalidChange, match="no local copy"):
        site.catalog.record_deletion(segment.id, StorageTier.LOCAL, location="elsewhere", rule="r", by="b")
    site.catalog.record_deletion(segment.id, StorageTier.LOCAL, location=segment.local_path, rule="r", by="b")
    left = site.catalog.segment(segment.id)
    assert left is not None and left.local_path is None
    site.catalog.record_deletion(
        segment.id, StorageTier.CENTRAL, location=segment.storage_key, rule="central_days=7", by="b"
    )
    assert site.catalog.segment(segment.id) is None
    audit = site.catalog.deletions(device_id=DEVICE, channel=1)
    assert [(d.tier, d.location, d.sha256, d.size) for d in audit] == [
        (StorageTier.LOCAL, segment.local_path, segment.sha256, segment.size),
        (StorageTier.CENTRAL, segment.storage_key, segment.sha256, segment.size),
    ]
    assert site.catalog.deletions(start=NOW - DAY, end=NOW) == []
    assert len(site.catalog.deletions(deleted_since=NOW, deleted_before=NOW + MINUTE)) == 2


def test_the_central_floor_is_not_configurable_away() -> None:
    with pytest.raises(ValueError, match="at least 7 days"):
        RetentionPolicy(central_days=6)
    assert RetentionPolicy(central_days=7).keep_for(StorageTier.CENTRAL) == FLOOR


# -- the property: nothing protected goes, everything unprotected past its policy does ---------------

# Ages in whole days plus a few hours, so that holds, segments and policies often meet at edges.
_ages = st.tuples(st.integers(0, 14), st.integers(0, 3)).map(lambda age: age[0] * 24 + age[1])
_segments = st.lists(
    st.tuples(
        st.integers(1, 2),  # channel
        _ages,  # age of its start in hours
        st.sampled_from(["synced", "synced", "synced", "pending", "failed", "uploading", "requeued"]),
    ),
    min_size=1,
    max_size=10,
)
_holds = st.lists(
    st.tuples(
        st.sampled_from([None, 1, 2]),  # channel
        _ages,  # start, hours ago
        st.integers(1, 24 * 4),  # length in hours
        st.booleans(),  # released before the second pass
    ),
    max_size=3,
)


def _held(segment: SegmentRecord, holds: list[tuple[int | None, datetime, datetime]]) -> bool:
    return any(
        channel in (None, segment.channel) and start < segment.end and end > segment.start
        for channel, start, end in holds
    )


def _check_pass(
    site: Site,
    before: dict[int, SegmentRecord],
    holds: list[tuple[int | None, datetime, datetime]],
    policy: RetentionPolicy,
    audited: set[tuple[int, StorageTier]],
) -> None:
    """The oracle, written apart from :func:`protection`: which copies must be gone, which kept."""
    now = site.clock.now
    deletions = {(d.segment_id, d.tier): d for d in site.catalog.deletions()}
    for segment in before.values():
        synced = segment.sync_state is SyncState.SYNCED
        held = _held(segment, holds)
        for tier, days in (
            (StorageTier.LOCAL, policy.spool_days),
            (StorageTier.CENTRAL, policy.central_days),
        ):
            had = segment.local_path if tier is StorageTier.LOCAL else segment.storage_key
            if had is None or (segment.id, tier) in audited:
                continue
            exists = Path(had).exists() if tier is StorageTier.LOCAL else site.store.head(had) is not None
            floor = FLOOR if tier is StorageTier.CENTRAL else timedelta(0)
            due = synced and not held and segment.end <= now - max(timedelta(days=days), floor)
            if due:
                assert not exists, f"{tier.value} copy of {segment} outlived its policy"
                deletion = deletions[(segment.id, tier)]
                assert deletion.rule == policy.rule(tier) and deletion.deleted_by == "hub:test"
                audited.add((segment.id, tier))
            else:
                assert exists, f"protected {tier.value} copy of {segment} was deleted"
                assert (segment.id, tier) not in deletions
    assert set(deletions) == audited, "a deletion without its audit row, or an audit row without deletion"
    for segment in before.values():
        gone = {tier for tier in StorageTier if (segment.id, tier) in audited}
        copies = {StorageTier.LOCAL} | ({StorageTier.CENTRAL} if segment.storage_key else set())
        assert (site.catalog.segment(segment.id) is None) == (gone == copies)


def test_property_no_protected_copy_is_ever_deleted_and_every_due_one_is(site: Site) -> None:
    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: an example takes a second, not minutes
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        segments=_segments,
        holds=_holds,
        central_days=st.integers(7, 10),
        spool_days=st.integers(0, 3),
        steps=st.lists(st.integers(0, 24 * 6), min_size=1, max_size=3),
    )
    @example(  # every protection at once: unsynced, re-queued, inside the floor, held then released
        segments=[
            (1, 24 * 12, "pending"),
            (1, 24 * 11, "requeued"),
            (2, 24 * 6, "synced"),
            (1, 24 * 9, "synced"),
        ],
        holds=[(1, 24 * 9 + 1, 2, False), (None, 24 * 11 + 1, 2, True)],
        central_days=7,
        spool_days=1,
        steps=[0, 24],
    )
    def check(
        segments: list[tuple[int, int, str]],
        holds: list[tuple[int | None, int, int, bool]],
        central_days: int,
        spool_days: int,
        steps: list[int],
    ) -> None:
        before = _populate(site, segments)
        keeper = site.retention(central_days=central_days, spool_days=spool_days)
        placed = [
            (
                keeper.add_hold(
                    DEVICE,
                    channel,
                    NOW - start * HOUR,
                    NOW - start * HOUR + length * HOUR,
                    kind=HoldKind.INCIDENT,
                    reason="incident",
                    by="an",
                )[0],
                release,
            )
            for channel, start, length, release in holds
        ]
        audited: set[tuple[int, StorageTier]] = set()
        for number, hours in enumerate(steps):
            site.clock.now += hours * HOUR  # time only moves forward
            if number == 1:  # holds released between passes stop protecting
                for hold, release in placed:
                    if release:
                        keeper.release_hold(hold.id, by="an")
            active = [(h.channel, h.start, h.end) for h in site.catalog.holds()]
            report = keeper.run()
            assert report.errors == [] and report.count("refused by the store") == 0
            _check_pass(site, before, active, keeper.policy, audited)

    check()


def _populate(site: Site, segments: list[tuple[int, int, str]]) -> dict[int, SegmentRecord]:
    """The segments of a generated history, each in the sync state it names."""
    site.reset()
    site.clock.now = NOW
    made: dict[int, SegmentRecord] = {}
    for channel, age, state in segments:
        start = NOW - age * HOUR - channel * MINUTE  # sealed: ended by now
        if any(s.channel == channel and s.start == start for s in made.values()):
            continue
        record = site.segment(start, channel=channel, synced=state in ("synced", "requeued"))
        if state == "requeued":  # the central copy was found damaged: it must be sent again
            record = site.catalog.mark_pending(record.id)
        elif state in ("failed", "uploading"):
            record = site.catalog.mark_uploading(record.id)
            if state == "failed":
                record = site.catalog.mark_failed(record.id, "store down")
        made[record.id] = record
    return made


def test_property_disk_pressure_never_deletes_protected_footage(site: Site) -> None:
    @settings(max_examples=10, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])
    @given(segments=_segments, holds=_holds, limit=st.integers(0, 10_000), spool_days=st.integers(0, 3))
    def check(
        segments: list[tuple[int, int, str]],
        holds: list[tuple[int | None, int, int, bool]],
        limit: int,
        spool_days: int,
    ) -> None:
        before = _populate(site, segments)
        keeper = site.retention(spool_days=spool_days, spool_max_bytes=limit)
        for channel, start, length, _ in holds:
            span = NOW - start * HOUR, NOW - start * HOUR + length * HOUR
            keeper.add_hold(DEVICE, channel, *span, kind=HoldKind.MANUAL, reason="kept", by="an")
        active = [(h.channel, h.start, h.end) for h in site.catalog.holds()]
        report = keeper.run()
        used = sum(p.stat().st_size for p in site.spool.rglob("*.mp4"))
        for segment in before.values():
            local = Path(str(segment.local_path)).exists()
            protected = segment.sync_state is not SyncState.SYNCED or _held(segment, active)
            if protected:
                assert local, f"disk pressure deleted protected footage: {segment}"
            elif report.pressure.degraded:
                assert not local, "degraded while deletable footage was left"
            if segment.storage_key is not None:  # pressure never touches the central copy
                central_due = not protected and segment.end <= NOW - FLOOR
                assert (site.store.head(segment.storage_key) is None) == central_due
        assert (report.pressure.level == "ok") == (report.pressure.spool_bytes <= limit)
        if report.pressure.level == "relieved":
            assert used <= limit

    check()


def test_the_predicate_never_lets_the_floor_go_even_with_a_shorter_keep_for(site: Site) -> None:
    segment = site.segment(NOW - 6 * DAY)
    reason = protection(segment, StorageTier.CENTRAL, [], now=NOW, keep_for=timedelta(0))
    assert reason == "inside the 7-day floor"
    assert protection(segment, StorageTier.LOCAL, [], now=NOW, keep_for=timedelta(0)) is None


# -- the store's own locks and legal holds -------------------------------------------------------------


def test_a_locked_central_object_is_refused_by_the_store_and_reported_not_deleted(site: Site) -> None:
    old = site.segment(NOW - 20 * DAY)
    other = site.segment(NOW - 20 * DAY + MINUTE)
    assert old.storage_key is not None and other.storage_key is not None
    site.store.lock(old.storage_key, NOW + 365 * DAY)  # as the uploader does, here far longer
    with structlog.testing.capture_logs() as logs:
        report = site.retention(central_days=10).run()
    refused = [a for a in report.actions if a.outcome == "refused by the store"]
    assert [a.segment_id for a in refused] == [old.id] and "locked" in refused[0].detail
    assert site.store.head(old.storage_key) is not None
    assert site.store.head(other.storage_key) is None
    assert [d.segment_id for d in site.catalog.deletions(tier=StorageTier.CENTRAL)] == [other.id]
    assert next(e for e in logs if e["event"] == "retention.refused_by_store")["count"] == 1
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


def test_a_hold_puts_the_stores_legal_hold_on_and_release_lifts_it(site: Site) -> None:
    held = site.segment(NOW - 30 * DAY)
    free = site.segment(NOW - 30 * DAY + 2 * HOUR)
    assert held.storage_key is not None and free.storage_key is not None
    keeper = site.retention()
    hold, count = keeper.add_hold(
        DEVICE, None, held.start, held.end, kind=HoldKind.EXPORT, reason="export 2026/7", by="an"
    )
    assert count == 1 and site.store.head(held.storage_key).legal_hold  # type: ignore[union-attr]
    report = keeper.run()
    assert report.kept[f"held (hold {hold.id}, export: export 2026/7)"] == 2  # both copies
    assert site.catalog.segment(held.id) == held
    assert site.catalog.segment(free.id) is None
    _, released = keeper.release_hold(hold.id, by="an")
    assert released == 1 and not site.store.head(held.storage_key).legal_hold  # type: ignore[union-attr]
    keeper.run()
    assert site.catalog.segment(held.id) is None
    assert {(d.segment_id, d.tier) for d in site.catalog.deletions()} == {
        (s.id, tier) for s in (held, free) for tier in StorageTier
    }


def test_a_copy_already_gone_from_the_store_is_recorded_but_a_missing_local_file_is_left_alone(
    site: Site,
) -> None:
    elsewhere = site.segment(NOW - 20 * DAY)
    vanished = site.segment(NOW - 20 * DAY + MINUTE)
    Path(str(elsewhere.local_path)).unlink()  # as if in another hub's spool
    site.store.delete(str(vanished.storage_key))  # e.g. a crash after the delete, before the record
    report = site.retention(central_days=10).run()
    assert report.kept["local file not found here"] == 1
    kept = site.catalog.segment(elsewhere.id)
    assert kept is not None and kept.local_path == elsewhere.local_path
    gone = [a for a in report.actions if a.segment_id == vanished.id and a.tier is StorageTier.CENTRAL]
    assert [(a.outcome, a.detail) for a in gone] == [("deleted", "the store no longer had it")]
    assert site.catalog.segment(vanished.id) is None


def test_a_dry_run_deletes_nothing(site: Site) -> None:
    segment = site.segment(NOW - 9 * DAY)
    report = site.retention().run(dry_run=True)
    assert [(a.outcome, a.tier) for a in report.actions] == [
        ("would delete", StorageTier.LOCAL),
        ("would delete", StorageTier.CENTRAL),
    ]
    assert site.catalog.segment(segment.id) == segment and site.catalog.deletions() == []
    assert Path(str(segment.local_path)).exists()


# -- disk pressure ------------------------------------------------------------------------------------


def test_pressure_deletes_synced_local_copies_early_oldest_first(site: Site) -> None:
    young = [site.segment(NOW - 3 * HOUR + n * MINUTE, size=40_000) for n in range(5)]
    unsynced = site.segment(NOW - 4 * HOUR, synced=False, size=40_000)
    # 240 kB in the spool, limit 0.0001 GB (107 kB): free at least 240 - 107 + 10.7 kB, oldest synced first.
    with structlog.testing.capture_logs() as logs:
        report = site.retention(spool_days=1, spool_max_bytes=int(0.0001 * 1024**3)).run()
    assert report.pressure.level == "relieved"
    deleted = [a.segment_id for a in report.actions if a.outcome == "deleted"]
    assert deleted == [s.id for s in young[:4]]
    assert all(a.rule.startswith("disk pressure") for a in report.actions)
    assert Path(str(unsynced.local_path)).exists() and Path(str(young[4].local_path)).exists()
    assert all(site.store.head(str(s.storage_key)) is not None for s in young)  # central copies stay
    assert next(e for e in logs if e["event"] == "retention.disk_pressure")["log_level"] == "warning"
    assert report.status()["pressure"] == "relieved"


def test_pressure_degrades_rather_than_delete_protected_footage(site: Site) -> None:
    unsynced = [site.segment(NOW - HOUR + n * MINUTE, synced=False, size=60_000) for n in range(3)]
    held = site.segment(NOW - 2 * HOUR, size=60_000)
    keeper = site.retention(spool_max_bytes=int(0.0001 * 1024**3))
    keeper.add_hold(
        DEVICE, 1, held.start, held.end, kind=HoldKind.INCIDENT, reason="fight at desk 2", by="an"
    )
    with structlog.testing.capture_logs() as logs:
        report = keeper.run()
    assert report.pressure.degraded and report.pressure.freed_bytes == 0
    assert report.actions == []
    assert all(Path(str(s.local_path)).exists() for s in [*unsynced, held])
    assert "retention.degraded" in [e["event"] for e in logs]
    assert report.kept["unsynced (pending)"] == 0  # unsynced ones are never even candidates
    # Once the backlog reaches the store, the next pass finds room again.
    for segment in unsynced:
        key = segment_key("thu", DEVICE, 1, segment.start, segment.end)
        site.store.put(key, Path(str(segment.local_path)), segment.sha256)
        site.catalog.mark_synced(segment.id, key)
    assert keeper.run().pressure.level == "relieved"


def test_low_free_space_on_the_spools_filesystem_is_pressure_too(site: Site) -> None:
    site.segment(NOW - HOUR)
    report = site.retention(spool_max_bytes=10**15, spool_min_free_bytes=10**18).run(dry_run=True)
    assert report.pressure.level == "degraded"  # one copy cannot free an exabyte
    assert [a.outcome for a in report.actions] == ["would delete"]


# -- SeaweedFS object lock: the store itself refuses -------------------------------------------------


def test_with_seaweedfs_object_lock_retention_is_refused_by_the_store(site: Site) -> None:
    from seaweed_peer import SeaweedS3, require_weed

    from camhub.secrets import Secret
    from camhub_storage_s3 import S3Storage, S3StorageConfig

    with SeaweedS3(require_weed()) as peer:
        raw = peer.client()
        raw.create_bucket(Bucket="camhub-retention", ObjectLockEnabledForBucket=True)
        config = S3StorageConfig(
            backend="s3",
            endpoint=peer.endpoint,
            bucket="camhub-retention",
            access_key=Secret(peer.access_key, "$env:TEST_S3_ACCESS"),
            secret_key=Secret(peer.secret_key, "$env:TEST_S3_SECRET"),
        )
        with S3Storage(config) as store:
            real_now = datetime.now(UTC).replace(microsecond=0)
            site.clock.now = real_now
            segment = site.segment(real_now - 40 * DAY)  # long past central_days by the catalog
            assert segment.storage_key is not None and segment.local_path is not None
            path = Path(segment.local_path)
            store.put(segment.storage_key, path, segment.sha256)
            store.lock(segment.storage_key, real_now + DAY)  # e.g. a lock set longer than the policy
            keeper = Retention(
                site.catalog,
                store,
                site.spool,
                RetentionPolicy(central_days=30, **NO_PRESSURE),
                by="hub:test",
                clock=site.clock,
            )
            report = keeper.run()
            refused = [a for a in report.actions if a.tier is StorageTier.CENTRAL]
            assert [(a.outcome, a.segment_id) for a in refused] == [("refused by the store", segment.id)]
            assert report.errors == []
            body = raw.get_object(Bucket="camhub-retention", Key=segment.storage_key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == segment.sha256
            assert [d.tier for d in site.catalog.deletions()] == [StorageTier.LOCAL]
            left = site.catalog.segment(segment.id)
            assert left is not None and left.central_deleted_at is None


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def configured(tmp_path: Path) -> tuple[Path, Path]:
    """A province whose central store is a folder, and the data folder of its hub."""
    config = tmp_path / "province.yaml"
    config.write_text(
        BASE
        + textwrap.dedent(
            """\
            storage: {central: {backend: filesystem, path: central}}
            retention: {central_days: 7, spool_days: 1}
            """
        ),
        encoding="utf-8",
    )
    return config, tmp_path / "data"


def _old_segment(data: Path) -> SegmentRecord:
    start = datetime.now(UTC).replace(microsecond=0) - 10 * DAY
    with Catalog.open(data / "catalog.db") as catalog:
        catalog.upsert_device(
            DEVICE, unit="xa-b", vendor="hikvision", kind=DeviceKind.CAMERA, host="127.0.0.1"
        )
        catalog.upsert_channels(DEVICE, [Channel(id=1)])
        path = data / "spool" / DEVICE / "1" / "old.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"old footage")
        digest = hashlib.sha256(b"old footage").hexdigest()
        record = catalog.add_segment(
            device_id=DEVICE,
            channel=1,
            start=start,
            end=start + MINUTE,
            size=11,
            sha256=digest,
            local_path=str(path),
            video_codec="h264",
        )
        key = segment_key("thu", DEVICE, 1, record.start, record.end)
        FilesystemStorage(data / "central").put(key, path, digest)
        return catalog.mark_synced(record.id, key)


def test_cli_dry_run_prints_without_deleting_then_a_pass_deletes(
    configured: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = configured
    segment = _old_segment(data)
    args = ["retention", str(config), "--data-dir", str(data), "--by", "an"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete: local copy of segment {segment.id}" in out and "[spool_days=1]" in out
    assert f"would delete: central copy of segment {segment.id}" in out and "[central_days=7]" in out
    assert "dry run: would delete 1 local copy and 1 central object" in out
    assert Path(str(segment.local_path)).exists()
    assert main(args) == 0
    assert "deleted 1 local copy and 1 central object" in capsys.readouterr().out
    assert not Path(str(segment.local_path)).exists()
    with Catalog.open(data / "catalog.db") as catalog:
        assert {(d.tier, d.deleted_by) for d in catalog.deletions()} == {
            (StorageTier.LOCAL, "an"),
            (StorageTier.CENTRAL, "an"),
        }


def test_cli_hold_without_a_reason_is_a_usage_error(
    configured: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = configured
    args = ["hold", "add", str(config), "--data-dir", str(data), "--device", DEVICE]
    span = ["--start", "2026-03-01T08:00", "--end", "2026-03-01T09:00"]
    for reason in ([], ["--reason", "  "]):
        assert main([*args, *span, *reason]) == 2
        assert "--reason is required: say what the hold is for" in capsys.readouterr().err
    assert main([*args, "--start", "2026-03-01T09:00", "--end", "2026-03-01T08:00", "--reason", "x"]) == 2
    assert "--end must be after --start" in capsys.readouterr().err


def test_cli_hold_add_list_release_protects_footage(
    configured: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = configured
    segment = _old_segment(data)
    common = [str(config), "--data-dir", str(data)]
    local = segment.start.astimezone(ZONE).replace(tzinfo=None).isoformat()  # province time, no offset
    assert (
        main(
            [
                "hold",
                "add",
                *common,
                "--device",
                DEVICE,
                "--channel",
                "1",
                "--start",
                local,
                "--end",
                (segment.end + MINUTE).isoformat(),
                "--kind",
                "incident",
                "--reason",
                "complaint 42",
                "--by",
                "an",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "hold 1 added: cam-1 channel 1" in out and "incident: complaint 42 (by an)" in out
    assert "the central store holds 1 object (legal hold)" in out
    assert main(["retention", *common, "--by", "hub"]) == 0
    assert "kept 2: held (hold 1, incident: complaint 42)" in capsys.readouterr().out
    assert Path(str(segment.local_path)).exists()
    assert main(["hold", "list", *common]) == 0
    assert capsys.readouterr().out.startswith("1: cam-1 channel 1")
    assert main(["hold", "release", *common, "1", "--by", "binh"]) == 0
    assert "hold 1 released by binh" in capsys.readouterr().out
    assert main(["hold", "list", *common]) == 0
    assert capsys.readouterr().out == "no holds in force\n"
    assert main(["hold", "list", *common, "--all"]) == 0
    assert "released by binh" in capsys.readouterr().out
    assert main(["hold", "release", *common, "1", "--by", "binh"]) == 1
    assert "hold 1 was already released by binh" in capsys.readouterr().err


# -- the hub: a pass in its control loop, recording paused rather than protected footage deleted -----


def test_hub_pauses_recording_with_a_disk_full_gap_then_resumes_when_room_is_back(tmp_path: Path) -> None:
    import asyncio
    import json
    import os

    from gst_peer import GstRtspServer, require_gst
    from test_hub import PASSWORD, province_yaml

    from camhub import PluginHost, load_config
    from camhub.catalog import GapCause
    from camhub.hub import Hub, HubSettings

    require_gst()
    mounts = {"/cam1": "h264+aac", "/cam2": "h264+pcmu", "/mic": "aac"}
    with GstRtspServer(mounts, user="admin", password=PASSWORD) as server:
        config = province_yaml(server, tmp_path)
        config.write_text(
            config.read_text()
            + "storage: {central: {backend: filesystem, path: central}, spool_max_gb: 0.1}\n",
            encoding="utf-8",
        )
        # 200 MB the hub cannot delete (not catalogued footage; a sparse file costs no disk), and
        # with uploads off nothing is synced: the spool is over its limit with nothing deletable.
        junk = tmp_path / "data" / "spool" / "junk.bin"
        junk.parent.mkdir(parents=True)
        with junk.open("wb") as f:
            os.truncate(f.fileno(), 200 * 1024**2)
        host = PluginHost.from_installed()
        province = load_config(config, host=host)
        settings = HubSettings(
            data_dir=tmp_path / "data", segment_seconds=1, upload=False, retention_interval=0.3
        )
        seen: dict[str, object] = {}
        with Catalog.open(str(tmp_path / "catalog.db")) as catalog:
            hub = Hub(province, host, catalog, settings)

            def make_room() -> None:
                seen["while_paused"] = dict(hub.retention_status or {}).get("pressure")
                seen["recorders_while_paused"] = len(hub.recorders)
                junk.unlink()

            async def scenario() -> None:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                loop.call_later(2.5, make_room)
                loop.call_later(7.0, stop.set)
                await hub.run(stop)

            asyncio.run(scenario())
            assert hub.retention_status is not None and hub.retention_status["pressure"] == "ok"
            far = NOW + 3650 * DAY
            gaps = [g for channel in (1, 2, 3) for g in catalog.gaps("enc-1", channel, NOW - 3650 * DAY, far)]
            disk_full = [g for g in gaps if g.cause is GapCause.OTHER]
            assert seen == {"while_paused": "degraded", "recorders_while_paused": 0}
            assert len(disk_full) == 3 and all(g.detail.startswith("disk full") for g in disk_full)
            assert all(g.end is not None and g.closed_by == "reconnected" for g in disk_full)
            resumed = max(g.end for g in disk_full if g.end is not None)
            after = catalog.segments("enc-1", 1, resumed, far)
            assert after, "recording did not resume"
            assert catalog.deletions() == []
    status = json.loads((tmp_path / "data" / "status.json").read_text())
    assert status["retention"]["pressure"] == "ok"
