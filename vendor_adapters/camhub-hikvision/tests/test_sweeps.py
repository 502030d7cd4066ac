"""Recurring health sweeps: what does not change is kept, what health observes is asked each time."""

from __future__ import annotations

import pytest
from hik_harness import nvr, rig, run

from camhub.errors import DeviceTimeout
from camhub.testing.simulator import DeviceProfile
from camhub_hikvision import HikvisionAdapter


async def sweep(adapter: HikvisionAdapter) -> None:
    await adapter.time()
    await adapter.identity()
    await adapter.channels()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, ["/ISAPI/System/time"]),
        (nvr(2), ["/ISAPI/System/time", "/ISAPI/ContentMgmt/InputProxy/channels/status"]),
    ],
    ids=["camera", "nvr"],
)
def test_a_second_sweep_asks_the_clock_and_channel_states_only(
    profile: DeviceProfile | None, expected: list[str]
) -> None:
    async def scenario() -> None:
        async with rig(profile) as r:
            await sweep(r.adapter)
            assert "GET /ISAPI/System/deviceInfo" in r.sim.requests
            first = len(r.sim.requests)
            await sweep(r.adapter)
            assert [line.split(" ", 1)[1] for line in r.sim.requests[first:]] == expected
            assert (await r.adapter.identity()).serial == r.sim.profile.serial

    run(scenario)


def test_a_device_that_was_away_is_asked_its_identity_again() -> None:
    async def scenario() -> None:
        async with rig(timeout=0.5) as r:
            before = await r.adapter.identity()
            r.sim.faults.delay = 1.0
            with pytest.raises(DeviceTimeout):
                await r.adapter.time()
            r.sim.faults.delay = 0.0
            r.sim.profile.serial = "DS-REPLACED-0001"  # the camera was swapped meanwhile
            assert (await r.adapter.identity()).serial == "DS-REPLACED-0001" != before.serial

    run(scenario)
