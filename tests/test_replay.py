"""The RTSP relay's reading of a device's PLAY answer (camhub.recorder.replay)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from camhub.recorder.replay import RtspRelay


def _answer(range_value: str) -> bytes:
    return f"RTSP/1.0 200 OK\r\nCSeq: 4\r\nRange: {range_value}\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("range_value", "expected"),
    [
        ("clock=20261128T101502Z-", datetime(2026, 11, 28, 10, 15, 2, tzinfo=UTC)),
        ("clock=20261128T101502.25Z-", datetime(2026, 11, 28, 10, 15, 2, 250000, tzinfo=UTC)),
        # More than six digits of a fraction (nanoseconds): the first six count.
        ("clock=20261128T101502.123456789Z-", datetime(2026, 11, 28, 10, 15, 2, 123456, tzinfo=UTC)),
        ("clock=20261399T101502Z-", None),  # no such date: placed where it was asked for
    ],
)
def test_the_play_answer_places_the_footage(range_value: str, expected: datetime | None) -> None:
    with RtspRelay("rtsp://127.0.0.1:9/track") as relay:
        relay._plays.add(b"4")
        relay._note_play_answer(_answer(range_value))
        assert relay.played_from == expected
