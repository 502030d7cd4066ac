"""Scale-out: channel leases in the catalog (SQLite and a real PostgreSQL), the fair-share rule,
the keeper's deadline, and two `camhub run --lease` processes sharing real RTSP streams, one of
them killed with SIGKILL."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import peers
import pytest
import structlog
from gst_peer import GstRtspServer, require_gst
from psycopg import sql
from sqlalchemy import create_engine, text
from test_catalog import DIGEST, add_camera, catalog, database_url
from test_device_cli import write_province

from camhub.catalog import Catalog, GapCause, LeaseLost, LeaseRecord
from camhub.hub import _Sink
from camhub.leases import Fence, FencedCallbacks, LeaseKeeper, LeaseSettings, holder_name, share_out
from camhub.recorder import ChannelKey, SealedSegment
from provinces import REPO

postgres_server = peers.postgres_server
__all__ = ["catalog", "database_url"]  # fixtures of test_catalog, used here by name

SECOND = timedelta(seconds=1)
_databases = itertools.count()


def keys(*numbers: int, device: str = "cam-01") -> list[ChannelKey]:
    return [ChannelKey(device, number) for number in numbers]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


# -- the fair-share rule ---------------------------------------------------------------------------


def test_share_out_splits_free_channels_between_the_hubs_alive() -> None:
    scope = keys(*range(1, 7))
    first = share_out("a", scope, {}, {"a", "b", "c"})
    assert len(first.claim) == 2 and not first.shed
    owners = dict.fromkeys(first.claim, "a")
    second = share_out("b", scope, owners, {"a", "b", "c"})
    assert len(second.claim) == 2 and not set(second.claim) & set(first.claim)


def test_share_out_the_fullest_hub_gives_back_to_a_newcomer_and_nobody_else_does() -> None:
    scope = keys(*range(1, 5))
    owners = dict(zip(scope, "aabb", strict=True))
    # c just started: it holds nothing and nothing is free.
    assert share_out("c", scope, owners, {"a", "b", "c"}).claim == []
    assert len(share_out("a", scope, owners, {"a", "b", "c"}).shed) == 1  # most channels, first name
    assert share_out("b", scope, owners, {"a", "b", "c"}).shed == []


def test_share_out_a_balanced_split_is_stable() -> None:
    scope = keys(*range(1, 6))
    owners = dict(zip(scope, "aaabb", strict=True))  # 3 and 2: as fair as five channels go
    for hub in "ab":
        decision = share_out(hub, scope, owners, {"a", "b"})
        assert decision.claim == [] and decision.shed == []


def test_share_out_claims_orphans_beyond_its_share_but_not_what_it_gave_back() -> None:
    scope = keys(*range(1, 5))
    owners = dict(zip(scope[:2], "aa", strict=True))
    # b is counted alive (its session lingers) but claims nothing: a's share is 2, yet channels
    # free for a whole interval are recorded by a rather than by nobody.
    assert share_out("a", scope, owners, {"a", "b"}).claim == []
    assert set(share_out("a", scope, owners, {"a", "b"}, orphans=scope[2:]).claim) == set(scope[2:])
    assert share_out("a", scope, owners, {"a", "b"}, orphans=scope[2:], cooling=scope[2:3]).claim == scope[3:]


def test_holder_names_are_unique_per_run_and_fit_a_postgresql_session_name() -> None:
    names = {holder_name("x" * 200) for _ in range(50)} | {holder_name("a/b")}
    assert len(names) == 51
    assert all(len("camhub-hub " + name) <= 63 and "/" not in name for name in names)
    assert all(LeaseSettings(holder=name).holder == name for name in names)
    for wrong in ("", "a/b", "x" * 53):
        with pytest.raises(ValueError, match="lease holder name"):
            LeaseSettings(holder=wrong)


# -- the catalog's lease methods (SQLite and PostgreSQL) -----------------------------------------


def test_acquire_renew_release_and_expiry(catalog: Catalog) -> None:
    add_camera(catalog, channels=2)
    both = [("cam-01", 1), ("cam-01", 2)]
    granted = catalog.acquire_leases("a", both, 30 * SECOND)
    assert [(g.channel, g.holder, g.token) for g in granted] == [(1, "a", 1), (2, "a", 1)]
    assert catalog.acquire_leases("b", both, 30 * SECOND) == []  # live: nobody takes them, not even a
    assert catalog.acquire_leases("a", both, 30 * SECOND) == []

    renewed = catalog.renew_leases("a", granted, 60 * SECOND)
    assert [r.expires_at > g.expires_at for r, g in zip(renewed, granted, strict=True)] == [True, True]
    assert catalog.renew_leases("b", granted, 60 * SECOND) == []  # not b's

    assert catalog.release_leases("a", granted[:1]) == 1
    taken = catalog.acquire_leases("b", both, 1 * SECOND)
    assert [(t.channel, t.holder, t.token) for t in taken] == [(1, "b", 2)]  # at once, token raised
    assert catalog.renew_leases("a", granted[:1], 60 * SECOND) == []  # a's old token is dead

    time.sleep(1.2)  # b's one-second lease runs out on the database's clock
    assert catalog.renew_leases("b", taken, 60 * SECOND) == []
    again = catalog.acquire_leases("b", both, 30 * SECOND)
    assert [(t.channel, t.token) for t in again] == [(1, 3)]  # every acquisition raises the token
    assert catalog.database_time() < again[0].expires_at
    assert [(lease.channel, lease.holder) for lease in catalog.leases()] == [(1, "b"), (2, "a")]
    assert [lease.channel for lease in catalog.leases(holder="a")] == [2]


def test_a_segment_written_under_a_lost_lease_is_refused(catalog: Catalog) -> None:
    add_camera(catalog, channels=2)
    first = catalog.acquire_leases("a", [("cam-01", 1)], 30 * SECOND)[0]
    now = catalog.database_time()

    def add(start: float, fence: Fence, channel: int = 1) -> Any:
        return catalog.add_segment(
            device_id="cam-01",
            channel=channel,
            start=now + start * SECOND,
            end=now + (start + 2) * SECOND,
            size=10,
            sha256=DIGEST,
            video_codec="h264",
            lease=fence,
        )

    add(0, ("a", first.token))
    catalog.release_leases("a", [first])
    second = catalog.acquire_leases("b", [("cam-01", 1)], 30 * SECOND)[0]
    with pytest.raises(
        LeaseLost, match=r"cam-01/1: a writes under lease 1, but the channel has lease 2 of b"
    ):
        add(2, ("a", first.token))  # a was paused, woke up and sealed its segment: fenced
    add(2, ("b", second.token))
    with pytest.raises(LeaseLost, match="no lease"):
        add(0, ("b", 1), channel=2)
    assert [s.start for s in catalog.segments("cam-01", 1, now, now + 60 * SECOND)] == [now, now + 2 * SECOND]


def test_the_hub_keeps_a_fenced_segment_in_its_spool_and_records_on(catalog: Catalog, tmp_path: Path) -> None:
    add_camera(catalog)
    old = catalog.acquire_leases("a", [("cam-01", 1)], 30 * SECOND)[0]
    catalog.release_leases("a", [old])
    new = catalog.acquire_leases("b", [("cam-01", 1)], 30 * SECOND)[0]
    sealed: list[Any] = []
    sink = _Sink(catalog, "thu", sealed.append)
    path = tmp_path / "segment.mp4"
    path.write_bytes(b"late footage")
    now = catalog.database_time()
    segment = SealedSegment(
        key=ChannelKey("cam-01", 1),
        path=path,
        start=now,
        end=now + 2 * SECOND,
        bytes=12,
        sha256=DIGEST,
        video_codec="h264",
        audio_codec=None,
        audio_source_codec=None,
    )
    recorder = FencedCallbacks(sink, ("a", old.token))
    with structlog.testing.capture_logs() as logs:
        recorder.segment_sealed(segment)  # a's recorder, stopped too late: no exception in its thread
    assert [entry["event"] for entry in logs] == ["segment_fenced"]
    assert path.exists() and sealed == [] and catalog.segments("cam-01", 1, now, now + SECOND) == []
    FencedCallbacks(sink, ("b", new.token)).segment_sealed(segment)
    assert [record.start for record in sealed] == [now]


def test_hubs_claiming_at_once_never_hold_a_channel_together(database_url: str) -> None:
    """Six hubs, each with its own connections, claim and renew four channels for two seconds;
    now and then one stops renewing a lease (as if it died). Every grant any hub ever saw is
    checked: one holder per token, tokens 1, 2, 3… per channel, and each acquisition after the
    previous holder's last expiry (database clock)."""
    with Catalog.open(database_url) as setup:
        add_camera(setup, channels=4)
    channels = [("cam-01", number) for number in range(1, 5)]
    seen: list[LeaseRecord] = []
    lock = threading.Lock()
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def hub(name: str) -> None:
        chance = random.Random(name)
        try:
            with Catalog.open(database_url) as catalog:
                held: list[LeaseRecord] = []
                start.wait()
                until = time.monotonic() + 2.0
                while time.monotonic() < until:
                    if held:
                        held = catalog.renew_leases(name, held, 0.3 * SECOND)
                    held += catalog.acquire_leases(name, chance.sample(channels, 4), 0.3 * SECOND)
                    with lock:
                        seen.extend(held)
                    if held and chance.random() < 0.3:
                        held.pop(chance.randrange(len(held)))  # stops renewing it: it runs out
                    time.sleep(chance.uniform(0, 0.03))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hub, args=(f"hub-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    handovers = 0
    for device_id, channel in channels:
        grants: dict[int, list[LeaseRecord]] = {}
        for lease in seen:
            if (lease.device_id, lease.channel) == (device_id, channel):
                grants.setdefault(lease.token, []).append(lease)
        tokens = sorted(grants)
        assert tokens == list(range(1, len(tokens) + 1)), tokens
        for token in tokens:
            assert len({lease.holder for lease in grants[token]}) == 1, grants[token]
        for before, after in itertools.pairwise(tokens):
            last_expiry = max(lease.expires_at for lease in grants[before])
            taken = min(lease.acquired_at for lease in grants[after])
            assert taken >= last_expiry, (channel, grants[before], grants[after])
            handovers += 1
    assert handovers >= 4  # the test did exercise takeovers


def test_a_hub_is_alive_while_announced_and_gone_when_its_process_dies(database_url: str) -> None:
    Catalog.open(database_url).close()  # create the schema
    child_code = (
        "import sys, time\n"
        "from camhub.catalog import Catalog\n"
        "catalog = Catalog.open(sys.argv[1])\n"
        "catalog.announce_hub('there')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with Catalog.open(database_url) as catalog:
        here = catalog.announce_hub("here")
        child = subprocess.Popen(
            [sys.executable, "-c", child_code, database_url], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            assert catalog.live_hubs() == {"here", "there"}
        finally:
            child.kill()
            child.communicate()
        wait_for(lambda: catalog.live_hubs() == {"here"}, 10, "the killed hub disappears")
        here.check()
        assert catalog.live_hubs() == {"here"}
        here.close()
        assert catalog.live_hubs() == frozenset()


# -- the keeper ------------------------------------------------------------------------------------


class Board:
    """The recorders of several keepers in one process, checking that no channel is recorded twice."""

    def __init__(self) -> None:
        self.recording: dict[ChannelKey, str] = {}
        self.twice: list[ChannelKey] = []
        self.stopped_at: dict[ChannelKey, datetime] = {}
        self.started_at: dict[ChannelKey, datetime] = {}

    def control(self, hub: str) -> Any:
        board = self

        class Control:
            def start_recording(self, key: ChannelKey, fence: Fence) -> None:
                assert fence[0] == hub
                if key in board.recording:
                    board.twice.append(key)
                board.recording[key] = hub
                board.started_at[key] = datetime.now(UTC)

            def stop_recording(self, keys: Sequence[ChannelKey]) -> Callable[[], None]:
                for key in keys:
                    if board.recording.get(key) == hub:
                        del board.recording[key]
                        board.stopped_at[key] = datetime.now(UTC)
                return lambda: None

        return Control()

    def of(self, hub: str) -> list[ChannelKey]:
        return sorted((key for key, holder in self.recording.items() if holder == hub), key=str)


def test_keepers_share_fairly_and_a_dead_hubs_channels_move_within_the_period(database_url: str) -> None:
    with Catalog.open(database_url) as setup:
        add_camera(setup, channels=6)
    scope = keys(*range(1, 7))
    board = Board()
    period = 1.5

    async def scenario() -> None:
        with Catalog.open(database_url) as first, Catalog.open(database_url) as second:
            a = LeaseKeeper(first, LeaseSettings(holder="a", period=period), scope, board.control("a"))
            b = LeaseKeeper(second, LeaseSettings(holder="b", period=period), scope, board.control("b"))
            stop = asyncio.Event()
            a.start(stop)
            b.start(stop)
            deadline = time.monotonic() + 10
            while not (len(board.of("a")) == len(board.of("b")) == 3):
                assert time.monotonic() < deadline, board.recording
                await asyncio.sleep(0.05)
            await asyncio.sleep(2 * period)  # and it stays so: no flapping
            assert len(board.of("a")) == len(board.of("b")) == 3
            moved = board.of("a")
            # a dies: it stops renewing and its announcement ends, but it releases nothing.
            assert a._task is not None and a._announcement is not None
            a._task.cancel()
            a._announcement.close()
            died = datetime.now(UTC)
            for key in moved:
                del board.recording[key]  # a dead process records nothing
            while len(board.of("b")) < 6:
                assert datetime.now(UTC) - died < (period + 1.0) * SECOND, board.recording
                await asyncio.sleep(0.05)
            for key in moved:
                assert board.started_at[key] - died < (period + 0.5) * SECOND
            stop.set()
            await b.close()
            assert board.recording == {}
            assert [lease for lease in second.leases() if lease.expires_at > second.database_time()] == []

    asyncio.run(scenario())
    assert board.twice == []


def test_a_hub_cut_off_from_the_catalog_stops_recording_before_its_lease_runs_out(
    postgres_server: peers.PostgresServer,
) -> None:
    name = f"cutoff_{next(_databases)}"
    url = postgres_server.create_database(name)
    board = Board()
    period = 3.0
    try:
        with Catalog.open(url) as catalog:
            add_camera(catalog, channels=2)
            keeper = LeaseKeeper(
                catalog, LeaseSettings(holder="a", period=period), keys(1, 2), board.control("a")
            )

            async def scenario() -> datetime:
                stop = asyncio.Event()
                keeper.start(stop)
                while len(board.of("a")) < 2:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(period)  # a few renewals
                cut = datetime.now(UTC)
                await asyncio.to_thread(_refuse_connections, postgres_server, name)
                while board.of("a"):
                    await asyncio.sleep(0.05)
                stop.set()
                await keeper.close()
                return cut

            cut = asyncio.run(scenario())
            _allow_connections(postgres_server, name)
            leases = {(lease.device_id, lease.channel): lease for lease in catalog.leases()}
            for key in keys(1, 2):
                stopped = board.stopped_at[key]
                expires = leases[(key.device_id, key.channel)].expires_at
                # It stopped at least the guard (period/4) before its lease ran out, and not before
                # the last renewal's lease had run a good part of its course.
                assert stopped <= expires - period / 4 * SECOND, (stopped, expires)
                assert stopped - cut > period / 4 * SECOND
    finally:
        _allow_connections(postgres_server, name)
        postgres_server.drop_database(name)


def _refuse_connections(server: peers.PostgresServer, name: str) -> None:
    """The catalog becomes unreachable: no new connections, every open one cut."""
    with server._admin() as connection:
        connection.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
        connection.execute(
            sql.SQL("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}").format(
                sql.Literal(name)
            )
        )


def _allow_connections(server: peers.PostgresServer, name: str) -> None:
    with server._admin() as connection:
        connection.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(name)))


# -- acceptance: two `camhub run --lease` processes, one killed --------------------------------


PERIOD = 4.0
PASSWORD = "cam-Pässword-lease"


@pytest.fixture
def stream() -> Iterator[GstRtspServer]:
    require_gst()
    mounts = {"/cam": "h264;width=320;height=180;fps=10;gop=10;bitrate=200"}
    with GstRtspServer(mounts, user="admin", password=PASSWORD) as server:
        yield server


def fleet_yaml(port: int, path: Path) -> Path:
    """One encoder whose four channels all stream the same mount (one shared pipeline: cheap)."""
    channels = ", ".join(f"{{id: {n}}}" for n in range(1, 5))
    streams = ", ".join(f"{{channel: {n}, main: /cam}}" for n in range(1, 5))
    return write_province(
        path,
        f"{{id: enc-1, vendor: rtsp, kind: encoder, host: 127.0.0.1, rtsp_port: {port}, credentials: site, "
        f"channels: [{channels}], streams: [{streams}]}}",
    )


def run_hub(config: Path, url: str, data: Path, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "camhub",
            "--log-level",
            "info",
            "run",
            str(config),
            "--catalog",
            url,
            "--lease",
            "--lease-seconds",
            str(PERIOD),
            "--hub-name",
            name,
            "--segment-seconds",
            "2",
            "--data-dir",
            str(data),
        ],
        cwd=REPO,
        text=True,
        env={**os.environ, "TOY_PW": PASSWORD},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_hubs_share_the_channels_and_a_killed_ones_move_without_overlap(
    stream: GstRtspServer, postgres_server: peers.PostgresServer, tmp_path: Path
) -> None:
    name = f"scaleout_{next(_databases)}"
    url = postgres_server.create_database(name)
    config = fleet_yaml(stream.port, tmp_path / "fleet.yaml")
    a = run_hub(config, url, tmp_path / "a", "hub-a")
    b = run_hub(config, url, tmp_path / "b", "hub-b")
    try:
        with Catalog.open(url) as catalog:
            channels = [("enc-1", n) for n in range(1, 5)]

            def holders() -> dict[tuple[str, int], str]:
                for hub in (a, b):
                    if hub.poll() is not None and hub not in dead:
                        raise AssertionError(f"a hub stopped: {hub.communicate()[1]}")
                now = catalog.database_time()
                return {
                    (lease.device_id, lease.channel): lease.holder.split("-")[1]
                    for lease in catalog.leases()
                    if lease.expires_at > now
                }

            def recorded_by(hub: str, channel: tuple[str, int], since: datetime) -> list[Any]:
                return [
                    s
                    for s in catalog.segments(*channel, since, since + timedelta(hours=1))
                    if str(s.local_path).startswith(str(tmp_path / hub))
                ]

            started, dead = datetime.now(UTC), []
            # Both ran their fair share: two channels each, each sealing segments.
            wait_for(lambda: sorted(holders().values()) == ["a", "a", "b", "b"], 60, "two channels each")
            share = holders()
            wait_for(
                lambda: all(len(recorded_by(hub, channel, started)) >= 2 for channel, hub in share.items()),
                30,
                "each hub records its share",
            )
            status = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "camhub",
                    "status",
                    str(config),
                    "--catalog",
                    url,
                    "--data-dir",
                    str(tmp_path / "a"),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
                env={**os.environ, "COLUMNS": "200", "TOY_PW": PASSWORD},
            )
            assert status.returncode == 0, status.stderr
            assert status.stdout.count("hub-a-") >= 2 and status.stdout.count("hub-b-") >= 2, status.stdout

            dead.append(a)
            a.send_signal(signal.SIGKILL)
            a.wait()
            killed = datetime.now(UTC)
            moved = [channel for channel, hub in share.items() if hub == "a"]
            wait_for(lambda: set(holders().values()) == {"b"} and len(holders()) == 4, PERIOD + 3, "takeover")
            wait_for(
                lambda: all(recorded_by("b", channel, killed) for channel in moved),
                PERIOD + 15,
                "b records a's channels",
            )
            for channel in moved:
                first = min(s.start for s in recorded_by("b", channel, killed))
                # Resumed within the lease period, plus the time to connect and wait for a keyframe.
                assert first - killed < (PERIOD + 2.5) * SECOND, (channel, first, killed)
                last_of_a = max(s.end for s in recorded_by("a", channel, started))
                assert last_of_a <= first
                # The handover itself is accounted for: a gap from a's last segment on.
                handover = [g for g in catalog.gaps(*channel, last_of_a, first) if g.start == last_of_a]
                assert [(g.cause, g.detail) for g in handover] == [
                    (GapCause.OTHER, "not recorded: no recorder was running")
                ], catalog.gaps(*channel, last_of_a, first)
                assert handover[0].end is not None and handover[0].end <= first
    finally:
        for hub in (a, b):
            if hub.poll() is None:
                hub.send_signal(signal.SIGTERM)
        _, b_err = b.communicate(timeout=40)
        a.communicate(timeout=10)
    assert b.returncode == 0, b_err
    for problem in ("segment_fenced", "SegmentOverlap", "recorder_failed", "Traceback"):
        assert problem not in b_err, b_err
    with Catalog.open(url) as catalog:
        overlaps = _overlapping_segments(url)
        assert overlaps == [], overlaps
        now = catalog.database_time()
        assert [lease for lease in catalog.leases() if lease.expires_at > now] == []  # b released on stop
        for channel in channels:
            assert len(catalog.segments(*channel, started, now)) >= 3
    postgres_server.drop_database(name)


def _overlapping_segments(url: str) -> list[Any]:
    """Pairs of segments of one channel that overlap, asked of the database itself."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    text(
                        "SELECT x.device_id, x.channel, x.id, y.id FROM segments x JOIN segments y "
                        "ON x.device_id = y.device_id AND x.channel = y.channel AND x.id < y.id "
                        "AND x.start_us < y.end_us AND y.start_us < x.end_us"
                    )
                )
            )
    finally:
        engine.dispose()
