"""Test media: generated clips decode, carry their frame index exactly, and demux into a Clip."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from camhub.testing.media import INDEX_BITS, Clip, cached_clip, load_clip, make_clip, read_frame_index
from camhub.testing.media import _frame_planes as frame_planes

SECONDS, FPS, GOP = 2, 25, 25
FRAMES = SECONDS * FPS


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def aac_mp4(media_dir: Path) -> Path:
    return make_clip(media_dir / "aac.mp4", seconds=SECONDS, fps=FPS, gop=GOP, audio="aac")


@pytest.fixture(scope="module")
def pcmu_mov(media_dir: Path) -> Path:
    return make_clip(media_dir / "pcmu.mov", seconds=SECONDS, fps=FPS, gop=GOP, audio="pcmu")


def decoded_indices(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [read_frame_index(frame) for frame in container.decode(video=0)]


def test_clip_decodes_with_every_frame_index_exact(aac_mp4: Path) -> None:
    with av.open(str(aac_mp4)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (640, 360)
        assert video.average_rate == FPS
    assert decoded_indices(aac_mp4) == list(range(FRAMES))


def test_aac_audio_is_a_mono_tone_as_long_as_the_video(aac_mp4: Path) -> None:
    with av.open(str(aac_mp4)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 16000  # what cameras send
        assert audio.codec_context.channels == 1
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(samples - SECONDS * 16000) <= 2 * 1024  # encoder priming and padding


def test_pcmu_clip_carries_g711_at_8_khz(pcmu_mov: Path) -> None:
    with av.open(str(pcmu_mov)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "pcm_mulaw"
        assert audio.codec_context.sample_rate == 8000
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples == SECONDS * 8000
    assert decoded_indices(pcmu_mov) == list(range(FRAMES))


def test_g711_cannot_go_into_mp4_or_ts(media_dir: Path) -> None:
    for name in ("bad.mp4", "bad.ts"):
        with pytest.raises(ValueError, match="PCMU"):
            make_clip(media_dir / name, audio="pcmu")


def test_load_clip_gives_parameter_sets_access_units_and_audio_frames(aac_mp4: Path) -> None:
    clip = load_clip(aac_mp4)
    assert (clip.width, clip.height, clip.fps) == (640, 360, Fraction(FPS))
    assert clip.sps[0] & 0x1F == 7
    assert clip.pps[0] & 0x1F == 8
    assert clip.profile_level_id == clip.sps[1:4].hex().upper()
    assert len(clip.video) == FRAMES
    assert [au.pts for au in clip.video] == [i * 3600 for i in range(FRAMES)]
    assert clip.duration == SECONDS * 90000
    assert [i for i, au in enumerate(clip.video) if au.keyframe] == list(range(0, FRAMES, GOP))
    for au in clip.video:
        types = [nal[0] & 0x1F for nal in au.nal_units]
        assert (5 in types) == au.keyframe
        assert 9 not in types  # access unit delimiters dropped
        assert au.annexb.startswith(b"\x00\x00\x00\x01")
    assert clip.audio_codec == "aac"
    assert (clip.audio_rate, clip.audio_channels) == (16000, 1)
    # Whole 1024-sample frames, contiguous from 0, as many as come nearest to the video's length.
    frames = round(SECONDS * 16000 / 1024)
    assert [u.pts for u in clip.audio] == [i * 1024 for i in range(frames)]
    assert clip.audio_duration == frames * 1024
    assert all(0 < len(u.data) < 8192 and u.data[:2] != b"\xff\xf1" for u in clip.audio)  # raw, not ADTS
    assert clip.audio_config[:2] == bytes.fromhex("1408")  # AAC-LC, 16 kHz, mono


def test_pcmu_clip_loads_as_20_ms_units(pcmu_mov: Path) -> None:
    clip = load_clip(pcmu_mov)
    assert clip.audio_codec == "pcmu"
    assert (clip.audio_rate, clip.audio_channels, clip.audio_config) == (8000, 1, b"")
    assert [u.pts for u in clip.audio] == list(range(0, SECONDS * 8000, 160))
    assert all(len(u.data) == 160 for u in clip.audio)


def test_mpeg_ts_clip_loads_from_annex_b_and_adts(media_dir: Path, aac_mp4: Path) -> None:
    path = make_clip(media_dir / "clip.ts", seconds=SECONDS, fps=FPS, gop=GOP, audio_rate=48000)
    clip = load_clip(path)
    assert len(clip.video) == FRAMES
    assert clip.video[0].keyframe
    assert [nal[0] & 0x1F for nal in clip.video[0].nal_units][:2] == [7, 8]  # in-band, as in TS
    assert clip.sps == clip.video[0].nal_units[0]
    assert clip.audio_codec == "aac"
    assert clip.audio_rate == 48000
    assert clip.audio_config == bytes.fromhex("1188")  # from the ADTS header: AAC-LC, 48 kHz, mono
    assert clip.audio_duration == round(SECONDS * 48000 / 1024) * 1024
    assert decoded_indices(path) == list(range(FRAMES))


def test_a_long_mpeg_ts_clip_is_interleaved_and_its_audio_does_not_wrap(media_dir: Path) -> None:
    # Longer than the muxer's 10 s interleave window: audio encoded after the video would land at
    # the end of the file, and AAC's priming at -1024 would wrap to 26.5 hours in MPEG-TS.
    path = make_clip(media_dir / "long.ts", seconds=11, width=320, height=180, video_bitrate=150_000)
    with av.open(str(path)) as container:
        packets = [
            (p.stream.type, float(p.pts * p.time_base)) for p in container.demux() if p.pts is not None
        ]
    audio = [t for kind, t in packets if kind == "audio"]
    video = [t for kind, t in packets if kind == "video"]
    assert min(audio) >= 0
    assert max(audio) < 11.5
    assert min(video) >= 0
    assert max(video) < 11.5
    assert [kind for kind, _ in packets[:20]].count("audio") >= 3  # interleaved from the start
    clip = load_clip(path)
    assert len(clip.video) == 11 * FPS
    assert clip.audio_duration == round(11 * 16000 / 1024) * 1024


@pytest.mark.parametrize(("width", "height", "bitrate"), [(320, 180, 150_000), (352, 288, 300_000)])
def test_frame_index_survives_small_pictures_and_low_bitrates(
    media_dir: Path, width: int, height: int, bitrate: int
) -> None:
    path = make_clip(
        media_dir / f"small-{width}.mp4",
        seconds=1,
        width=width,
        height=height,
        video_bitrate=bitrate,
        audio=None,
    )
    assert decoded_indices(path) == list(range(FPS))
    assert load_clip(path).audio_codec is None


def test_every_bit_of_the_index_reads_back() -> None:
    width, height = 640, 360
    ramp = (bytes(range(256)) * 8)[: width + 256]
    for index in (0, 1, 0x800001, 0xA5A5A5, (1 << INDEX_BITS) - 1):
        y, u, v = frame_planes(index, width, height, True, ramp, b"")
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane, data in zip(frame.planes, (y, u, v), strict=True):
            plane.update(data)
        assert read_frame_index(frame) == index


def test_a_picture_without_an_index_is_refused(media_dir: Path) -> None:
    path = make_clip(media_dir / "plain.mp4", seconds=1, audio=None, burn_index=False)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    with pytest.raises(ValueError, match="damaged or no index"):
        read_frame_index(frame)
    grey = av.VideoFrame(640, 360, "yuv420p")
    for plane in grey.planes:
        plane.update(b"\x80" * plane.buffer_size)
    with pytest.raises(ValueError, match="damaged or no index"):
        read_frame_index(grey)


def test_cached_clip_is_made_once_and_shared(media_dir: Path) -> None:
    cache = media_dir / "cache"
    started = time.perf_counter()
    first = cached_clip(seconds=1, audio="pcmu", cache_dir=cache)
    made = time.perf_counter() - started
    assert made < 3.0  # the demo's media must be cheap to make (about 0.3 s here)
    started = time.perf_counter()
    again = cached_clip(seconds=1, audio="pcmu", cache_dir=cache)
    assert again is first
    assert time.perf_counter() - started < 0.01
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 1
    assert files[0].endswith(".mov")
    assert isinstance(first, Clip)
    assert first.source == cache / files[0]
    # A different parameter set is a different file.
    cached_clip(seconds=1, audio=None, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2
