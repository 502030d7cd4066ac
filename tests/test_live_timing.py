"""Live segments are placed at the time the camera showed their first frame.

FFmpeg hands over what it buffered while it probed a stream (about a second) all at once; the
recorder holds a connection's first packets until it has caught up with the source, so that its
first keyframe is not stamped with the moment it came out of that buffer. The simulated camera
burns each frame's index into its picture and knows which frame it showed at any wall-clock time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from test_backfill import FPS, _camera, _first_frame, _province, _until

from camhub import PluginHost, load_config
from camhub.catalog import Catalog
from camhub.hub import Hub, HubSettings
from camhub.testing.fleet import Fleet

SEGMENT = 2.0
CLIP_FRAMES = 250  # the fleet's clip: 10 s at 25 fps, its indices repeat


def test_live_segments_start_at_the_frame_the_camera_showed_then(tmp_path: Path, host: PluginHost) -> None:
    province = load_config(_province(tmp_path, [_camera("hikvision")]), host=host)
    data = tmp_path / "hub"

    async def scenario() -> list[tuple[datetime, int, int]]:
        async with Fleet(province) as fleet:
            server, path = fleet.media["hikvision-1"], fleet.main_path("hikvision-1", 1)
            with Catalog.open(str(data / "catalog.db")) as catalog:
                settings = HubSettings(data_dir=data, segment_seconds=SEGMENT, upload=False)
                hub = Hub(province, host, catalog, settings)
                stop = asyncio.Event()
                began = datetime.now(UTC)
                task = asyncio.create_task(hub.run(stop))
                try:
                    await _until(
                        lambda: len(catalog.segments("hikvision-1", 1, began, datetime.now(UTC))) >= 3,
                        30,
                        "three live segments",
                    )
                finally:
                    stop.set()
                    await task
                found = []
                for segment in catalog.segments("hikvision-1", 1, began, datetime.now(UTC)):
                    keyframe, index, _ = _first_frame(segment)
                    assert keyframe
                    found.append((segment.start, index, server.frame_at(path, segment.start)))
                return found

    found = asyncio.run(scenario())
    assert len(found) >= 3
    for start, index, truth in found:
        off = min((index - truth) % CLIP_FRAMES, (truth - index) % CLIP_FRAMES)
        # Within two frames (40 ms): loopback latency and the scheduling of a busy machine.
        assert off <= 2, f"segment at {start} starts with frame {index}; the camera showed {truth} then"
    assert FPS == 25
