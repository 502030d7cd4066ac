"""Central coverage (issue #5 item 4): shares and gap causes on SQLite and PostgreSQL, the
verification of central objects on the folder store and on a real SeaweedFS, and ``camhub coverage``."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peers
import pytest
from seaweed_peer import SeaweedS3, require_weed
from sqlalchemy import create_engine, make_url, update
from test_catalog import database_url  # the same SQLite file / fresh PostgreSQL database per test
from test_cli import camhub

from camhub import PluginHost, load_config
from camhub.catalog import Catalog, GapCause, SegmentSource
from camhub.catalog._schema import SegmentRow
from camhub.coverage import DELETED, UNRECORDED, Missing, report, to_json, verify
from camhub.province import ProvinceConfig
from camhub.storage import FilesystemStorage, Storage, segment_key
from provinces import BASE

postgres_server = peers.postgres_server
__all__ = ["database_url"]

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# A second unit under huyen-a with a two-channel recorder, beside BASE's cam-1 at xa-b.
PROVINCE = BASE.replace(
    "people:\n",
    textwrap.indent(
        textwrap.dedent(
            """\
            - id: xa-c
              name: Xã Gia Canh
              level: commune
              parent: huyen-a
              managing_body: ubnd-xa
              devices:
                - id: nvr-1
                  vendor: hikvision
                  kind: nvr
                  host: 127.0.0.2
                  credentials: site
                  channels: [{id: 1, name: "Cổng [chính]"}, {id: 2, name: Sảnh}]
            """
        ),
        "  ",
    )
    + "storage: {central: {backend: filesystem, path: central}}\npeople:\n",
    1,
)


def minute(n: float) -> datetime:
    return T0 + n * MINUTE


@pytest.fixture
def province(tmp_path: Path) -> ProvinceConfig:
    path = tmp_path / "province.yaml"
    path.write_text(PROVINCE, encoding="utf-8")
    return load_config(path, host=PluginHost.from_installed())


def register(catalog: Catalog, province: ProvinceConfig) -> None:
    for device in province.devices:
        catalog.upsert_device(
            device.id, unit=device.unit or "", vendor=device.vendor, kind=device.kind, host=device.host
        )
        catalog.upsert_channels(device.id, device.effective_channels())


def record(
    catalog: Catalog,
    device: str,
    channel: int,
    start: datetime,
    end: datetime,
    *,
    synced: bool = True,
    storage: Storage | None = None,
    source: SegmentSource = SegmentSource.LIVE,
) -> str:
    """A segment (with an object in ``storage`` when given); returns its storage key."""
    body = os.urandom(2048)
    key = segment_key("thu", device, channel, start, end)
    segment = catalog.add_segment(
        device_id=device,
        channel=channel,
        start=start,
        end=end,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        video_codec="h264",
        source=source,
        backfill_source="nvr:nvr-1" if source is SegmentSource.BACKFILL else None,
        allow_overlap=source is SegmentSource.BACKFILL,
    )
    if storage is not None:
        handle, name = tempfile.mkstemp()
        os.write(handle, body)
        os.close(handle)
        storage.put(key, Path(name), segment.sha256)
        os.unlink(name)
    if synced:
        catalog.mark_synced(segment.id, key)
    return key


def record_minutes(
    catalog: Catalog,
    device: str,
    channel: int,
    minutes: range,
    *,
    synced: bool = True,
    storage: Storage | None = None,
) -> list[str]:
    return [
        record(catalog, device, channel, minute(m), minute(m + 1), synced=synced, storage=storage)
        for m in minutes
    ]


def delete_centrally(database_url: str, key: str) -> None:
    """What retention does to a segment whose central copy it deleted (written from outside)."""
    url = make_url(database_url) if "://" in database_url else make_url(f"sqlite:///{database_url}")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            update(SegmentRow)
            .where(SegmentRow.storage_key == key)
            .values(central_deleted_at=T0 + timedelta(days=8))
        )
    engine.dispose()


@pytest.fixture
def hour(database_url: str, province: ProvinceConfig) -> Iterator[Catalog]:
    """An hour ``[T0, T0 + 60 min)`` of cam-1 with one missing span of every cause, nvr-1 channel 2
    complete and channel 1 never recorded."""
    with Catalog.open(database_url) as catalog:
        register(catalog, province)
        record_minutes(catalog, "cam-1", 1, range(10))
        gap = catalog.open_gap("cam-1", 1, minute(10), GapCause.UNREACHABLE, "connection refused")
        catalog.close_gap(gap, minute(13), closed_by="reconnected")
        record_minutes(catalog, "cam-1", 1, range(13, 20))
        record_minutes(catalog, "cam-1", 1, range(20, 22), synced=False)  # waiting in the spool
        record_minutes(catalog, "cam-1", 1, range(22, 30))
        stall = catalog.open_gap("cam-1", 1, minute(30), GapCause.STALL, "no packet for 10 s")
        catalog.close_gap(stall, minute(31), closed_by="backfill")
        record(catalog, "cam-1", 1, minute(30), minute(31), source=SegmentSource.BACKFILL)
        deleted = record_minutes(catalog, "cam-1", 1, range(31, 55))[9]  # minute 40
        delete_centrally(database_url, deleted)
        # Minutes 55–60: nothing at all (no hub was recording).
        record_minutes(catalog, "nvr-1", 2, range(60))
        yield catalog


def test_shares_and_causes_of_every_missing_span(hour: Catalog, province: ProvinceConfig) -> None:
    result = report(province, hour, minute(0), minute(60))
    assert [(c.device_id, c.channel) for c in result.channels] == [("cam-1", 1), ("nvr-1", 1), ("nvr-1", 2)]
    cam, never, complete = result.channels
    assert cam.unit == "xa-b"
    assert cam.missing == (
        Missing(start=minute(10), end=minute(13), cause="unreachable", detail="connection refused", gap_id=1),
        Missing(start=minute(20), end=minute(22), cause=GapCause.UNSYNCED.value, detail="pending"),
        Missing(start=minute(40), end=minute(41), cause=DELETED, detail="deleted from the central store"),
        Missing(start=minute(55), end=minute(60), cause=UNRECORDED),
    )
    assert cam.covered == 49 * MINUTE
    assert cam.backfilled == MINUTE  # the stall was closed by a backfilled segment: present
    assert cam.ratio == pytest.approx(49 / 60)
    assert not cam.complete
    assert never.covered == timedelta(0)
    assert never.missing == (Missing(start=minute(0), end=minute(60), cause=UNRECORDED),)
    assert complete.complete and complete.ratio == 1.0 and complete.missing == ()
    assert result.ratio == pytest.approx((49 + 0 + 60) / 180)
    assert not result.complete
    # The window cuts segments and gaps at its edges.
    edge = report(province, hour, minute(11.5), minute(20.5), unit="xa-b").channels[0]
    assert edge.covered == 7 * MINUTE
    assert [(m.start, m.end, m.cause) for m in edge.missing] == [
        (minute(11.5), minute(13), "unreachable"),
        (minute(20), minute(20.5), "unsynced"),
    ]


def test_an_open_gap_explains_the_hole_up_to_the_window_end(
    database_url: str, province: ProvinceConfig
) -> None:
    with Catalog.open(database_url) as catalog:
        register(catalog, province)
        record_minutes(catalog, "cam-1", 1, range(5))
        catalog.open_gap("cam-1", 1, minute(5), GapCause.AUTH, "401")
        (cam,) = report(province, catalog, minute(0), minute(10), unit="xa-b").channels
        assert cam.missing == (
            Missing(start=minute(5), end=minute(10), cause="auth", detail="401", gap_id=1),
        )


def test_unit_scope_is_the_subtree(hour: Catalog, province: ProvinceConfig) -> None:
    def channels(unit: str | None) -> list[str]:
        return [
            f"{c.device_id}/{c.channel}" for c in report(province, hour, T0, minute(60), unit=unit).channels
        ]

    assert channels("xa-b") == ["cam-1/1"]
    assert channels("xa-c") == ["nvr-1/1", "nvr-1/2"]
    assert channels("huyen-a") == channels("thu") == channels(None) == ["cam-1/1", "nvr-1/1", "nvr-1/2"]
    with pytest.raises(ValueError, match="no unit 'nowhere' in province 'thu'"):
        report(province, hour, T0, minute(60), unit="nowhere")


def test_json_lists_every_missing_span_with_its_cause(hour: Catalog, province: ProvinceConfig) -> None:
    document = json.loads(json.dumps(to_json(report(province, hour, minute(0), minute(60), unit="xa-b"))))
    (cam,) = document["channels"]
    assert cam["coverage"] == pytest.approx(49 / 60)
    assert cam["backfilled_seconds"] == 60
    assert [(m["cause"], m["seconds"]) for m in cam["missing"]] == [
        ("unreachable", 180),
        ("unsynced", 120),
        ("deleted", 60),
        ("unrecorded", 300),
    ]
    assert document["verification"] is None


# -- verification ---------------------------------------------------------------------------------


def flip_bit(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verification_reports_a_flipped_bit_and_a_missing_object_in_a_folder_store(
    database_url: str, province: ProvinceConfig, tmp_path: Path
) -> None:
    storage = FilesystemStorage(tmp_path / "central")
    with Catalog.open(database_url) as catalog:
        register(catalog, province)
        keys = record_minutes(catalog, "cam-1", 1, range(30), storage=storage)
        record_minutes(catalog, "nvr-1", 2, range(30), storage=storage)
        record(
            catalog, "nvr-1", 2, minute(30), minute(31), storage=storage, synced=False
        )  # not central: unread
        result = report(province, catalog, minute(0), minute(31))
        clean = verify(result, catalog, storage, workers=3)
        assert clean.ok and clean.checked == 60 and clean.size == 60 * 2048

        flip_bit(storage.root.joinpath(*keys[7].split("/")))
        storage.root.joinpath(*keys[20].split("/")).unlink()
        seen: list[int] = []
        found = verify(result, catalog, storage, workers=2, progress=seen.append)
    assert sorted(seen) == list(range(1, 61))
    assert not found.ok and found.checked == 60
    assert [(p.key, p.device_id, p.channel, p.problem) for p in found.problems] == [
        (keys[7], "cam-1", 1, "mismatch"),
        (keys[20], "cam-1", 1, "missing"),
    ]
    assert "SHA-256" in found.problems[0].detail


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path, province: ProvinceConfig) -> tuple[Path, Path, list[str]]:
    """A hub's data folder whose catalog (SQLite) and central folder hold the last 25 hours in
    10-minute segments: nvr-1 complete (with objects), cam-1 with an outage of 10 minutes an hour ago."""
    data = tmp_path / "data"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    step = 10 * MINUTE
    storage = FilesystemStorage(data / "central")
    keys = []
    with Catalog.open(data / "catalog.db") as catalog:
        register(catalog, province)
        for n in range(-150, 1):
            start = now + n * step
            for channel in (1, 2):
                keys.append(record(catalog, "nvr-1", channel, start, start + step, storage=storage))
            if n != -7:
                record(catalog, "cam-1", 1, start, start + step)
        gap = catalog.open_gap("cam-1", 1, now - 7 * step, GapCause.UNREACHABLE, "no route to host")
        catalog.close_gap(gap, now - 6 * step)
    return tmp_path / "province.yaml", data, keys


def test_cli_table_and_exit_status(hub: tuple[Path, Path, list[str]]) -> None:
    config, data, _ = hub
    result = camhub("coverage", str(config), "--data-dir", str(data), "--days", "1")
    assert result.returncode == 3, result.stderr  # cam-1 misses 10 minutes
    assert "Central coverage — Tỉnh Thử Nghiệm (whole province)" in result.stdout
    assert "Cổng [chính]" in result.stdout  # channel names are text, not markup
    assert "unreachable 10m00s" in result.stdout
    assert "no route to host" in result.stdout
    assert "3 channels, 2 complete" in result.stdout
    below = camhub("coverage", str(config), "--data-dir", str(data), "--days", "1", "--fail-under", "99")
    assert below.returncode == 0, below.stdout  # 10 minutes of a day is 0.7 %
    complete = camhub("coverage", str(config), "--data-dir", str(data), "--unit", "xa-c", "--days", "1")
    assert complete.returncode == 0, complete.stdout
    assert "cam-1" not in complete.stdout and "2 channels, 2 complete" in complete.stdout


def test_cli_json(hub: tuple[Path, Path, list[str]]) -> None:
    config, data, _ = hub
    result = camhub("coverage", str(config), "--data-dir", str(data), "--days", "1", "--json")
    assert result.returncode == 3
    document = json.loads(result.stdout)
    assert document["province"] == "thu" and document["unit"] is None
    assert document["window"]["seconds"] == 86400
    by_channel = {(c["device"], c["channel"]): c for c in document["channels"]}
    cam = by_channel[("cam-1", 1)]
    assert cam["coverage"] == pytest.approx(1 - 600 / 86400)
    assert [(m["cause"], m["seconds"], m["detail"]) for m in cam["missing"]] == [
        ("unreachable", 600, "no route to host")
    ]
    assert by_channel[("nvr-1", 2)]["coverage"] == 1.0


def test_cli_verify_names_the_damaged_object_and_exits_4(hub: tuple[Path, Path, list[str]]) -> None:
    config, data, keys = hub
    args = ("coverage", str(config), "--data-dir", str(data), "--unit", "xa-c", "--days", "1", "--verify")
    intact = camhub(*args)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "all intact" in intact.stdout
    damaged = keys[len(keys) // 2]
    flip_bit(data / "central" / damaged)
    result = camhub(*args, "--json")
    assert result.returncode == 4
    verification = json.loads(result.stdout)["verification"]
    assert verification["checked"] == 2 * 145  # the 10-minute segments a day ending 5 minutes ago overlaps
    assert [(p["key"], p["problem"]) for p in verification["problems"]] == [(damaged, "mismatch")]
    table = camhub(*args)
    assert table.returncode == 4 and damaged in table.stdout and "mismatch" in table.stdout


def test_cli_usage_errors(hub: tuple[Path, Path, list[str]], tmp_path: Path) -> None:
    config, data, _ = hub
    unknown = camhub("coverage", str(config), "--data-dir", str(data), "--unit", "nowhere")
    assert unknown.returncode == 2
    assert "--unit: no unit 'nowhere'" in unknown.stderr and "Traceback" not in unknown.stderr
    empty = camhub("coverage", str(config), "--data-dir", str(tmp_path / "nothing"))
    assert empty.returncode == 2 and "no catalog in" in empty.stderr
    assert not (tmp_path / "nothing").exists()  # a report never creates a catalog


def test_cli_verify_reports_a_flipped_bit_in_seaweedfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance test on a real S3 store: an object rewritten behind camhub's back (its
    metadata kept, one bit of its bytes flipped) is reported, through the s3 plugin the config names."""
    import boto3  # the s3 plugin's own dependency: installed with it, as the plugin is for the core tests

    weed = require_weed()
    with SeaweedS3(weed) as peer:
        raw = boto3.client(
            "s3",
            endpoint_url=peer.endpoint,
            region_name="us-east-1",
            aws_access_key_id=peer.access_key,
            aws_secret_access_key=peer.secret_key,
        )
        raw.create_bucket(Bucket="central")
        config = tmp_path / "province.yaml"
        config.write_text(
            PROVINCE.replace(
                "storage: {central: {backend: filesystem, path: central}}",
                f"storage: {{central: {{backend: s3, endpoint: '{peer.endpoint}', bucket: central, "
                "access_key: {$env: TEST_S3_ACCESS}, secret_key: {$env: TEST_S3_SECRET}}}",
            ),
            encoding="utf-8",
        )
        env = {"TEST_S3_ACCESS": peer.access_key, "TEST_S3_SECRET": peer.secret_key}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        host = PluginHost.from_installed()
        s3 = load_config(config, host=host)
        data = tmp_path / "data"
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        step = 10 * MINUTE
        opened = host.storage_backends["s3"].factory(s3.storage.central, data)
        with opened as storage, Catalog.open(data / "catalog.db") as catalog:
            register(catalog, s3)
            keys = [
                record(catalog, "nvr-1", channel, now + n * step, now + (n + 1) * step, storage=storage)
                for n in range(-8, 1)
                for channel in (1, 2)
            ]
        args = (
            "coverage",
            str(config),
            "--data-dir",
            str(data),
            "--unit",
            "xa-c",
            "--days",
            "0.04",
            "--verify",
        )
        intact = camhub(*args, env=env)
        assert intact.returncode == 0, intact.stdout + intact.stderr
        assert "all intact" in intact.stdout

        damaged = keys[8]
        stored = raw.get_object(Bucket="central", Key=damaged)
        body = bytearray(stored["Body"].read())
        body[100] ^= 0x80
        raw.put_object(Bucket="central", Key=damaged, Body=bytes(body), Metadata=stored["Metadata"])
        result = camhub(*args, "--json", env=env)
        assert result.returncode == 4, result.stdout + result.stderr
        problems = json.loads(result.stdout)["verification"]["problems"]
        assert [(p["key"], p["device"], p["channel"], p["problem"]) for p in problems] == [
            (damaged, "nvr-1", 1, "mismatch")
        ]
        assert peer.secret_key not in result.stdout + result.stderr
