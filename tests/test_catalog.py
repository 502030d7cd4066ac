"""The recording catalog, on SQLite (a temporary file) and on a real PostgreSQL started by the tests."""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import peers
import pytest
import structlog
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, inspect, make_url, select, text
from sqlalchemy.exc import IntegrityError

from camhub.adapter import ChannelInfo
from camhub.catalog import (
    MAX_SEGMENT_DURATION,
    Catalog,
    CatalogError,
    CatalogUnavailable,
    GapCause,
    InvalidChange,
    NotInCatalog,
    SegmentOverlap,
    SegmentRecord,
    SegmentSource,
    StorageTier,
    SyncState,
    alembic_config,
    head_revision,
)
from camhub.catalog._catalog import _NOT_SYNCED
from camhub.catalog._schema import Base, SegmentRow
from camhub.catalog._types import to_micros
from camhub.model import Channel, ChannelKind, DeviceKind

postgres_server = peers.postgres_server
postgres_url = peers.postgres_url

T0 = datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)  # microseconds on purpose
ICT = timezone(timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh
MINUTE = timedelta(minutes=1)
DIGEST = "ab" * 32
_databases = itertools.count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield str(tmp_path / "data" / "catalog.db")
        return
    server: peers.PostgresServer = request.getfixturevalue("postgres_server")
    name = f"catalog_{next(_databases)}"
    yield server.create_database(name)
    server.drop_database(name)


@pytest.fixture
def catalog(database_url: str) -> Iterator[Catalog]:
    with Catalog.open(database_url) as opened:
        yield opened


@pytest.fixture
def engine(catalog: Catalog, database_url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on the catalog's database, to look at it from outside."""
    url = make_url(database_url) if "://" in database_url else make_url(f"sqlite:///{database_url}")
    plain = create_engine(url)
    yield plain
    plain.dispose()


def add_camera(catalog: Catalog, device_id: str = "cam-01", channels: int = 1) -> None:
    catalog.upsert_device(
        device_id, unit="trang-dai", vendor="hikvision", kind=DeviceKind.CAMERA, host="10.0.0.2"
    )
    catalog.upsert_channels(device_id, [Channel(id=number) for number in range(1, channels + 1)])


def add(
    catalog: Catalog, start: float, end: float, *, device_id: str = "cam-01", channel: int = 1, **extra: Any
) -> SegmentRecord:
    return catalog.add_segment(
        device_id=device_id,
        channel=channel,
        start=at(start),
        end=at(end),
        size=1000,
        sha256=DIGEST,
        video_codec="h264",
        audio_codec="aac",
        **extra,
    )


# -- schema and opening ---------------------------------------------------------------------------


def test_migrations_apply_from_empty_and_alembic_reports_head(database_url: str) -> None:
    with Catalog.open(database_url) as catalog:
        assert catalog.schema_revision() == head_revision()
        engine = create_engine(make_url(alembic_config(database_url).get_main_option("sqlalchemy.url") or ""))
    try:
        # Alembic itself (through the packaged env.py) reports the head.
        config = alembic_config(database_url)
        config.stdout = io.StringIO()
        command.current(config)
        assert f"{head_revision()} (head)" in config.stdout.getvalue()
        # The migrations create exactly what the ORM classes describe.
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            tables = set(inspect(connection).get_table_names())
        assert {"devices", "channels", "segments", "gaps", "device_states", "alembic_version"} <= tables
        # Down to nothing and up again; opening an up-to-date catalog changes nothing.
        command.downgrade(config, "base")
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        with Catalog.open(database_url) as catalog, Catalog.open(database_url) as again:
            assert catalog.schema_revision() == again.schema_revision() == head_revision()
    finally:
        engine.dispose()


def test_many_hubs_opening_an_empty_catalog_at_once_migrate_it_once(database_url: str) -> None:
    barrier = threading.Barrier(4)

    def open_one(_: int) -> str | None:
        barrier.wait()
        with Catalog.open(database_url) as catalog:
            return catalog.schema_revision()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_one, range(4))) == [head_revision()] * 4


def test_a_catalog_behind_or_ahead_of_the_code_is_refused(database_url: str) -> None:
    with pytest.raises(CatalogUnavailable, match="migrate=True"):
        Catalog.open(database_url, migrate=False)
    Catalog.open(database_url).close()
    engine = create_engine(make_url(alembic_config(database_url).get_main_option("sqlalchemy.url") or ""))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    engine.dispose()
    with pytest.raises(CatalogUnavailable, match=r"'f00d', which this camhub .* written by a newer camhub"):
        Catalog.open(database_url)


def test_connection_settings(catalog: Catalog, engine: Engine) -> None:
    with catalog._engine.connect() as connection:  # the catalog's own connections
        if catalog.backend == "sqlite":
            pragma = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
            assert pragma == {
                "journal_mode": "wal",
                "synchronous": 1,
                "busy_timeout": 30000,
                "foreign_keys": 1,
            }
        else:
            assert connection.exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"
    # Foreign keys hold even for a writer that bypasses the API.
    orphan = text(
        "INSERT INTO gaps (device_id, channel, start_us, cause, detail) VALUES ('nope', 1, 0, 'stall', '')"
    )
    with engine.connect() as connection:  # rolled back on close
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        with pytest.raises(IntegrityError):
            connection.execute(orphan)


def test_open_accepts_paths_and_urls(tmp_path: Path) -> None:
    for target in (tmp_path / "a" / "catalog.db", f"sqlite:///{tmp_path / 'b.db'}", str(tmp_path / "c.db")):
        with Catalog.open(target) as catalog:
            assert catalog.backend == "sqlite"
            assert catalog.schema_revision() == head_revision()
    for bad in ("sqlite://", "sqlite:///:memory:", "mysql://u:p@h/db", "postgresql+psycopg2://u:p@h/db"):
        with pytest.raises(CatalogError) as error:
            Catalog.open(bad)
        assert ":p@" not in str(error.value)


def test_the_database_password_is_never_shown(database_url: str, request: pytest.FixtureRequest) -> None:
    if "://" not in database_url:  # SQLite has no password: show that a failure names the path
        with pytest.raises(CatalogUnavailable, match="cannot open the catalog at sqlite"):
            Catalog.open(Path(database_url).parent.parent)  # a folder, not a database file
        return
    server: peers.PostgresServer = request.getfixturevalue("postgres_server")
    with structlog.testing.capture_logs() as logs:
        with Catalog.open(database_url) as catalog:
            assert server.password not in repr(catalog) + catalog.url
            assert "***" in catalog.url
        wrong = "wrong-" + server.password
        with pytest.raises(CatalogUnavailable) as error:
            Catalog.open(server.url(make_url(database_url).database or "", password=wrong))
    shown = f"{error.value!s} {error.value!r} {error.getrepr()} {logs!r}"
    assert "***" in str(error.value)
    assert server.password not in shown
    assert wrong not in shown
    assert any(entry["event"] == "catalog.migrated" for entry in logs)


# -- devices, channels, segments ------------------------------------------------------------------


def test_segments_round_trip_with_aware_utc_times_and_vietnamese_text(catalog: Catalog) -> None:
    device = catalog.upsert_device(
        "dong-nai.trang-dai.cam-01",
        unit="Phường Trảng Dài",
        vendor="hikvision",
        kind=DeviceKind.NVR,
        host="10.0.0.2",
        name="Đầu ghi bộ phận một cửa",
        model="DS-7608NI",
        serial="DS-7608NI0120210101",
        firmware="V4.30.085",
        mac="bc:ad:28:00:00:01",
        seen_at=datetime(2026, 3, 1, 7, 0, tzinfo=ICT),
    )
    assert device.first_seen == device.last_seen == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert device.first_seen.tzinfo is UTC
    assert catalog.device(device.id) == device
    assert catalog.devices(unit="Phường Trảng Dài") == [device]
    channels = catalog.upsert_channels(
        device.id,
        [
            Channel(id=1, name="Quầy tiếp nhận số 1", audio=True),
            ChannelInfo(id=2, kind=ChannelKind.MICROPHONE, name="Micrô quầy số 1"),
        ],
    )
    assert [(c.channel, c.kind, c.name, c.audio) for c in channels] == [
        (1, ChannelKind.CAMERA, "Quầy tiếp nhận số 1", True),
        (2, ChannelKind.MICROPHONE, "Micrô quầy số 1", True),
    ]
    start = datetime(2026, 3, 1, 7, 0, 0, 999999, tzinfo=ICT)  # given in UTC+7
    segment = catalog.add_segment(
        device_id=device.id,
        channel=2,
        start=start,
        end=start + MINUTE,
        duration=timedelta(seconds=59, microseconds=980000),
        size=480_000,
        sha256=DIGEST.upper(),
        audio_codec="aac",
        audio_source_codec="pcm_mulaw",
        container="mp4",
        local_path=Path("/var/lib/camhub/spool/Trảng Dài/0001.mp4"),
    )
    assert segment.start == start and segment.start.tzinfo is UTC
    assert segment.start == datetime(2026, 3, 1, 0, 0, 0, 999999, tzinfo=UTC)
    assert (segment.sha256, segment.video_codec, segment.audio_source_codec) == (DIGEST, None, "pcm_mulaw")
    assert segment.local_path == "/var/lib/camhub/spool/Trảng Dài/0001.mp4"
    assert (segment.sync_state, segment.source, segment.backfill_source) == (
        SyncState.PENDING,
        SegmentSource.LIVE,
        None,
    )
    assert segment.created_at.tzinfo is UTC
    assert catalog.segment(segment.id) == segment
    assert catalog.segments(device.id, 2, start, start + MINUTE) == [segment]
    assert catalog.last_segment(device.id, 2) == segment
    assert catalog.segment(segment.id + 1000) is None
    # A firmware upgrade is kept in the device's history.
    later = datetime(2026, 3, 2, tzinfo=UTC)
    upgraded = catalog.upsert_device(
        device.id,
        unit=device.unit,
        vendor="hikvision",
        kind=DeviceKind.NVR,
        host="10.0.0.2",
        firmware="V4.31.000",
        seen_at=later,
    )
    assert (upgraded.firmware, upgraded.model, upgraded.name) == (
        "V4.31.000",
        "DS-7608NI",
        "Đầu ghi bộ phận một cửa",
    )
    assert (upgraded.first_seen, upgraded.last_seen) == (device.first_seen, later)
    history = catalog.states(device.id, later, later + MINUTE)
    assert [(s.state, s.detail) for s in history] == [("identity_changed", "firmware: V4.30.085 → V4.31.000")]


def test_invalid_values_are_refused(catalog: Catalog) -> None:
    add_camera(catalog)
    naive = datetime(2026, 3, 1)
    good: dict[str, Any] = {
        "device_id": "cam-01",
        "channel": 1,
        "start": at(0),
        "end": at(60),
        "size": 1,
        "sha256": DIGEST,
    }
    changes: list[tuple[dict[str, Any], str]] = [
        ({"start": naive}, "timezone-aware"),
        ({"end": at(0)}, "must end after it starts"),
        ({"end": at(0) + MAX_SEGMENT_DURATION + timedelta(microseconds=1)}, "at most"),
        ({"sha256": "xyz"}, "sha256"),
        ({"size": -1}, "negative"),
        ({"source": SegmentSource.BACKFILL}, "backfill_source"),
        ({"backfill_source": "nvr"}, "backfill_source"),
    ]
    for change, message in changes:
        with pytest.raises(ValueError, match=message):
            catalog.add_segment(**{"video_codec": "h264", **good, **change})
    with pytest.raises(ValueError, match="video_codec and/or audio_codec"):
        catalog.add_segment(**good)
    with pytest.raises(NotInCatalog):
        catalog.add_segment(**{**good, "channel": 9, "video_codec": "h264"})
    with pytest.raises(NotInCatalog):
        catalog.upsert_channels("nope", [Channel(id=1)])
    with pytest.raises(NotInCatalog):
        catalog.record_state("nope", "online")
    with pytest.raises(NotInCatalog):
        catalog.open_gap("cam-01", 9, at(0), GapCause.STALL)
    with pytest.raises(ValueError, match="timezone-aware"):
        catalog.segments("cam-01", 1, naive, at(60))
    assert catalog.segments("cam-01", 1, at(0), at(60)) == []


def test_overlap_queries_at_the_edges(catalog: Catalog) -> None:
    add_camera(catalog, channels=2)
    first, second, third = add(catalog, 0, 60), add(catalog, 60, 120), add(catalog, 180, 240)
    add(catalog, 0, 60, channel=2)  # another channel never shows up
    us = timedelta(microseconds=1)

    def ids(start: datetime, end: datetime) -> list[int]:
        return [s.id for s in catalog.segments("cam-01", 1, start, end)]

    assert ids(at(0), at(240)) == [first.id, second.id, third.id]
    assert ids(at(60), at(120)) == [second.id]  # touching neighbours do not overlap
    assert ids(at(60) - us, at(60)) == [first.id]
    assert ids(at(120), at(180)) == []  # exactly the hole
    assert ids(at(120) - us, at(180) + us) == [second.id, third.id]
    assert ids(at(30), at(30)) == []  # an empty window
    assert ids(at(-3600), at(0)) == []
    # A segment that began MAX_SEGMENT_DURATION before the window is still found.
    add_camera(catalog, "cam-02")
    long = add(catalog, 0, MAX_SEGMENT_DURATION.total_seconds(), device_id="cam-02")
    end_of_long = at(MAX_SEGMENT_DURATION.total_seconds())
    assert [s.id for s in catalog.segments("cam-02", 1, end_of_long - us, end_of_long)] == [long.id]
    # Writing: overlaps are refused, touching is fine, backfill may overlap on purpose.
    with pytest.raises(SegmentOverlap, match=f"segment {second.id}"):
        add(catalog, 119, 130)
    with pytest.raises(SegmentOverlap):
        add(catalog, 100, 200)  # spans the hole and both neighbours
    assert add(catalog, 120, 180).start == at(120)
    backfilled = add(
        catalog, 30, 90, source=SegmentSource.BACKFILL, backfill_source="nvr-01", allow_overlap=True
    )
    assert ids(at(50), at(70)) == [first.id, backfilled.id, second.id]


def test_a_recorder_start_closes_gaps_left_open_and_says_since_when_nothing_was_recorded(
    catalog: Catalog,
) -> None:
    add_camera(catalog, channels=2)
    assert catalog.recording_starts("cam-01", 1, at(0)) is None  # never recorded
    add(catalog, 0, 60)
    add(catalog, 60, 120)
    assert catalog.recording_starts("cam-01", 1, at(500)) == at(120)  # the latest segment's end
    # A hub killed during an outage left its gap open: it ends where the new recorder starts.
    left_open = catalog.open_gap("cam-01", 1, at(120), GapCause.UNREACHABLE)
    assert catalog.recording_starts("cam-01", 1, at(900)) == at(900)
    closed = catalog.gap(left_open)
    assert closed is not None and (closed.end, closed.closed_by) == (at(900), "hub restarted")
    assert catalog.open_gaps() == []
    # Only that channel's.
    other = catalog.open_gap("cam-01", 2, at(50), GapCause.STALL)
    assert catalog.recording_starts("cam-01", 1, at(1000)) == at(900)
    assert [g.id for g in catalog.open_gaps()] == [other]


def test_gaps_open_and_close(catalog: Catalog) -> None:
    add_camera(catalog)
    stall = catalog.open_gap("cam-01", 1, at(60), GapCause.STALL, "không nhận được gói tin trong 10 giây")
    auth = catalog.open_gap("cam-01", 1, at(600), GapCause.AUTH)
    assert [g.id for g in catalog.open_gaps()] == [stall, auth]
    assert [g.id for g in catalog.gaps("cam-01", 1, at(0), at(60))] == []  # ends where the gap starts
    assert [g.id for g in catalog.gaps("cam-01", 1, at(86400), at(86460))] == [
        stall,
        auth,
    ]  # open: reaches on
    closed = catalog.close_gap(stall, at(90), closed_by="reconnected")
    assert (closed.start, closed.end, closed.closed_by, closed.is_open) == (
        at(60),
        at(90),
        "reconnected",
        False,
    )
    assert closed.detail == "không nhận được gói tin trong 10 giây"
    assert catalog.gap(stall) == closed
    assert [g.id for g in catalog.gaps("cam-01", 1, at(90), at(600))] == []  # touching on both sides
    assert [g.id for g in catalog.gaps("cam-01", 1, at(89), at(601))] == [stall, auth]
    assert [g.id for g in catalog.open_gaps("cam-01")] == [auth]
    assert catalog.open_gaps("cam-02") == []
    with pytest.raises(InvalidChange, match="already closed"):
        catalog.close_gap(stall, at(100))
    with pytest.raises(InvalidChange, match="not after its start"):
        catalog.close_gap(auth, at(600))
    with pytest.raises(NotInCatalog):
        catalog.close_gap(auth + 1000, at(700))
    assert catalog.gap(auth + 1000) is None


def test_device_state_history(catalog: Catalog) -> None:
    add_camera(catalog)
    assert catalog.last_state("cam-01") is None
    catalog.record_state("cam-01", "online", at=at(0))
    catalog.record_state("cam-01", "unreachable", "kết nối bị từ chối", at=at(60))
    catalog.record_state("cam-01", "online", at=at(120))
    assert [s.state for s in catalog.states("cam-01", at(0), at(120))] == ["online", "unreachable"]
    last = catalog.last_state("cam-01")
    assert last is not None and (last.state, last.at) == ("online", at(120))


def test_sync_state_transitions(catalog: Catalog) -> None:
    add_camera(catalog)
    old, new = add(catalog, 0, 60), add(catalog, 60, 120)
    assert [s.id for s in catalog.unsynced()] == [old.id, new.id]  # oldest first
    assert (
        catalog.backlog().count == 2 and catalog.backlog().size == 2000 and catalog.backlog().oldest == at(0)
    )

    assert catalog.mark_uploading(old.id).sync_state is SyncState.UPLOADING
    failed = catalog.mark_failed(old.id, "503 Slow Down")
    assert (failed.sync_state, failed.sync_failures, failed.sync_error) == (
        SyncState.FAILED,
        1,
        "503 Slow Down",
    )
    assert [s.id for s in catalog.unsynced()] == [old.id, new.id]  # failed ones stay queued, in order
    # A long error keeps at most 1,000 bytes (whole characters): it is in the channel index too.
    catalog.mark_uploading(old.id)
    long = catalog.mark_failed(old.id, "kho lưu trữ trung tâm không phản hồi; " * 300).sync_error
    assert long is not None and 900 < len(long.encode()) <= 1000 and long.startswith("kho lưu trữ")
    catalog.mark_uploading(old.id)
    synced = catalog.mark_synced(old.id, "dong-nai/cam-01/1/2026-03-01/000000_000100.mp4", at(200))
    assert (synced.sync_state, synced.synced_at, synced.sync_error) == (SyncState.SYNCED, at(200), None)
    assert catalog.mark_synced(old.id, synced.storage_key or "", at(300)) == synced  # a retried call
    assert [s.id for s in catalog.unsynced()] == [new.id]
    assert catalog.backlog().count == 1 and catalog.backlog().oldest == at(60)

    with pytest.raises(InvalidChange, match="from synced to uploading"):
        catalog.mark_uploading(old.id)
    with pytest.raises(InvalidChange, match="already synced"):
        catalog.mark_synced(old.id, "another/key.mp4")
    with pytest.raises(InvalidChange, match="already belongs"):
        catalog.mark_synced(new.id, synced.storage_key or "")
    with pytest.raises(NotInCatalog):
        catalog.mark_uploading(new.id + 1000)

    # Deleting: never an unsynced segment by mistake; what was deleted is returned.
    with pytest.raises(InvalidChange, match="not synced"):
        catalog.delete_segment(new.id)
    assert catalog.delete_segment(old.id) == synced
    assert catalog.segment(old.id) is None
    with pytest.raises(NotInCatalog):
        catalog.delete_segment(old.id)
    assert catalog.delete_segment(new.id, allow_unsynced=True).id == new.id
    assert catalog.backlog().count == 0 and catalog.backlog().oldest is None
    # Ids are never reused (audit entries refer to them).
    assert add(catalog, 0, 60).id > new.id

    # A synced segment whose central copy is damaged goes back to the queue.
    again = add(catalog, 120, 180)
    catalog.mark_synced(again.id, "k/again.mp4")
    requeued = catalog.mark_pending(again.id)
    assert (requeued.sync_state, requeued.synced_at, requeued.storage_key) == (
        SyncState.PENDING,
        None,
        "k/again.mp4",
    )


def test_concurrent_writers_lose_nothing(database_url: str) -> None:
    # Two catalogs on one database (two hub processes), four threads each.
    with Catalog.open(database_url) as first, Catalog.open(database_url) as second:
        for number in range(8):
            add_camera(first, f"cam-{number}", channels=2)
        barrier = threading.Barrier(8)
        per_thread = 30

        def work(number: int) -> None:
            catalog = first if number % 2 else second
            barrier.wait()
            for index in range(per_thread):
                # channel 1: each thread its own device; channel 2 of cam-0: all threads, disjoint spans
                add(catalog, index * 60, index * 60 + 60, device_id=f"cam-{number}", channel=1)
                start = (index * 8 + number) * 60
                add(catalog, start, start + 60, device_id="cam-0", channel=2)
            gap = catalog.open_gap(f"cam-{number}", 1, at(10**6), GapCause.UNREACHABLE)
            catalog.close_gap(gap, at(10**6 + 30), closed_by="reconnected")
            catalog.record_state(f"cam-{number}", "online", at=at(number))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))

        everything = (at(-1), at(10**7))
        for number in range(8):
            assert len(first.segments(f"cam-{number}", 1, *everything)) == per_thread
            assert len(second.gaps(f"cam-{number}", 1, *everything)) == 1
        shared = first.segments("cam-0", 2, *everything)
        assert len(shared) == 8 * per_thread
        assert [s.start for s in shared] == [at(i * 60) for i in range(8 * per_thread)]
        assert first.backlog().count == 8 * per_thread * 2


def test_racing_writers_of_one_span_write_it_once(database_url: str) -> None:
    with Catalog.open(database_url) as first, Catalog.open(database_url) as second:
        add_camera(first)
        barrier = threading.Barrier(8)

        def race(number: int) -> str:
            barrier.wait()
            try:
                add(first if number % 2 else second, 0, 60)
            except SegmentOverlap:
                return "refused"
            return "written"

        with ThreadPoolExecutor(8) as pool:
            outcomes = sorted(pool.map(race, range(8)))
        assert outcomes == ["refused"] * 7 + ["written"]
        assert len(first.segments("cam-01", 1, at(0), at(60))) == 1


# -- coverage -------------------------------------------------------------------------------------

_device_numbers = itertools.count()
_span = st.tuples(st.integers(0, 4 * 3600), st.integers(1, 3600))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    segments=st.lists(st.tuples(_span, st.booleans()), max_size=8),
    gaps=st.lists(
        st.tuples(st.integers(0, 5 * 3600), st.one_of(st.none(), st.integers(1, 3600))), max_size=4
    ),
    window=st.tuples(st.integers(0, 5 * 3600), st.integers(0, 5 * 3600)).map(sorted),
)
def test_coverage_is_the_length_of_the_union(
    catalog: Catalog,
    segments: list[tuple[tuple[int, int], bool]],
    gaps: list[tuple[int, int | None]],
    window: list[int],
) -> None:
    device_id = f"prop-{next(_device_numbers)}"  # each example on its own device: no reset needed
    add_camera(catalog, device_id)
    for (start, length), synced in segments:
        segment = add(catalog, start, start + length, device_id=device_id, allow_overlap=True)
        if synced:
            catalog.mark_synced(segment.id, f"{device_id}/{segment.id}")
    gap_ids = []
    for gap_start, gap_length in gaps:
        gap_ids.append(catalog.open_gap(device_id, 1, at(gap_start), GapCause.OTHER))
        if gap_length is not None:
            catalog.close_gap(gap_ids[-1], at(gap_start + gap_length))
    low, high = window

    for synced_only in (False, True):
        coverage = catalog.coverage(device_id, 1, at(low), at(high), synced_only=synced_only)
        counted = [(s, s + n) for (s, n), synced in segments if synced or not synced_only]
        # Whole-second endpoints: the union's length is the number of covered seconds.
        expected = sum(1 for t in range(low, high) if any(s <= t < e for s, e in counted))
        assert coverage.covered == timedelta(seconds=expected)
        assert coverage.covered + sum((h.duration for h in coverage.holes), timedelta()) == at(high) - at(low)
        for hole in coverage.holes:
            assert at(low) <= hole.start < hole.end <= at(high)
            assert not any(at(s) < hole.end and hole.start < at(e) for s, e in counted)
        assert 0.0 <= coverage.ratio <= 1.0
    expected_gaps = [
        gap_id
        for gap_id, (start, length) in zip(gap_ids, gaps, strict=True)
        if low < high and start < high and (length is None or start + length > low)
    ]
    assert [g.id for g in coverage.gaps] == sorted(
        expected_gaps, key=lambda i: (gaps[gap_ids.index(i)][0], i)
    )


# -- the index ------------------------------------------------------------------------------------


def _explain(engine: Engine, statement: Any) -> str:
    sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            return "\n".join(str(row[-1]) for row in rows)
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar()
        return json.dumps(plan if not isinstance(plan, str) else json.loads(plan))


def test_the_channel_range_query_uses_its_index(catalog: Catalog, engine: Engine) -> None:
    channels, per_channel = 20, 720  # 20 channels × 12 hours of minute segments
    add_camera(catalog, channels=channels)
    rows = [
        {
            "channel": channel,
            "start": to_micros(at(index * 60)),
            "end": to_micros(at(index * 60 + 60)),
            "state": "synced" if index < per_channel - 5 else "pending",
            "key": f"k/{channel}/{index}" if index < per_channel - 5 else None,
            "path": f"/spool/{channel}/{index}.mp4" if index >= per_channel - 60 else None,
        }
        for channel in range(1, channels + 1)
        for index in range(per_channel)
    ]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO segments (device_id, channel, start_us, end_us, duration_us, bytes, sha256, "
                "video_codec, container, sync_state, storage_key, local_path, sync_failures, source, created_at_us) "
                "VALUES ('cam-01', :channel, :start, :end, 60000000, 1, :sha, 'h264', 'mp4', :state, :key, :path, "
                "0, 'live', 0)"
            ),
            [{**row, "sha": DIGEST} for row in rows],
        )
        connection.exec_driver_sql("ANALYZE")
    assert len(catalog.segments("cam-01", 7, at(3600), at(7200))) == 60

    plan = _explain(engine, catalog.segments_query("cam-01", 7, at(3600), at(7200)))
    assert "ix_segments_channel_span" in plan, plan
    # The index holds every column: a channel's rows are read from it alone, in their order.
    table = Base.metadata.tables["segments"]
    (channel_span,) = [found for found in table.indexes if found.name == "ix_segments_channel_span"]
    assert {column.name for column in channel_span.columns} == set(table.columns.keys())
    if engine.dialect.name == "sqlite":
        assert "USING COVERING INDEX ix_segments_channel_span" in plan, plan
        # Both ends of the start_us range bound the scan: it does not depend on the channel's history.
        assert "start_us>? AND start_us<?" in plan or "start_us>=? AND start_us<?" in plan, plan
    else:
        assert "start_us >=" in plan and "start_us <" in plan, plan

    queue = select(SegmentRow.id).where(_NOT_SYNCED).order_by(SegmentRow.start).limit(100)
    backlog = _explain(engine, queue)
    assert "ix_segments_unsynced" in backlog, backlog
    assert len(catalog.unsynced(limit=1000)) == channels * 5

    # Retention's candidates of each tier walk that tier's partial index, oldest first.
    sent: list[tuple[str, Any]] = []

    def seen(connection: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
        sent.append((statement, parameters))

    for tier, index in (
        (StorageTier.LOCAL, "ix_segments_local"),
        (StorageTier.CENTRAL, "ix_segments_central"),
    ):
        sent.clear()
        event.listen(catalog._engine, "before_cursor_execute", seen)
        try:
            first = catalog.retention_candidates(tier, at(10**6), limit=100)
            second = catalog.retention_candidates(
                tier, at(10**6), after=(first[-1].start, first[-1].id), limit=100
            )
        finally:
            event.remove(catalog._engine, "before_cursor_execute", seen)
        # The second batch carries on after the first (oldest first, by start then id).
        ordered = [(record.start, record.id) for record in first + second]
        assert len(second) == 100 and ordered == sorted(ordered) and len(set(ordered)) == 200
        selects = [entry for entry in sent if entry[0].lstrip().startswith("SELECT")]
        assert len(selects) == 2
        for statement, parameters in selects:
            with engine.connect() as connection:
                explain = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
                plan = "\n".join(
                    str(row[-1]) for row in connection.exec_driver_sql(f"{explain} {statement}", parameters)
                )
            assert index in plan, plan


def test_records_read_in_bulk_are_the_records_the_constructor_makes(catalog: Catalog) -> None:
    add_camera(catalog)
    added = add(catalog, 0, 60)
    add(catalog, 60, 120)  # its start is the first one's end: one datetime shared by both records
    stored = catalog.mark_synced(added.id, "k/1")  # built by the constructor (from the ORM row)
    read, after = catalog.segments("cam-01", 1, at(0), at(120))  # built in bulk (from stored values)
    assert read == stored and hash(read) == hash(stored) and read._asdict() == stored._asdict()
    assert [type(value) for value in read] == [type(value) for value in stored]
    assert read.start.tzinfo is UTC and read.sync_state is SyncState.SYNCED and after.start == read.end
    with pytest.raises(AttributeError):
        read.size = 2  # type: ignore[misc]


# -- the peers ------------------------------------------------------------------------------------


def test_a_missing_peer_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: a missing test peer is a failure"):
        peers.peer_missing("PostgreSQL is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=r"install-test-peers\.sh"):
        peers.peer_missing("PostgreSQL is not installed")
    assert peers.postgres_bindir([tmp_path]) is None


def test_the_postgres_fixture_gives_a_working_url(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    with Catalog.open(postgres_url) as catalog:
        assert catalog.backend == "postgresql"
        assert catalog.schema_revision() == head_revision()
