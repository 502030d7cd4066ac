"""The hub end to end: `camhub run` records a province's channels into the catalog, survives
`kill -9`, reports `camhub status` and Prometheus metrics, and calls its observer hooks."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from gst_peer import GstRtspServer, require_gst

from camhub import PluginHost, hookimpl, load_config
from camhub.catalog import Catalog, GapCause, SegmentRecord
from camhub.hub import Hub, HubSettings
from provinces import REPO

PASSWORD = "cam-Pässword-77"


@pytest.fixture(scope="module")
def peer() -> Iterator[GstRtspServer]:
    require_gst()
    mounts = {"/cam1": "h264+aac", "/cam2": "h264+pcmu", "/mic": "aac"}
    with GstRtspServer(mounts, user="admin", password=PASSWORD) as server:
        yield server


def province_yaml(peer: GstRtspServer, tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text(PASSWORD, encoding="utf-8")
    path = tmp_path / "p.yaml"
    path.write_text(
        f"""\
province: {{id: thu, name: Tỉnh Thử}}
levels: [{{id: province, name: Tỉnh}}, {{id: commune, name: Xã}}]
bodies:
  - {{id: hcc, name: Trung tâm HCC, level: province, article5: "5.3"}}
  - {{id: ubnd-xa, name: UBND xã, level: commune, article5: "5.3"}}
credentials: {{site: {{username: admin, password: {{$file: pw}}}}}}
units:
  - {{id: thu, name: Tỉnh Thử, level: province, managing_body: hcc}}
  - id: xa-a
    name: Xã Phú Điền
    level: commune
    parent: thu
    managing_body: ubnd-xa
    devices:
      - id: enc-1
        vendor: rtsp
        kind: encoder
        host: 127.0.0.1
        rtsp_port: {peer.port}
        credentials: site
        channels: [{{id: 1, audio: true}}, {{id: 2, audio: true}}, {{id: 3, kind: microphone}}]
        streams: [{{channel: 1, main: /cam1}}, {{channel: 2, main: /cam2}}, {{channel: 3, main: /mic}}]
""",
        encoding="utf-8",
    )
    return path


def camhub(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "camhub", *args],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_run_records_every_channel_and_status_shows_it(peer: GstRtspServer, tmp_path: Path) -> None:
    config = province_yaml(peer, tmp_path)
    data = tmp_path / "data"
    port = _free_port()
    hub = camhub(
        "run", str(config), "--data-dir", str(data), "--segment-seconds", "4", "--metrics-port", str(port)
    )
    try:
        wait_for(lambda: (data / "status.json").exists(), 20)
        wait_for(lambda: len(list(data.rglob("*Z.mp4"))) >= 6, 40)
        status = subprocess.run(
            [sys.executable, "-m", "camhub", "status", str(config), "--data-dir", str(data)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("recording") == 3, status.stdout
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'camhub_channel_recording{channel="3",device="enc-1"} 1.0' in metrics
    finally:
        hub.send_signal(signal.SIGTERM)
        _, err = hub.communicate(timeout=40)
    assert hub.returncode == 0, err
    assert PASSWORD not in err
    with Catalog.open(str(data / "catalog.db")) as catalog:
        for channel, audio in ((1, "aac"), (2, "aac"), (3, "aac")):
            segments = catalog.segments("enc-1", channel, _epoch(), _far())
            assert segments, f"channel {channel} recorded nothing"
            assert {s.audio_codec for s in segments} == {audio}
            for segment in segments:
                assert Path(str(segment.local_path)).stat().st_size == segment.size
        assert {s.audio_source_codec for s in catalog.segments("enc-1", 2, _epoch(), _far())} == {"pcm_mulaw"}
        mic = catalog.segments("enc-1", 3, _epoch(), _far())[0]
        assert mic.video_codec is None  # a microphone: audio only
    assert not list(data.rglob("*.partial.mp4")), "stopping seals every open segment"


def test_kill_9_then_restart_recovers_and_catalog_matches_disk(peer: GstRtspServer, tmp_path: Path) -> None:
    config = province_yaml(peer, tmp_path)
    data = tmp_path / "data"
    hub = camhub("run", str(config), "--data-dir", str(data), "--segment-seconds", "30")
    wait_for(lambda: any(p.stat().st_size > 200_000 for p in data.rglob("*.partial.mp4")), 40)
    hub.send_signal(signal.SIGKILL)
    hub.communicate(timeout=10)
    partials = list(data.rglob("*.partial.mp4"))
    assert partials, "the killed hub left its open segments half-written"
    time.sleep(2)  # down for a while: a span no recorder accounts for
    restarted = camhub("run", str(config), "--data-dir", str(data), "--seconds", "3")
    _, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert not list(data.rglob("*.partial.mp4"))
    on_disk = {str(p) for p in (data / "spool").rglob("*.mp4")}  # not the central copies
    with Catalog.open(str(data / "catalog.db")) as catalog:
        catalogued = {
            str(s.local_path) for ch in (1, 2, 3) for s in catalog.segments("enc-1", ch, _epoch(), _far())
        }
        for channel in (1, 2, 3):
            # Every second accounted for: the time no hub ran is a gap of its own, between the
            # killed run's last (recovered) segment and the restarted run's first.
            segments = catalog.segments("enc-1", channel, _epoch(), _far())
            gaps = catalog.gaps("enc-1", channel, _epoch(), _far())
            (down,) = [gap for gap in gaps if gap.detail == "not recorded: no recorder was running"]
            assert down.cause is GapCause.OTHER and down.closed_by == "recording started"
            closed = [(g.start, g.end) for g in gaps if g.end is not None]
            assert len(closed) == len(gaps)
            pieces = sorted([(s.start, s.end) for s in segments] + closed)
            assert down.start in {end for _, end in pieces} and down.end in {start for start, _ in pieces}
            for (_, end), (start, _) in itertools.pairwise(pieces):
                assert abs((start - end).total_seconds()) < 0.05, pieces
    assert on_disk == catalogued, "the catalog and the disk agree"
    for path in on_disk:  # every segment, the recovered ones too, decodes
        with av.open(path) as container:
            assert sum(1 for _ in container.demux()) > 0


def test_hook_camhub_hub_started(peer: GstRtspServer, tmp_path: Path) -> None:
    calls = _run_hub_with_observer(peer, tmp_path, seconds=1.0)
    assert calls[0] == "started"


def test_hook_camhub_hub_stopping(peer: GstRtspServer, tmp_path: Path) -> None:
    calls = _run_hub_with_observer(peer, tmp_path, seconds=1.0)
    assert calls.count("stopping") == 1
    # Told before the open segments are sealed: those seals come after it.
    assert calls.index("stopping") > calls.index("started")


def test_hook_camhub_segment_sealed(peer: GstRtspServer, tmp_path: Path) -> None:
    calls = _run_hub_with_observer(peer, tmp_path, seconds=7.0)
    sealed = [c for c in calls if isinstance(c, SegmentRecord)]
    assert {s.channel for s in sealed} == {1, 2, 3}
    assert all(s.sha256 and s.size > 0 for s in sealed)


def _run_hub_with_observer(peer: GstRtspServer, tmp_path: Path, seconds: float) -> list[Any]:
    calls: list[Any] = []

    class Observer:
        @staticmethod
        @hookimpl
        def camhub_hub_started(hub: Hub) -> None:
            calls.append("started")

        @staticmethod
        @hookimpl
        def camhub_hub_stopping(hub: Hub) -> None:
            calls.append("stopping")

        @staticmethod
        @hookimpl
        def camhub_segment_sealed(segment: SegmentRecord) -> None:
            calls.append(segment)

    host = PluginHost.from_installed()
    host.add_plugin(Observer(), "observer")
    province = load_config(province_yaml(peer, tmp_path), host=host)
    with Catalog.open(str(tmp_path / "catalog.db")) as catalog:
        hub = Hub(province, host, catalog, HubSettings(data_dir=tmp_path / "data", segment_seconds=2))

        async def scenario() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(seconds, stop.set)
            await hub.run(stop)

        asyncio.run(scenario())
    return calls


def test_unreachable_device_is_a_gap_with_its_cause(tmp_path: Path) -> None:
    require_gst()
    with GstRtspServer({"/cam1": "h264"}, user="admin", password=PASSWORD) as server:
        config = province_yaml(server, tmp_path)
    # The server is gone: the device's stream cannot be reached at all.
    host = PluginHost.from_installed()
    province = load_config(config, host=host)
    with Catalog.open(str(tmp_path / "catalog.db")) as catalog:
        hub = Hub(province, host, catalog, HubSettings(data_dir=tmp_path / "data", segment_seconds=2))

        async def scenario() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(3.0, stop.set)
            await hub.run(stop)

        asyncio.run(scenario())
        gaps = catalog.gaps("enc-1", 1, _epoch(), _far())
    assert [(g.cause, g.is_open) for g in gaps] == [(GapCause.UNREACHABLE, False)]
    status = json.loads((tmp_path / "data" / "status.json").read_text())
    assert {c["state"] for c in status["channels"]} == {"stopped"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(2000, 1, 1, tzinfo=UTC)


def _far() -> Any:
    from datetime import UTC, datetime

    return datetime(2100, 1, 1, tzinfo=UTC)
