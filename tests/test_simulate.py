"""`camhub simulate` starts a fleet of all three vendors and writes a configuration that works."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import av

from provinces import REPO


def _free_base() -> int:
    """A port with the next five free too (the fleet takes two per device)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base > 60000:
            continue
        try:
            for port in range(base, base + 6):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no free port range")


def camhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camhub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_simulate_writes_a_configuration_for_its_fleet(tmp_path: Path) -> None:
    output = tmp_path / "fleet.yaml"
    fleet = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "camhub",
            "simulate",
            "--first-port",
            str(_free_base()),
            "-o",
            str(output),
            "--seconds",
            "600",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert fleet.stdout is not None
        line = fleet.stdout.readline()
        assert line.startswith("3 simulated devices up"), line + fleet.stderr.read() if fleet.stderr else line
        assert camhub("check", str(output)).returncode == 0
        for device, model in (
            ("hikvision-1", "DS-2CD2143G2-IU"),
            ("dahua-1", "IPC-HDW2431T-AS-S2"),
            ("onvif-1", "ONVIF-IPC-2000"),
        ):
            info = camhub("device", "info", str(output), device)
            assert info.returncode == 0, info.stderr
            assert model in info.stdout
            answer = camhub("device", "stream", str(output), device)
            url = answer.stdout.strip()
            assert url.startswith("rtsp://127.0.0.1:"), answer.stderr
            password = (tmp_path / "fleet-password").read_text().strip()
            authed = url.replace("rtsp://", f"rtsp://admin:{password}@", 1)
            with av.open(authed, options={"rtsp_transport": "tcp", "timeout": "5000000"}) as stream:
                assert stream.streams.video[0].codec_context.name == "h264"
                assert (
                    sum(1 for _, packet in zip(range(25), stream.demux(video=0), strict=False) if packet.size)
                    > 10
                )
    finally:
        fleet.send_signal(signal.SIGINT)
        fleet.communicate(timeout=30)
    assert fleet.returncode == 0
