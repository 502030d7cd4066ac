"""The central coverage summary ``coverage_days``: always what the segments say (SQLite and PostgreSQL).

After random histories of adds, syncs, re-queues, failures, central and local deletions and
backfills (segments across midnight included), the summary equals a recomputation from the
segment rows, the migration's backfill computes the same table, and the coverage read through the
summary equals the exact measurement of the segments.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import peers
import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, make_url, text
from test_catalog import add_camera, database_url  # noqa: F401 (a fixture)

from camhub.catalog import (
    Catalog,
    InvalidChange,
    SegmentOverlap,
    SegmentRecord,
    SegmentSource,
    StorageTier,
    alembic_config,
)
from camhub.catalog._types import to_micros

postgres_server = peers.postgres_server
DAY = 86_400_000_000
MIDNIGHT = datetime(2026, 3, 20, tzinfo=UTC)
CHANNELS = (("cam-01", 1), ("cam-01", 2))

# One step of a history: (operation, channel index, minute from DAY_BEFORE, length in minutes,
# a segment's index among those added so far).
OPERATIONS = (
    "add",
    "backfill",
    "sync",
    "uploading",
    "fail",
    "requeue",
    "delete_central",
    "delete_local",
    "forget",
)
DAY_BEFORE = MIDNIGHT - timedelta(days=1)
_steps = st.lists(
    st.tuples(
        st.sampled_from(OPERATIONS),
        st.integers(0, 1),
        st.integers(0, 48 * 60),
        st.integers(1, 60),
        st.integers(0, 200),
    ),
    max_size=30,
)


@pytest.fixture
def catalog(database_url: str) -> Iterator[Catalog]:  # noqa: F811 (the fixture of test_catalog)
    with Catalog.open(database_url) as opened:
        add_camera(opened, channels=2)
        yield opened


@pytest.fixture
def database(catalog: Catalog, database_url: str) -> Iterator[Engine]:  # noqa: F811
    """A plain engine on the catalog's database, to look at it from outside."""
    url = make_url(database_url) if "://" in database_url else make_url(f"sqlite:///{database_url}")
    plain = create_engine(url)
    yield plain
    plain.dispose()


def segment(catalog: Catalog, start: datetime, length: timedelta, **extra: Any) -> SegmentRecord:
    """A segment of cam-01 (channel 1 unless ``channel`` is given)."""
    return catalog.add_segment(
        **{"device_id": "cam-01", "channel": 1, **extra},
        start=start,
        end=start + length,
        size=1,
        sha256="1" * 64,
        video_codec="h264",
    )


def record_days(catalog: Catalog, missing: set[int]) -> list[int]:
    """Two days of synced hour-long segments on each channel but the ``missing`` hours (0-95)."""
    ids: list[int] = []
    for hour in range(96):
        if hour not in missing:
            device, channel = CHANNELS[hour // 48]
            start = DAY_BEFORE + timedelta(hours=hour % 48)
            record = segment(
                catalog,
                start,
                timedelta(hours=1),
                device_id=device,
                channel=channel,
                local_path=f"/spool/{len(ids)}.mp4",
            )
            catalog.mark_synced(record.id, f"key-{record.id}")
            ids.append(record.id)
    return ids


def play(catalog: Catalog, steps: list[tuple[str, int, int, int, int]], ids: list[int]) -> None:
    """Apply a history; refusals (overlap, a transition the catalog forbids) are part of it."""
    for operation, channel_index, minute, length, pick in steps:
        device, channel = CHANNELS[channel_index]
        start = DAY_BEFORE + timedelta(minutes=minute)
        chosen = ids[pick % len(ids)] if ids else None
        try:
            if operation in ("add", "backfill"):
                backfill = operation == "backfill"
                record = catalog.add_segment(
                    device_id=device,
                    channel=channel,
                    start=start,
                    end=start + timedelta(minutes=length),
                    size=1,
                    sha256="0" * 64,
                    video_codec="h264",
                    local_path=f"/spool/{len(ids)}.mp4",
                    source=SegmentSource.BACKFILL if backfill else SegmentSource.LIVE,
                    backfill_source="nvr-1" if backfill else None,
                    allow_overlap=backfill,
                )
                ids.append(record.id)
            elif chosen is None:
                continue
            elif operation == "sync":
                catalog.mark_synced(chosen, f"key-{chosen}")
            elif operation == "uploading":
                catalog.mark_uploading(chosen)
            elif operation == "fail":
                catalog.mark_failed(chosen, "store down")
            elif operation == "requeue":
                catalog.mark_pending(chosen)
            elif operation == "delete_central":
                catalog.record_deletion(
                    chosen, StorageTier.CENTRAL, location=f"key-{chosen}", rule="central_days=7", by="test"
                )
            elif operation == "delete_local":
                catalog.record_deletion(
                    chosen, StorageTier.LOCAL, location=f"/spool/{ids.index(chosen)}.mp4", rule="x", by="test"
                )
            else:
                catalog.delete_segment(chosen)
        except (InvalidChange, SegmentOverlap, LookupError):
            pass


def summary(engine: Engine) -> dict[tuple[str, int, int], tuple[int, int, int]]:
    """``coverage_days`` as stored (rows counting no segment must be all zero, then left out)."""
    return {key: value[:3] for key, value in stored_days(engine).items()}


def stored_days(engine: Engine) -> dict[tuple[str, int, int], tuple[int, int, int, int | None, int | None]]:
    """Each day's (central, backfilled, segments, first, last), days counting a segment only."""
    found = {}
    query = "SELECT device_id, channel, day_us, central_us, backfilled_us, segments, first_us, last_us "
    with engine.connect() as connection:
        for device, channel, day, central, backfilled, segments, first, last in connection.execute(
            text(query + "FROM coverage_days")
        ):
            if segments == 0:
                assert (central, backfilled) == (0, 0)
            else:
                found[(device, channel, day)] = (central, backfilled, segments, first, last)
    return found


def recomputed(engine: Engine) -> dict[tuple[str, int, int], tuple[int, int, int]]:
    """The summary computed in Python from the segments in the central store."""
    return {key: value[:3] for key, value in recomputed_days(engine).items()}


def recomputed_days(engine: Engine) -> dict[tuple[str, int, int], tuple[int, int, int, int, int]]:
    """Each day's (central, backfilled, segments, first, last) from the segments in the central store."""
    found: dict[tuple[str, int, int], tuple[int, int, int, int, int]] = {}
    query = text(
        "SELECT device_id, channel, start_us, end_us, source FROM segments "
        "WHERE sync_state = 'synced' AND central_deleted_at_us IS NULL"
    )
    with engine.connect() as connection:
        for device, channel, start, end, source in connection.execute(query):
            day = start - start % DAY
            while day < end:
                first, last = max(start, day), min(end, day + DAY)
                central, backfilled, segments, low, high = found.get(
                    (device, channel, day), (0, 0, 0, first, last)
                )
                found[(device, channel, day)] = (
                    central + last - first,
                    backfilled + (last - first if source == "backfill" else 0),
                    segments + 1,
                    min(low, first),
                    max(high, last),
                )
                day += DAY
    return found


def assert_central_spans_true(engine: Engine) -> None:
    """A day's central span, where the summary knows it, is the segments' (it may not know it)."""
    truth = recomputed_days(engine)
    for key, (*_, first, last) in stored_days(engine).items():
        if first is not None and last is not None:
            assert (first, last) == truth[key][3:], key


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        for table in ("deletions", "coverage_days", "segments"):
            connection.execute(text(f"DELETE FROM {table}"))


@settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    missing=st.sets(st.integers(0, 95), max_size=3),
    steps=_steps,
    window=st.tuples(st.integers(0, 48 * 60), st.integers(0, 48 * 60)),
)
def test_the_summary_follows_every_change_and_the_summary_read_equals_the_exact_one(
    catalog: Catalog,
    database: Engine,
    missing: set[int],
    steps: list[tuple[str, int, int, int, int]],
    window: tuple[int, int],
) -> None:
    reset(database)
    play(catalog, steps, record_days(catalog, missing))
    assert summary(database) == recomputed(database)
    assert_central_spans_true(database)
    first, last = sorted(window)
    start, end = DAY_BEFORE + timedelta(minutes=first), DAY_BEFORE + timedelta(minutes=last)
    for a, b in ((start, end), (DAY_BEFORE, MIDNIGHT + timedelta(days=1))):
        # Whole days, partial ones, midnight inside the window or not: the same as the exact measure.
        assert catalog.coverages(a, b, synced_only=True) == catalog.coverages(
            a, b, synced_only=True, exact=True
        )


def test_whole_days_come_from_the_summary_and_a_hole_across_midnight_is_one_hole(
    catalog: Catalog,
    database: Engine,
) -> None:
    day_before = MIDNIGHT - timedelta(days=1)
    for hour in range(48):  # two whole days of hour-long synced segments but 23:00-01:00
        start = day_before + timedelta(hours=hour)
        if start in (MIDNIGHT - timedelta(hours=1), MIDNIGHT):
            continue
        record = segment(catalog, start, timedelta(hours=1))
        catalog.mark_synced(record.id, f"key-{hour}")
    assert summary(database)[("cam-01", 1, to_micros(day_before))] == (23 * 3_600_000_000, 0, 23)
    found = catalog.coverages(day_before, MIDNIGHT + timedelta(days=1), synced_only=True)[("cam-01", 1)]
    assert (
        found
        == catalog.coverages(day_before, MIDNIGHT + timedelta(days=1), synced_only=True, exact=True)[
            ("cam-01", 1)
        ]
    )
    assert [(hole.start, hole.end) for hole in found.holes] == [
        (MIDNIGHT - timedelta(hours=1), MIDNIGHT + timedelta(hours=1))
    ]
    assert found.covered == timedelta(hours=46)
    assert found.ratio == 46 / 48
    # Channel 2 recorded nothing: the whole window is one hole, from an empty summary.
    assert catalog.coverages(day_before, MIDNIGHT, synced_only=True)[("cam-01", 2)].covered == timedelta(0)


def test_a_day_recorded_up_to_now_is_settled_by_the_summary_alone(
    catalog: Catalog,
    database: Engine,
) -> None:
    """Today, synced but for its last minutes: covered up to there without reading a segment."""
    for minute in range(0, 600, 10):  # 00:00-10:00 in ten-minute segments, all but the last synced
        start = MIDNIGHT + timedelta(minutes=minute)
        record = segment(catalog, start, timedelta(minutes=10))
        if minute < 590:
            catalog.mark_synced(record.id, f"key-{minute}")
    window = (MIDNIGHT - timedelta(hours=2), MIDNIGHT + timedelta(hours=10))
    read: list[str] = []

    def seen(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
        read.append(statement)

    event.listen(catalog._engine, "before_cursor_execute", seen)
    try:
        found = catalog.coverages(*window, synced_only=True)[("cam-01", 1)]
    finally:
        event.remove(catalog._engine, "before_cursor_execute", seen)
    assert not [statement for statement in read if "FROM segments" in statement], read
    assert [(hole.start, hole.end) for hole in found.holes] == [
        (window[0], MIDNIGHT),
        (MIDNIGHT + timedelta(minutes=590), window[1]),
    ]
    assert found == catalog.coverages(*window, synced_only=True, exact=True)[("cam-01", 1)]


def test_the_migration_backfills_the_summary_from_the_segments(
    catalog: Catalog,
    database: Engine,
    database_url: str,  # noqa: F811
) -> None:
    draw = random.Random(5)
    steps = [
        (
            draw.choice(OPERATIONS),
            draw.randrange(2),
            draw.randrange(48 * 60),
            draw.randint(1, 60),
            draw.randrange(200),
        )
        for _ in range(100)
    ]
    play(catalog, steps, record_days(catalog, {3, 30, 50}))
    kept = summary(database)
    assert kept == recomputed(database)
    assert any(day < to_micros(MIDNIGHT) for _, _, day in kept) and any(
        day >= to_micros(MIDNIGHT) for _, _, day in kept
    )
    catalog.close()
    config = alembic_config(database_url)
    command.downgrade(config, "0002")
    command.upgrade(config, "head")
    assert summary(database) == kept
    # Migration 0004 finds every day's central span.
    assert stored_days(database) == recomputed_days(database)


def test_hubs_syncing_one_day_at_once_lose_no_increment(database_url: str, database: Engine) -> None:  # noqa: F811
    # Two catalogs on one database (two hubs), four threads each, all syncing segments of one day.
    with Catalog.open(database_url) as first, Catalog.open(database_url) as second:
        records = [
            first.add_segment(
                device_id="cam-01",
                channel=1,
                start=MIDNIGHT + timedelta(minutes=index),
                end=MIDNIGHT + timedelta(minutes=index + 1),
                size=1,
                sha256="2" * 64,
                video_codec="h264",
            )
            for index in range(80)
        ]
        barrier = threading.Barrier(8)

        def work(number: int) -> None:
            catalog = first if number % 2 else second
            barrier.wait()
            for record in records[number::8]:
                catalog.mark_synced(record.id, f"key-{record.id}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
    assert (
        summary(database)
        == recomputed(database)
        == {("cam-01", 1, to_micros(MIDNIGHT)): (80 * 60_000_000, 0, 80)}
    )
