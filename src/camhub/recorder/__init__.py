"""Recording: every channel of every approved device, remuxed into keyframe-aligned segments."""

from camhub.recorder.segmenter import (
    ChannelKey,
    ChannelRecorder,
    GapCause,
    RecorderCallbacks,
    RecorderState,
    SealedSegment,
    recover_partials,
)

__all__ = [
    "ChannelKey",
    "ChannelRecorder",
    "GapCause",
    "RecorderCallbacks",
    "RecorderState",
    "SealedSegment",
    "recover_partials",
]
