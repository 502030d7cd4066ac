"""``camhub device …`` against a simulated device over real HTTP, as an integrator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from toy_simulator import ToySimulator  # examples/toy_adapter/tests, on pytest's pythonpath

from camhub.testing.simulator import DeviceProfile, SimulatedDevice
from provinces import REPO

PASSWORD = "toy-Đồng-Nai-pw"
SimulatedDeviceT = TypeVar("SimulatedDeviceT", bound=SimulatedDevice)
PROFILE = DeviceProfile(
    model="TOY-200",
    serial="SN-0042",
    firmware="2.0.1",
    mac="02:00:00:00:00:42",
    channels=3,
    password=PASSWORD,
    clock_skew=timedelta(seconds=-30),
)


@contextmanager
def serving(sim: SimulatedDeviceT) -> Iterator[SimulatedDeviceT]:
    """Run a simulator on its own event loop in a thread, while the CLI runs as a subprocess."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def simulator() -> Iterator[ToySimulator]:
    with serving(ToySimulator(PROFILE)) as sim:
        yield sim


def write_province(path: Path, device: str) -> Path:
    """A one-site province whose only device is ``device`` (a YAML flow mapping)."""
    path.write_text(
        f"""\
province: {{id: thu, name: Tỉnh Thử}}
levels: [{{id: province, name: Tỉnh}}]
bodies: [{{id: hcc, name: Trung tâm HCC, level: province, article5: "5.3"}}]
credentials: {{site: {{username: admin, password: {{$env: TOY_PW}}}}}}
units:
  - id: thu
    name: Tỉnh Thử
    level: province
    managing_body: hcc
    devices:
      - {device}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(tmp_path: Path, simulator: ToySimulator) -> Path:
    return write_province(
        tmp_path / "p.yaml",
        f"{{id: toy-1, vendor: toy, kind: camera, host: 127.0.0.1, port: {simulator.port}, credentials: site, "
        "api_token: {$env: TOY_TOKEN}}",
    )


def camhub(*args: str, password: str = PASSWORD, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOY_PW": password, "TOY_TOKEN": ToySimulator.token, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "camhub", *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_device_info_prints_identity_and_channels(config: Path) -> None:
    result = camhub("device", "info", str(config), "toy-1")
    assert result.returncode == 0, result.stderr
    for expected in ("TOY-200", "SN-0042", "2.0.1", "02:00:00:00:00:42", "offset -30"):
        assert expected in result.stdout
    assert result.stdout.count("│ camera │") == 3
    assert PASSWORD not in result.stdout + result.stderr


def test_device_info_json(config: Path) -> None:
    result = camhub("device", "info", str(config), "toy-1", "--json")
    info = json.loads(result.stdout)
    assert info["identity"]["model"] == "TOY-200"
    assert [c["id"] for c in info["channels"]] == [1, 2, 3]
    assert -33 < info["time"]["offset"] < -27


def test_device_snapshot_writes_a_jpeg(config: Path, tmp_path: Path) -> None:
    result = camhub(
        "device", "snapshot", str(config), "toy-1", "--channel", "2", "-o", str(tmp_path / "x.jpg")
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_wrong_password_is_one_clear_line(config: Path, simulator: ToySimulator) -> None:
    before = simulator.failed_logins
    result = camhub("device", "info", str(config), "toy-1", password="wrong-password")
    assert result.returncode == 1
    assert result.stderr.strip() == "camhub: error: device toy-1: credentials refused (HTTP 401 on /api/info)"
    assert simulator.failed_logins - before == 1
    assert "wrong-password" not in result.stderr


def test_unsupported_capability_and_unknown_device(config: Path) -> None:
    result = camhub("device", "events", str(config), "toy-1", "--seconds", "1")
    assert (result.returncode, result.stderr.strip()) == (
        1,
        "camhub: error: device toy-1: events is not supported by this adapter",
    )
    missing = camhub("device", "info", str(config), "nope")
    assert missing.stderr.strip() == "camhub: error: no device 'nope' in the configuration"


@pytest.fixture(scope="module", params=["hikvision", "dahua"])
def vendor_device(request: pytest.FixtureRequest) -> Iterator[tuple[str, SimulatedDevice]]:
    """A vendor simulator (an NVR with 4 channels) on its own loop in a thread."""
    from camhub.testing.dahua import DahuaSimulator
    from camhub.testing.hikvision import HikvisionSimulator

    vendor: str = request.param
    profile = DeviceProfile(
        model=f"{vendor.upper()}-NVR-X",
        serial=f"SN-{vendor}-1",
        firmware="9.9.9",
        mac="02:00:00:00:00:77",
        channels=4,
        nvr=True,
        password=PASSWORD,
    )
    kind = HikvisionSimulator if vendor == "hikvision" else DahuaSimulator
    with serving(kind(profile)) as sim:
        yield vendor, sim


def test_device_info_against_vendor_simulators(
    vendor_device: tuple[str, SimulatedDevice], tmp_path: Path
) -> None:
    vendor, sim = vendor_device
    config = write_province(
        tmp_path / "p.yaml",
        f"{{id: nvr-1, vendor: {vendor}, kind: nvr, host: 127.0.0.1, port: {sim.port}, credentials: site}}",
    )
    result = camhub("device", "info", str(config), "nvr-1")
    assert result.returncode == 0, result.stderr
    for expected in (f"{vendor.upper()}-NVR-X", f"SN-{vendor}-1", "9.9.9", "02:00:00:00:00:77"):
        assert expected in result.stdout, result.stdout
    assert "│ channels │ 4" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
