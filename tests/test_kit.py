"""The conformance kit itself: it passes a good adapter and fails a deliberately broken one.

Each case runs pytest on a small test module that subclasses the kit, in a subprocess (as a
provider would run it), against the toy adapter's simulator from ``examples/toy_adapter``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provinces import REPO

TOY_TESTS = REPO / "examples" / "toy_adapter" / "tests"

TARGET = """
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from toy_simulator import ToySimulator

from camhub.adapter import Capability, ChannelInfo, DeviceIdentity
from camhub.errors import DeviceUnreachable
from camhub.model import DeviceKind
from camhub.secrets import Secret
from camhub.testing.kit import AdapterConformance, Expectations, KitTarget
from camhub.testing.simulator import DeviceProfile
from camhub_toy import ToyAdapter, ToyConfig

PROFILE = DeviceProfile(model="TOY-100", serial="T1", firmware="1.0", mac="02:00:00:00:00:01",
                        channels=2, password="kit-secret-pw")


def target_for(adapter_type):
    @asynccontextmanager
    async def target(self):
        async with ToySimulator(PROFILE) as sim, httpx.AsyncClient() as client:
            def make(http, password):
                config = ToyConfig(id="toy-1", vendor="toy", kind=DeviceKind.CAMERA, host="127.0.0.1", port=sim.port,
                                   credentials="kit", api_token=Secret(ToySimulator.token))
                return adapter_type(config, http, username="admin", password=Secret(password))
            yield KitTarget(adapter=make(client, PROFILE.password), password=PROFILE.password,
                            make_adapter=make, expected=Expectations(channels=2),
                            failed_logins=lambda: sim.failed_logins,
                            trigger_event=lambda kind, channel: None)
    return target
"""

BROKEN = (
    TARGET
    + """

class Broken(ToyAdapter):
    # Declares events but does not implement them: a declared capability must not skip.
    capabilities = ToyAdapter.capabilities | {Capability.EVENTS}

    async def identity(self):
        ident = await super().identity()
        return DeviceIdentity(vendor="toy", model=ident.model, serial=ident.serial, firmware="", mac="nope")

    async def channels(self):
        return [ChannelInfo(id=0), ChannelInfo(id=0)]

    async def snapshot(self, channel):
        return b"GIF89a not a jpeg at all, but long enough to pass a size check......................"

    async def time(self):
        raise DeviceUnreachable(self.config.id, "password was " + self.password.reveal())


class TestBroken(AdapterConformance):
    vendor = "broken-toy"
    target = target_for(Broken)
"""
)

GOOD = (
    TARGET
    + """

class TestGood(AdapterConformance):
    vendor = "good-toy"
    target = target_for(ToyAdapter)
"""
)


def run_kit(
    pytester: pytest.Pytester, source: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[pytest.RunResult, dict[str, Any]]:
    report = pytester.path / "conformance-report.json"
    monkeypatch.setenv("CAMHUB_CONFORMANCE_REPORT", str(report))
    monkeypatch.setenv("PYTHONPATH", str(TOY_TESTS))
    pytester.makepyfile(test_adapter=source)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--import-mode=importlib", "-q")
    return result, json.loads(report.read_text(encoding="utf-8"))


def test_kit_passes_a_conforming_adapter(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, report = run_kit(pytester, GOOD, monkeypatch)
    result.assert_outcomes(passed=11, skipped=3)
    assert report["adapters"]["good-toy"]["failed"] == 0
    assert report["adapters"]["good-toy"]["results"]["events:events"] == "skipped"


def test_kit_fails_a_broken_adapter(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result, report = run_kit(pytester, BROKEN, monkeypatch)
    results = report["adapters"]["broken-toy"]["results"]
    assert {key for key, outcome in results.items() if outcome == "failed"} == {
        "identity:identity",  # empty firmware, a MAC that is not one
        "channels:channels",  # duplicate and 0-based channel numbers
        "snapshot:snapshot",  # not a JPEG
        "time:time",  # raises
        "health:health",  # built on time
        "events:events",  # declared but unsupported: a failure, never a skip
        "always:secrets",  # the password leaks into an error message
    }
    assert results["live:stream_uris"] == "skipped"  # not declared
    result.assert_outcomes(failed=7, passed=5, skipped=2)
    assert "DeviceUnsupported" in result.stdout.str()  # why events failed
    assert "kit-secret-pw" not in Path(pytester.path / "conformance-report.json").read_text()
