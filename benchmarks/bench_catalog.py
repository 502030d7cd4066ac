"""Benchmark: catalog range queries and the coverage report on a province-sized catalog (issue #5).

Builds (once; cached under ``/tmp/camhub-bench-catalog``) a catalog holding a week of
60-second segments for a generated province of about 2,000 channels — 20 million segment rows —
on SQLite and on PostgreSQL (a cluster of its own in the cache folder, started and stopped by
this script), then measures side by side:

(a) one channel-day (1,440 segments): ``Catalog.segments`` against the same SQL run by the bare
    driver (``sqlite3`` / ``psycopg``, rows as tuples) and, on PostgreSQL, the server's own
    execution time (``EXPLAIN ANALYZE``): the floor of any client. Goal: under 10 ms.
(b) the central coverage report of the whole province over 7 days (``camhub.coverage.report``,
    what ``camhub coverage`` prints; it reads the per-day summary ``coverage_days`` of migration
    0003 and measures only the days with holes), against the bare driver reading the window's
    ``coverage_days`` rows, the bare driver running the aggregate over the week's segments (how
    the report worked before 0003), and the plainest scan there is (count and sum of every
    channel's segments in the window). Goal: under 5 s.

The data has what a real week has: 5 % of the channels lost two hours (with a gap row), 1 % of
them got one hour back by backfill, and every channel's last ten minutes wait for upload.

    python benchmarks/bench_catalog.py [--channels 2000] [--days 7] [--runs 30] [--backend both]
                                       [--only day|coverage]
                                       [--rebuild] [--build-only] [--stop]

Each channel-day of (a) is read once before it is timed (a warm cache). A cached catalog of an
older schema is migrated when the benchmark opens it (then analysed again).

The PostgreSQL cluster keeps running between runs (``--stop`` stops it at the end). Building
takes a few minutes per backend and about 10 GB of disk each for 20 million rows.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pwd
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

import camhub
from camhub.catalog import Catalog, GapCause
from camhub.province import ProvinceConfig

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from make_big_province import make_province  # noqa: E402
from peers import postgres_bindir  # noqa: E402

CACHE = Path(os.environ.get("CAMHUB_BENCH_CACHE", "/tmp/camhub-bench-catalog"))
#: The week starts here (a Monday, 00:00 UTC); the report's window is the whole week.
T0 = datetime(2026, 3, 2, tzinfo=UTC)
SEGMENT_US = 60_000_000
#: PostgreSQL settings of the benchmark cluster (23 GB of RAM, shared by several people).
PG_SETTINGS = {
    "shared_buffers": "2GB",
    "effective_cache_size": "8GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_parallel_workers_per_gather": "1",  # two cores, shared: one helper at most
    "jit": "off",  # JIT compiles for ~100 ms on a 20 M-row plan and wins nothing back here
    "fsync": "off",  # a throwaway cluster: speed of loading over durability
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "listen_addresses": "''",  # the Unix socket only
}
INDEXES = (
    "ix_segments_channel_span",
    "ix_segments_unsynced",
    "uq_segments_storage_key",
    "ix_segments_local",
    "ix_segments_central",
)


def analyze(dialect: str, connect: Callable[[], Any]) -> None:
    """Planner statistics; on PostgreSQL also the visibility map that makes index-only scans possible."""
    with connect() as connection:
        if dialect == "sqlite":
            connection.execute("ANALYZE")
        else:
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE segments")


def province_of(channels: int, folder: Path) -> ProvinceConfig:
    """The generated province with the fewest devices that have at least ``channels`` channels."""
    host = camhub.PluginHost.from_installed()

    def load(devices: int) -> ProvinceConfig:
        return camhub.load_config(make_province(devices, folder / "province.yaml"), host=host)

    low, high = 1, channels
    while low < high:
        middle = (low + high) // 2
        if sum(len(d.effective_channels()) for d in load(middle).devices) >= channels:
            high = middle
        else:
            low = middle + 1
    return load(low)


# -- building the catalogs ------------------------------------------------------------------------
def segment_rows_sql(dialect: str, per_channel: int) -> str:
    """One INSERT … SELECT making every segment of every channel in the database, time-major (as a
    hub writes them: each minute, every channel), never leaving the database."""
    sha = (
        "printf('%064x', n.i * 100000 + c.k)"
        if dialect == "sqlite"
        else "lpad(to_hex(n.i * 100000 + c.k), 64, '0')"
    )
    lost = "(c.k % 20 = 0 AND n.i BETWEEN 3000 AND 3119)"  # 5 % of the channels: 2 h lost
    backfilled = "(c.k % 100 = 0 AND n.i BETWEEN 3000 AND 3059)"  # 1 %: 1 h of it backfilled
    pending = f"n.i >= {per_channel - 10}"
    return f"""
WITH RECURSIVE n(i) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {per_channel - 1}),
c AS (SELECT device_id, channel, row_number() OVER (ORDER BY device_id, channel) AS k FROM channels)
INSERT INTO segments (device_id, channel, start_us, end_us, duration_us, bytes, sha256, video_codec,
    audio_codec, audio_source_codec, container, local_path, storage_key, sync_state, synced_at_us,
    sync_failures, sync_error, source, backfill_source, created_at_us)
SELECT c.device_id, c.channel, :t0 + n.i * {SEGMENT_US}, :t0 + (n.i + 1) * {SEGMENT_US}, {SEGMENT_US},
    15000000 + c.k, {sha}, 'h264', 'aac', NULL, 'mp4',
    CASE WHEN {pending} THEN 'spool/' || c.device_id || '/' || n.i || '.mp4' END,
    CASE WHEN {pending} THEN NULL ELSE 'bench/' || c.device_id || '/' || c.channel || '/' || n.i || '.mp4' END,
    CASE WHEN {pending} THEN 'pending' ELSE 'synced' END,
    CASE WHEN {pending} THEN NULL ELSE :t0 + (n.i + 2) * {SEGMENT_US} END,
    0, NULL,
    CASE WHEN {backfilled} THEN 'backfill' ELSE 'live' END,
    CASE WHEN {backfilled} THEN 'nvr:' || c.device_id END,
    :t0 + (n.i + 1) * {SEGMENT_US}
FROM n CROSS JOIN c
WHERE NOT {lost} OR {backfilled}
"""


def _migration(name: str) -> Any:
    return importlib.import_module(f"camhub.catalog.migrations.versions.{name}")


def revision(connect: Callable[[], Any]) -> str | None:
    """The catalog's schema revision (None before the first)."""
    with connect() as connection:
        try:
            return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])
        except (sqlite3.Error, psycopg.Error):
            return None


def fill(catalog: Catalog, province: ProvinceConfig, days: int, connect: Callable[[], Any]) -> None:
    """Devices, channels and gaps through the catalog; segments in one statement, indexes after."""
    for device in province.devices:
        catalog.upsert_device(
            device.id,
            unit=device.unit or "",
            vendor=device.vendor,
            kind=device.kind,
            host=device.host,
            seen_at=T0,
        )
        catalog.upsert_channels(device.id, device.effective_channels())
    channels = sorted((d.id, c.id) for d in province.devices for c in d.effective_channels())
    for k, (device_id, channel) in enumerate(channels, start=1):
        if k % 20 == 0:
            gap = catalog.open_gap(
                device_id, channel, T0 + timedelta(minutes=3000), GapCause.UNREACHABLE, "bench"
            )
            catalog.close_gap(gap, T0 + timedelta(minutes=3120), closed_by="reconnected")
    per_channel = days * 1440
    dialect = catalog.backend
    with connect() as connection:
        definitions = []
        for name in INDEXES:
            if dialect == "sqlite":
                row = connection.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
            else:
                row = connection.execute(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (name,)
                ).fetchone()
            definitions.append(row[0])
            connection.execute(f"DROP INDEX {name}")
        started = time.perf_counter()
        statement = segment_rows_sql(dialect, per_channel).replace(
            ":t0", str((T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1))
        )
        connection.execute(statement)
        connection.execute(_migration("0003_coverage_days")._BACKFILL)
        connection.commit()
        print(f"  {dialect}: rows and coverage_days in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        for definition in definitions:
            connection.execute(definition)
        connection.execute(_migration("0004_channel_rows").fill_spans(dialect))
        connection.commit()
        print(f"  {dialect}: indexes and coverage spans in {time.perf_counter() - started:.0f} s", flush=True)
    analyze(dialect, connect)


# -- PostgreSQL cluster ---------------------------------------------------------------------------
class Cluster:
    """The benchmark's own PostgreSQL cluster in the cache folder (Unix socket only, trust auth)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        bindir = postgres_bindir()
        if bindir is None:
            raise SystemExit("PostgreSQL is not installed (no initdb/pg_ctl): see tests/peers.py")
        self.bindir = bindir
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bindir / tool), *args], check=True, capture_output=True)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.prefix:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
        if not self.data.exists():
            self._run(
                "initdb",
                f"--pgdata={self.data}",
                "--username=camhub",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
        if (self.data / "postmaster.pid").exists():
            return
        options = " ".join(f"-c {name}={value}" for name, value in PG_SETTINGS.items())
        self._run(
            "pg_ctl",
            "start",
            f"--pgdata={self.data}",
            f"--log={self.root / 'server.log'}",
            "--wait",
            f"--options={options} -c unix_socket_directories={self.root} -c port=5499",
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", f"--pgdata={self.data}", "--mode=fast", "--wait")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://camhub@/{database}?host={self.root}&port=5499"

    def connect(self, database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(host=str(self.root), port=5499, user="camhub", dbname=database)


# -- measuring ------------------------------------------------------------------------------------
def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def compiled(catalog: Catalog, statement: Any) -> str:
    return str(statement.compile(dialect=catalog._engine.dialect, compile_kwargs={"literal_binds": True}))


def measure(
    name: str,
    catalog: Catalog,
    province: ProvinceConfig,
    days: int,
    runs: int,
    raw: Callable[[], Any],
    results: dict[str, Any],
    only: str | None,
) -> None:
    channels = sorted((d.id, c.id) for d in province.devices for c in d.effective_channels())
    rng = random.Random(5)
    days_asked = []
    for _ in range(runs):
        start = T0 + timedelta(days=rng.randrange(days))
        days_asked.append((*rng.choice(channels), start, start + timedelta(days=1)))
    sql = [compiled(catalog, catalog.segments_query(*asked)) for asked in days_asked]
    with raw() as connection:
        # Each channel-day is read once by both first (a warm cache, as for a channel people
        # watch), then timed by both alternately: the same rows, the same pages.
        a: dict[str, float] = {}
        if only in (None, "day"):
            for asked, text in zip(days_asked, sql, strict=True):
                assert len(catalog.segments(*asked)) in (1440, 1430, 1380, 1320)
                connection.execute(text).fetchall()
            camhub_ms, driver_ms, server_ms = [], [], []
            for asked, text in zip(days_asked, sql, strict=True):
                started = time.perf_counter()
                catalog.segments(*asked)
                camhub_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                connection.execute(text).fetchall()
                driver_ms.append((time.perf_counter() - started) * 1000)
                if catalog.backend == "postgresql":
                    plan = connection.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {text}").fetchone()[0]
                    server_ms.append(float(plan[0]["Execution Time"]))
            a["camhub Catalog.segments ms"] = statistics.median(camhub_ms)
            a["bare driver, same SQL ms"] = statistics.median(driver_ms)
            if server_ms:
                a["server execution ms"] = statistics.median(server_ms)
        window = (T0, T0 + timedelta(days=days))
        coverage_runs = max(3, runs // 10)

        from camhub.coverage import report

        def camhub_report() -> None:
            result = report(province, catalog, *window)
            assert len(result.channels) == len(channels)

        lo, hi = (to_us(t) for t in window)
        # The report reads coverage_days; its former way, one aggregate over the week's segments,
        # stays as a peer (with the plainest scan of them).
        days_read = f"SELECT * FROM coverage_days WHERE day_us >= {lo} AND day_us < {hi}"
        aggregate = compiled(catalog, catalog._tally(lo, hi, None, True))
        plain = (
            f"SELECT device_id, channel, count(*), sum(end_us - start_us) FROM segments "
            f"WHERE start_us >= {lo - 3600_000_000} AND start_us < {hi} AND end_us > {lo} "
            f"GROUP BY device_id, channel"
        )
        b: dict[str, float] = {}
        if only in (None, "coverage"):
            b = {
                "camhub coverage report s": median_ms(camhub_report, coverage_runs) / 1000,
                "bare driver, coverage_days of the window s": median_ms(
                    lambda: connection.execute(days_read).fetchall(), coverage_runs
                )
                / 1000,
                "bare driver, aggregate over the segments s": median_ms(
                    lambda: connection.execute(aggregate).fetchall(), coverage_runs
                )
                / 1000,
                "plainest scan (count, sum per channel) s": median_ms(
                    lambda: connection.execute(plain).fetchall(), coverage_runs
                )
                / 1000,
            }
    results[name] = {"channel-day": a, "coverage": b}
    print(json.dumps({name: results[name]}, indent=2), flush=True)


def to_us(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@contextmanager
def sqlite_connection(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA cache_size=-32768")  # as camhub's own connections
        yield connection
    finally:
        connection.close()


@contextmanager
def pg_connection(cluster: Cluster, database: str) -> Iterator[psycopg.Connection[Any]]:
    with cluster.connect(database) as connection:
        yield connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rebuild", action="store_true", help="Build the catalogs again.")
    parser.add_argument("--only", choices=("day", "coverage"), help="Measure only (a) or (b).")
    parser.add_argument("--build-only", action="store_true", help="Build (if needed), measure nothing.")
    parser.add_argument("--stop", action="store_true", help="Stop the PostgreSQL cluster at the end.")
    args = parser.parse_args()
    folder = CACHE / f"{args.channels}ch-{args.days}d"
    folder.mkdir(parents=True, exist_ok=True)
    province = province_of(args.channels, folder)
    count = sum(len(d.effective_channels()) for d in province.devices)
    print(
        f"province: {len(province.devices)} devices, {count} channels, {args.days} days: "
        f"{count * args.days * 1440:,} segment slots",
        flush=True,
    )
    results: dict[str, Any] = {}
    if args.backend in ("sqlite", "both"):
        path = folder / "catalog.db"
        if args.rebuild:
            for leftover in folder.glob("catalog.db*"):
                leftover.unlink()
        fresh = not path.exists()
        before = None if fresh else revision(lambda: sqlite_connection(path))
        with Catalog.open(path) as catalog:
            migrated = not fresh and revision(lambda: sqlite_connection(path)) != before
            if fresh:
                fill(catalog, province, args.days, lambda: sqlite_connection(path))
            if migrated:
                analyze("sqlite", lambda: sqlite_connection(path))
            if not args.build_only:
                measure(
                    "SQLite",
                    catalog,
                    province,
                    args.days,
                    args.runs,
                    lambda: sqlite_connection(path),
                    results,
                    args.only,
                )
    if args.backend in ("postgresql", "both"):
        cluster = Cluster(folder / "pg")
        cluster.start()
        try:
            database = "catalog"
            with cluster.connect("postgres") as admin:
                admin.autocommit = True
                exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if exists and args.rebuild:
                    admin.execute(f"DROP DATABASE {database}")
                    exists = None
                if not exists:
                    admin.execute(f"CREATE DATABASE {database}")
            before = revision(lambda: pg_connection(cluster, database)) if exists else None
            with Catalog.open(cluster.url(database)) as catalog:
                if not exists:
                    fill(catalog, province, args.days, lambda: pg_connection(cluster, database))
                if exists and revision(lambda: pg_connection(cluster, database)) != before:
                    analyze("postgresql", lambda: pg_connection(cluster, database))
                if not args.build_only:
                    measure(
                        "PostgreSQL",
                        catalog,
                        province,
                        args.days,
                        args.runs,
                        lambda: pg_connection(cluster, database),
                        results,
                        args.only,
                    )
        finally:
            if args.stop:
                cluster.stop()
    if results:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
