"""Recurring health sweeps: what does not change is kept, what health observes is asked each time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dahua_support import PROFILES, rig, run

from camhub.errors import DeviceTimeout
from camhub.testing.simulator import DeviceProfile
from camhub_dahua import DahuaAdapter


async def sweep(adapter: DahuaAdapter) -> None:
    await adapter.time()
    await adapter.identity()
    await adapter.channels()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("ipc", ["/cgi-bin/global.cgi?action=getCurrentTime"]),
        (
            "nvr",
            [
                "/cgi-bin/global.cgi?action=getCurrentTime",
                "/cgi-bin/LogicDeviceManager.cgi?action=getCameraState&uniqueChannels[0]=-1",
            ],
        ),
    ],
)
def test_a_second_sweep_asks_the_clock_and_channel_states_only(kind: str, expected: list[str]) -> None:
    profile: Callable[[], DeviceProfile] = PROFILES[kind]

    async def scenario() -> None:
        async with rig(profile()) as r:
            await sweep(r.adapter)
            first = len(r.sim.requests)
            await sweep(r.adapter)
            assert [line.split(" ", 1)[1] for line in r.sim.requests[first:]] == expected
            assert (await r.adapter.identity()).serial == r.sim.profile.serial

    run(scenario)


def test_a_device_that_was_away_is_asked_its_identity_and_channels_again() -> None:
    async def scenario() -> None:
        async with rig(timeout=0.5) as r:
            await sweep(r.adapter)
            r.sim.faults.delay = 1.0
            with pytest.raises(DeviceTimeout):
                await r.adapter.time()
            r.sim.faults.delay = 0.0
            r.sim.profile.serial = "REPLACED0001"  # the camera was swapped meanwhile
            r.sim.titles[0] = "Cổng phụ"
            assert (await r.adapter.identity()).serial == "REPLACED0001"
            assert (await r.adapter.channels())[0].name == "Cổng phụ"

    run(scenario)
