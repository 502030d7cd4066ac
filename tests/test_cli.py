"""The ``camhub`` command, run as a user runs it: a subprocess, its exit status and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from camhub import __version__
from provinces import BASE, PASSWORD, REPO


def camhub(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camhub", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        cwd=REPO,
        env={**os.environ, "CAMHUB_TEST_PASSWORD": PASSWORD, "COLUMNS": "200", **(env or {})},
    )


def test_ten_mistakes_give_ten_located_lines_and_exit_2() -> None:
    result = camhub("check", "tests/data/ten-mistakes.yaml")
    assert result.returncode == 2
    assert result.stdout == ""
    *lines, summary = result.stderr.splitlines()
    assert summary == "camhub: 10 configuration errors"
    assert lines == [
        "tests/data/ten-mistakes.yaml:12: $.credentials.site.password: "
        "environment variable CAMHUB_TEST_UNSET_PASSWORD is not set",
        "tests/data/ten-mistakes.yaml:17: $.units[3].parent: a 'commune' cannot be under a 'commune' "
        "('xa-b'); its parent must be a 'district'",
        "tests/data/ten-mistakes.yaml:18: $.units[4]: two roots: unit 'thu-2' has no parent, but 'thu' "
        "(tests/data/ten-mistakes.yaml:14) is already the root; give it a parent",
        "tests/data/ten-mistakes.yaml:25: $.units[5].devices[0].port: expected an integer, got 'http'",
        "tests/data/ten-mistakes.yaml:26: $.units[5].devices[1].hots: unknown key 'hots'; did you mean 'host'?",
        "tests/data/ten-mistakes.yaml:27: $.units[5].devices[2].vendor: unknown vendor 'axis'; "
        "installed: dahua, hikvision, onvif, rtsp, toy",
        "tests/data/ten-mistakes.yaml:29: $.devices[0].unit: unknown unit 'xa-z'",
        "tests/data/ten-mistakes.yaml:30: $.devices[1].id: duplicate device id 'cam-4' "
        "(first at tests/data/ten-mistakes.yaml:29)",
        "tests/data/ten-mistakes.yaml:34: $.people[0].positions[0].unit: unknown unit 'xa-khong-co'",
        "tests/data/ten-mistakes.yaml:35: $.retention.central_days: must be at least 7 "
        "(Article 6.2: footage stays retrievable centrally for at least 7 days), got 3",
    ]
    assert "Traceback" not in result.stderr


def test_check_prints_the_summary(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(BASE, encoding="utf-8")
    result = camhub("check", str(config))
    assert result.returncode == 0, result.stderr
    assert f"{config}: valid — Tỉnh Thử Nghiệm" in result.stdout
    assert "│ commune  │ Xã    │     1 │" in result.stdout
    assert "│ hikvision │      1 │" in result.stdout
    assert "│ 5.1 whole province │      1 │" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_units_shows_the_tree_with_diacritics(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(BASE, encoding="utf-8")
    result = camhub("units", "--devices", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Tỉnh Thử Nghiệm thu · province · 0 devices",
        "└── Huyện Định Quán huyen-a · district · 0 devices",
        "    └── Xã Phú Điền xa-b · commune · 1 devices",
        "        └── cam-1 hikvision camera 127.0.0.1 · 1 channels",
    ]


def test_usage_errors_exit_2() -> None:
    assert camhub("no-such-command").returncode == 2
    assert camhub("check").returncode == 2
    missing = camhub("check", "does-not-exist.yaml")
    assert missing.returncode == 2
    assert (
        missing.stderr.splitlines()[0]
        == "does-not-exist.yaml: $: cannot read the file: No such file or directory"
    )


def test_version() -> None:
    result = camhub("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"camhub, version {__version__}")


def test_plugins_lists_versions_and_load_errors(tmp_path: Path) -> None:
    (tmp_path / "plug_broken.py").write_text("import no_such_sdk\n")
    info = tmp_path / "camhub_broken-0.3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: camhub-broken\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[camhub.adapters]\nbroken = plug_broken\n")
    result = camhub("plugins", "--json", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["toy"]["status"] == "loaded"
    assert rows["toy"]["provides"] == ["vendor:toy"]
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["version"] == "0.3.0"
    assert "No module named 'no_such_sdk'" in rows["broken"]["error"]
    table = camhub("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert "camhub-toy" in table.stdout and "failed" in table.stdout


def test_disable_plugin_option() -> None:
    result = camhub("--disable-plugin", "toy", "plugins", "--json")
    assert {row["name"]: row["status"] for row in json.loads(result.stdout)}["toy"] == "blocked"


def test_config_schema_is_json_with_every_vendor() -> None:
    result = camhub("config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    vendors = {name.split(".", 1)[1] for name in schema["$defs"] if name.startswith("DeviceConfig.")}
    assert vendors == {"dahua", "hikvision", "onvif", "rtsp", "toy"}


def test_directory_as_config_is_a_usage_error(tmp_path: Path) -> None:
    result = camhub("check", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
