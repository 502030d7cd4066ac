"""`camhub demo` end to end: a simulated province of all three vendors recorded with a cut cable."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.console import Console

from camhub import PluginHost
from camhub.demo import demo_config, run_demo


def test_demo_records_every_channel_and_shows_the_gap(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    summary: dict[str, Any] = asyncio.run(
        run_demo(
            data_dir=tmp_path / "demo",
            seconds=30,
            segment_seconds=8,
            cut_after=10,
            cut_for=6,
            host=PluginHost.from_installed(),
            console=console,
        )
    )
    channels = summary["channels"]
    assert {c["device"].split(".")[-1].split("-")[0] for c in channels} >= {"cam", "nvr"}
    by_gaps = {c["device"]: c["gaps"] for c in channels if c["gaps"]}
    assert len(by_gaps) == 1, f"only the cut camera has a gap: {by_gaps}"
    ((victim, gaps),) = by_gaps.items()
    assert len(gaps) == 1
    assert gaps[0]["cause"] in ("stream_ended", "stall")
    assert 5 <= gaps[0]["seconds"] <= 14
    for channel in channels:
        assert channel["segments"] >= 2, channel
        if channel["device"] != victim:
            assert channel["recorded"] >= 0.9 * channel["since_first_keyframe"], channel
    audio = {a for c in channels for a in c["audio"]}
    assert "pcm_mulaw→aac" in audio  # Dahua's G.711 transcoded
    assert "aac" in audio
    microphones = [c for c in channels if c["video"] == ["—"]]
    assert microphones, "microphone channels are recorded as sound only"
    text = console.export_text()
    assert "What was recorded" in text and "catalog.db" in text
    assert demo_config().name == "demo.yaml"
