"""Test media for the simulators: generate H.264 + audio clips with PyAV and demux them into memory.

The PyAV wheel bundles FFmpeg with libx264, AAC and G.711, so camhub needs neither GStreamer nor a
system ffmpeg to give every simulated camera a real stream. :func:`make_clip` encodes a clip whose
every frame carries its own index as a row of black/white blocks (:func:`read_frame_index` reads it
back), so a recording of it shows each lost, repeated or damaged frame. :func:`load_clip` demuxes a
clip once into a :class:`Clip` — parameter sets, Annex-B access units and raw audio frames with
their timestamps — which :mod:`camhub.testing.rtsp` packetizes in a loop. :func:`cached_clip`
generates each parameter set once per machine and loads it once per process.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import random
import struct
import tempfile
import threading
from fractions import Fraction
from pathlib import Path
from typing import Literal

import attrs
import av
import av.audio.frame
import av.audio.stream
import av.container
import av.video.frame
import av.video.plane

__all__ = [
    "INDEX_BITS",
    "AccessUnit",
    "AudioCodec",
    "AudioUnit",
    "Clip",
    "cached_clip",
    "default_cache_dir",
    "load_clip",
    "make_clip",
    "read_frame_index",
]

AudioCodec = Literal["aac", "pcmu"]

#: Bits of the frame index burnt into each picture (16.7 million frames: 7.7 days at 25 fps).
INDEX_BITS = 24

#: Bump when make_clip's output changes, so that stale files in the cache are not reused.
_MEDIA_FORMAT_VERSION = 3

#: Luma of the index blocks: video-range black and white, far apart so compression cannot flip them.
_BLACK, _WHITE = 16, 235
#: A block whose mean luma falls between these is neither black nor white: the picture is damaged.
_AMBIGUOUS = (72, 180)

#: PCMU is sent in 20 ms packets (160 bytes at 8 kHz), as IP cameras and phones do.
_PCMU_RATE = 8000
_PCMU_CHUNK = 160

_AAC_FRAME_SAMPLES = 1024
_AAC_DEFAULT_RATE = 16000
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@attrs.frozen
class AccessUnit:
    """One H.264 picture: its NAL units (no start codes), presentation time and keyframe flag."""

    #: NAL units in decode order, without Annex-B start codes or length prefixes.
    nal_units: tuple[bytes, ...]
    #: Presentation time in the 90 kHz RTP clock, from the start of the clip.
    pts: int
    #: True for an IDR picture (a decoder can start here).
    keyframe: bool

    @property
    def annexb(self) -> bytes:
        """The access unit as an Annex-B byte stream (each NAL unit after a 4-byte start code)."""
        return b"".join(b"\x00\x00\x00\x01" + nal for nal in self.nal_units)


@attrs.frozen
class AudioUnit:
    """One audio frame ready for RTP: a raw AAC frame (no ADTS header) or a chunk of PCMU bytes."""

    data: bytes
    #: Presentation time in samples (the RTP clock of the audio stream), from the start of the clip.
    pts: int


@attrs.frozen
class Clip:
    """A clip demuxed into memory, in the shape an RTSP server packetizes and loops.

    Video and audio timestamps both start at 0 at the start of the clip. Each loops on its own
    length: loop ``k`` of the video is shifted by ``k * duration`` (90 kHz) and loop ``k`` of the
    audio by ``k * audio_duration`` (samples), so timestamps grow monotonically and without gaps
    forever. The audio loop is whole frames, the nearest to the video's length, so the tone drifts
    against the picture by under one audio frame per loop (as a camera's clocks drift).
    """

    width: int
    height: int
    #: Frames per second (nominal).
    fps: Fraction
    #: Sequence and picture parameter sets (NAL units without start codes).
    sps: bytes
    pps: bytes
    #: Video access units in decode (= presentation) order; the first is a keyframe.
    video: tuple[AccessUnit, ...]
    #: Length of one loop in the 90 kHz clock.
    duration: int
    #: Audio codec, or None for a clip without audio.
    audio_codec: AudioCodec | None = None
    #: Audio clock rate (the sample rate) and channels.
    audio_rate: int = 0
    audio_channels: int = 0
    #: AAC AudioSpecificConfig (the SDP ``config=``); empty for PCMU.
    audio_config: bytes = b""
    audio: tuple[AudioUnit, ...] = ()
    #: Length of one audio loop in samples: all its frames, back to back.
    audio_duration: int = 0
    #: The file the clip was loaded from, if any.
    source: Path | None = attrs.field(default=None, eq=False)

    @property
    def profile_level_id(self) -> str:
        """The SDP ``profile-level-id``: profile_idc, constraint flags and level_idc from the SPS."""
        return self.sps[1:4].hex().upper()

    @property
    def frame_count(self) -> int:
        return len(self.video)


# --- generation ---------------------------------------------------------------------------------


def _index_layout(width: int, height: int) -> tuple[int, int, int]:
    """Where the index blocks are: (left x, block width, band height), the same for writer and reader.

    The band is a multiple of 16 rows so that it fills whole macroblocks, and blocks are as wide as
    the picture allows, which keeps them intact at any sane bitrate.
    """
    block_width = width // INDEX_BITS
    band_height = max(16, (height // 8) // 16 * 16)
    if block_width < 4 or band_height > height // 2:
        raise ValueError(f"a {width}x{height} picture is too small to carry a {INDEX_BITS}-bit frame index")
    return (width - block_width * INDEX_BITS) // 2, block_width, band_height


def _frame_planes(
    index: int, width: int, height: int, burn_index: bool, ramp: bytes, noise: bytes
) -> tuple[bytes, bytes, bytes]:
    """The Y, U and V planes (tightly packed) of frame ``index`` of the test pattern.

    ``noise`` fills the bottom rows: like a camera sensor's noise it cannot be predicted, so the
    encoder spends the bitrate it was asked for and the stream has a camera's packet rate.
    """
    # A diagonal ramp that scrolls a few pixels per frame: moving texture gives P-frames a
    # realistic size (and FU-A fragmentation something to do) without costing encode time.
    shift = index * 3
    period = 256
    luma = bytearray(
        b"".join(ramp[(y + shift) % period : (y + shift) % period + width] for y in range(height))
    )
    top = 0
    if burn_index:
        left, block_width, band_height = _index_layout(width, height)
        row = bytearray([_BLACK]) * width
        for bit in range(INDEX_BITS):
            if (index >> (INDEX_BITS - 1 - bit)) & 1:
                start = left + bit * block_width
                row[start : start + block_width] = bytes([_WHITE]) * block_width
        luma[0 : band_height * width] = bytes(row) * band_height
        top = band_height
    # A square that crosses the picture: something visibly moving for people watching the demo.
    size = max(8, (height // 8) // 2 * 2)
    span = max(1, width - size)
    x = (index * 8) % (2 * span)
    x = x if x < span else 2 * span - x
    y0 = top + (height - top - size) // 2 // 2 * 2
    for y in range(y0, y0 + size):
        luma[y * width + x : y * width + x + size] = b"\xeb" * size
    luma[len(luma) - len(noise) :] = noise
    chroma_w, chroma_h = width // 2, height // 2
    u = bytearray(b"\x80") * (chroma_w * chroma_h)
    v = bytearray(b"\x80") * (chroma_w * chroma_h)
    # Orange, so the square is visibly a colour picture.
    for cy in range(y0 // 2, (y0 + size) // 2):
        start = cy * chroma_w + x // 2
        u[start : start + size // 2] = b"\x40" * (size // 2)
        v[start : start + size // 2] = b"\xc8" * (size // 2)
    return bytes(luma), bytes(u), bytes(v)


def _fill_plane(plane: av.video.plane.VideoPlane, data: bytes, width: int, height: int) -> None:
    """Copy tightly packed rows into a plane whose rows may be padded to its line size."""
    if plane.line_size == width:
        plane.update(data)
        return
    pad = b"\x00" * (plane.line_size - width)
    plane.update(b"".join(data[y * width : (y + 1) * width] + pad for y in range(height)))


def _tone(rate: int, seconds: int) -> bytes:
    """Signed 16-bit mono samples: a 440 Hz tone with a 1 kHz beep during the first 0.1 s of each second.

    Both frequencies are whole hertz, so one second repeats exactly and is computed once.
    """
    second = bytearray()
    for n in range(rate):
        t = n / rate
        sample = 0.2 * math.sin(2 * math.pi * 440 * t)
        if t < 0.1:
            sample += 0.3 * math.sin(2 * math.pi * 1000 * t)
        second += struct.pack("<h", round(sample * 32767))
    return bytes(second) * seconds


def _audio_rate(audio: AudioCodec | None, audio_rate: int | None) -> int:
    """The sample rate a clip gets: 8 kHz for G.711, 16 kHz for AAC (as cameras send) unless given."""
    if audio == "pcmu":
        return _PCMU_RATE
    return (audio_rate or _AAC_DEFAULT_RATE) if audio == "aac" else 0


def make_clip(
    path: str | os.PathLike[str],
    *,
    seconds: int = 10,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    gop: int = 50,
    video_bitrate: int = 1_000_000,
    audio: AudioCodec | None = "aac",
    audio_rate: int | None = None,
    burn_index: bool = True,
) -> Path:
    """Encode a test clip: H.264 (no B-frames, an IDR every ``gop`` frames) plus an audio tone.

    The container follows the suffix of ``path``: ``.mp4``, ``.mov`` or ``.ts`` (MPEG-TS). G.711
    cannot go into MP4 or MPEG-TS, so ``audio="pcmu"`` needs ``.mov``. AAC is mono at
    ``audio_rate`` (16 kHz, as cameras send it, unless given); PCMU is mono at 8 kHz.
    With ``burn_index``, frame ``i`` shows ``i`` as :data:`INDEX_BITS` black/white blocks along the
    top (read back with :func:`read_frame_index`). Returns ``path``.
    """
    out_path = Path(path)
    fmt = {".mp4": "mp4", ".mov": "mov", ".ts": "mpegts"}.get(out_path.suffix.lower())
    if fmt is None:
        raise ValueError(f"make_clip writes .mp4, .mov or .ts files, not {out_path.name!r}")
    if audio == "pcmu" and fmt != "mov":
        raise ValueError("G.711 (PCMU) cannot go into MP4 or MPEG-TS: write the clip as .mov")
    if width % 2 or height % 2 or seconds < 1 or fps < 1 or gop < 1:
        raise ValueError("width and height must be even; seconds, fps and gop at least 1")
    _index_layout(width, height)  # fails early on a picture too small for the index
    frames = seconds * fps
    rate = _audio_rate(audio, audio_rate)

    with av.open(str(out_path), "w", format=fmt) as container:
        video = container.add_stream(
            "libx264",
            rate=fps,
            options={
                # superfast keeps CABAC (Main/High profile, as cameras send) at half veryfast's
                # cost; one thread makes the output the same on every machine.
                "preset": "superfast",
                "threads": "1",
                # A fixed GOP without scene-cut keyframes and without B-frames, like a camera.
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0:aud=0",
            },
        )
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = video_bitrate
        audio_stream = None
        if audio is not None:
            audio_stream = container.add_stream("aac" if audio == "aac" else "pcm_mulaw", rate=rate)
            audio_stream.layout = "mono"
            if audio == "aac":
                audio_stream.bit_rate = 64_000

        ramp = bytes(40 + (i * 175 // 255) for i in range(256)) * 2
        ramp = (ramp * (width // len(ramp) + 2))[: width + 256]
        rng = random.Random(0)  # the same clip every time: the cache key is the parameters
        noise_rows = min(16, (height - _index_layout(width, height)[2]) // 4) // 2 * 2
        samples = _tone(rate, seconds) if audio_stream is not None else b""
        # PCMU goes in 20 ms frames (one RTP packet each); the AAC encoder re-chunks to 1024.
        step = _PCMU_CHUNK if audio == "pcmu" else max(1, rate // 50)
        audio_pos = 0
        for index in range(frames):
            # Audio up to the end of this frame first, so the muxer interleaves the streams (MPEG-TS
            # muxes what it holds after 10 s) and its first packet is the AAC priming at -1024:
            # the muxer then shifts every stream by it, where otherwise it would wrap in MPEG-TS.
            if audio_stream is not None:
                audio_pos = _encode_audio(
                    container, audio_stream, samples, audio_pos, (index + 1) * rate // fps, step
                )
            frame = av.video.frame.VideoFrame(width, height, "yuv420p")
            noise = rng.randbytes(noise_rows * width)
            y, u, v = _frame_planes(index, width, height, burn_index, ramp, noise)
            _fill_plane(frame.planes[0], y, width, height)
            _fill_plane(frame.planes[1], u, width // 2, height // 2)
            _fill_plane(frame.planes[2], v, width // 2, height // 2)
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            container.mux(video.encode(frame))
        if audio_stream is not None:
            _encode_audio(container, audio_stream, samples, audio_pos, seconds * rate, step)
            container.mux(audio_stream.encode(None))
        container.mux(video.encode(None))
    return out_path


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: bytes,
    start: int,
    end: int,
    step: int,
) -> int:
    """Encode and mux 16-bit mono ``samples[start:end]`` (in samples) in ``step``-sample frames."""
    rate = stream.codec_context.sample_rate
    for pos in range(start, end, step):
        count = min(step, end - pos)
        chunk = av.audio.frame.AudioFrame(format="s16", layout="mono", samples=count)
        chunk.planes[0].update(samples[pos * 2 : (pos + count) * 2])
        chunk.sample_rate = rate
        chunk.pts = pos
        chunk.time_base = Fraction(1, rate)
        container.mux(stream.encode(chunk))
    return end


def read_frame_index(frame: av.video.frame.VideoFrame) -> int:
    """The frame index :func:`make_clip` burnt into this decoded picture.

    Raises ValueError when a block is neither clearly black nor clearly white: the picture is
    damaged (a decoding error, a grey frame) or carries no index.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "gray", "nv12"):
        frame = frame.reformat(format="gray")
    width, height = frame.width, frame.height
    left, block_width, band_height = _index_layout(width, height)
    plane = frame.planes[0]
    stride = plane.line_size
    data = bytes(plane)
    # Sample the middle of each block: its edges blur into the neighbours under compression.
    rows = range(band_height // 4, band_height * 3 // 4, max(1, band_height // 8))
    inset = block_width // 4
    value = 0
    for bit in range(INDEX_BITS):
        x0 = left + bit * block_width + inset
        x1 = left + (bit + 1) * block_width - inset
        total = sum(sum(data[r * stride + x0 : r * stride + x1]) for r in rows)
        mean = total / (len(rows) * (x1 - x0))
        if _AMBIGUOUS[0] < mean < _AMBIGUOUS[1]:
            raise ValueError(f"frame index block {bit} has mean luma {mean:.0f}: damaged or no index")
        value = (value << 1) | (mean >= _AMBIGUOUS[1])
    return value


# --- demuxing ------------------------------------------------------------------------------------


def _split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (3- or 4-byte start codes)."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        nal = data[begin:end]
        # A 4-byte start code leaves its leading zero on the previous NAL unit; trailing zero bytes
        # are never part of a NAL unit (it ends with the rbsp stop bit).
        nal = nal.rstrip(b"\x00") if nxt >= 0 else nal
        if nal:
            nals.append(nal)
        start = nxt
    return nals


def _split_length_prefixed(data: bytes, size: int) -> list[bytes]:
    """NAL units of an AVCC (MP4) sample: each after a big-endian length of ``size`` bytes."""
    nals: list[bytes] = []
    pos = 0
    while pos + size <= len(data):
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
        nals.append(data[pos : pos + length])
        pos += length
    return nals


def _parse_avcc(extradata: bytes) -> tuple[int, list[bytes], list[bytes]]:
    """(NAL length size, SPSs, PPSs) of an AVCDecoderConfigurationRecord."""
    length_size = (extradata[4] & 0x03) + 1
    pos = 6
    sps_list: list[bytes] = []
    for _ in range(extradata[5] & 0x1F):
        n = int.from_bytes(extradata[pos : pos + 2], "big")
        sps_list.append(extradata[pos + 2 : pos + 2 + n])
        pos += 2 + n
    pps_list: list[bytes] = []
    count = extradata[pos]
    pos += 1
    for _ in range(count):
        n = int.from_bytes(extradata[pos : pos + 2], "big")
        pps_list.append(extradata[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return length_size, sps_list, pps_list


def _split_adts(data: bytes) -> tuple[list[bytes], bytes]:
    """Raw AAC frames of a run of ADTS frames, and the AudioSpecificConfig their headers describe."""
    frames: list[bytes] = []
    config = b""
    pos = 0
    while pos + 7 <= len(data):
        if data[pos] != 0xFF or data[pos + 1] & 0xF0 != 0xF0:
            raise ValueError("AAC data is neither raw (with extradata) nor ADTS")
        protection_absent = data[pos + 1] & 0x01
        profile = data[pos + 2] >> 6
        rate_index = (data[pos + 2] >> 2) & 0x0F
        channels = ((data[pos + 2] & 0x01) << 2) | (data[pos + 3] >> 6)
        length = ((data[pos + 3] & 0x03) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        header = 7 if protection_absent else 9
        frames.append(data[pos + header : pos + length])
        config = (((profile + 1) << 11) | (rate_index << 7) | (channels << 3)).to_bytes(2, "big")
        pos += length
    return frames, config


def _aac_config_rate(config: bytes) -> tuple[int, int]:
    """(sample rate, channels) from an AudioSpecificConfig (the common 2-byte forms)."""
    bits = int.from_bytes(config[:2], "big")
    rate_index = (bits >> 7) & 0x0F
    channels = (bits >> 3) & 0x0F
    if rate_index == 0x0F:
        raise ValueError("AudioSpecificConfig with an explicit sample rate is not supported")
    return _ADTS_RATES[rate_index], channels


def load_clip(path: str | os.PathLike[str]) -> Clip:
    """Demux a clip (MP4/MOV with avcC, or MPEG-TS with Annex B) into memory, once.

    Access unit delimiters are dropped; parameter sets found in-band are kept (and taken as the
    clip's SPS/PPS when the container has no avcC). AAC comes out raw with its
    AudioSpecificConfig, from the container or from ADTS headers; PCMU is re-chunked into 20 ms
    units. The audio keeps the whole frames nearest to the video's length (see :class:`Clip`).
    """
    src = Path(path)
    with av.open(str(src)) as container:
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        extradata = bytes(vstream.codec_context.extradata or b"")
        avcc = extradata[:1] == b"\x01"
        length_size, sps_list, pps_list = _parse_avcc(extradata) if avcc else (4, [], [])
        if not avcc and extradata:
            for nal in _split_annexb(extradata):
                (sps_list if nal[0] & 0x1F == 7 else pps_list).append(nal)
        width, height = vstream.codec_context.width, vstream.codec_context.height
        fps = Fraction(vstream.average_rate or vstream.guessed_rate or 25)

        raw_video: list[tuple[int, list[bytes], bool]] = []
        aac_frames: list[bytes] = []
        pcmu = bytearray()
        audio_config = b""
        audio_name = astream.codec_context.name if astream is not None else None
        if astream is not None and audio_name == "aac":
            audio_config = bytes(astream.codec_context.extradata or b"")
        streams = [vstream] if astream is None else [vstream, astream]
        for packet in container.demux(streams):
            if packet.size == 0:
                continue
            data = bytes(packet)
            if packet.stream.type == "video":
                if packet.pts is None or packet.time_base is None:
                    raise ValueError(f"{src.name}: a video packet without a timestamp")
                pts = round(packet.pts * packet.time_base * 90000)
                nals = _split_length_prefixed(data, length_size) if avcc else _split_annexb(data)
                # Access unit delimiters carry nothing a depacketizer needs.
                nals = [n for n in nals if n and n[0] & 0x1F != 9]
                for nal in nals:
                    if nal[0] & 0x1F == 7 and not sps_list:
                        sps_list.append(nal)
                    elif nal[0] & 0x1F == 8 and not pps_list:
                        pps_list.append(nal)
                raw_video.append((pts, nals, any(n[0] & 0x1F == 5 for n in nals)))
            elif audio_name == "aac":
                if audio_config:
                    aac_frames.append(data)
                else:
                    frames, audio_config = _split_adts(data)
                    aac_frames.extend(frames)
            elif audio_name == "pcm_mulaw":
                pcmu += data
    if not raw_video or not sps_list or not pps_list:
        raise ValueError(f"{src.name}: no H.264 video with parameter sets")
    if audio_name not in (None, "aac", "pcm_mulaw"):
        raise ValueError(f"{src.name}: audio codec {audio_name!r} is not AAC or G.711 µ-law")

    # Start at the first keyframe, timestamps from zero; the simulator needs no B-frames.
    first_key = next((i for i, (_, _, key) in enumerate(raw_video) if key), None)
    if first_key is None:
        raise ValueError(f"{src.name}: no IDR picture")
    raw_video = raw_video[first_key:]
    base = raw_video[0][0]
    units = tuple(AccessUnit(tuple(nals), pts - base, key) for pts, nals, key in raw_video)
    if any(b.pts <= a.pts for a, b in itertools.pairwise(units)):
        raise ValueError(f"{src.name}: timestamps are not increasing in decode order (B-frames?)")
    frame_ticks = round(90000 / fps) if len(units) < 2 else units[-1].pts - units[-2].pts
    duration = units[-1].pts + frame_ticks

    audio_codec: AudioCodec | None = None
    audio_rate = channels = audio_duration = 0
    audio_units: tuple[AudioUnit, ...] = ()
    if audio_name == "aac" and aac_frames:
        audio_codec = "aac"
        audio_rate, channels = _aac_config_rate(audio_config)
        count = min(len(aac_frames), max(1, round(duration * audio_rate / 90000 / _AAC_FRAME_SAMPLES)))
        audio_units = tuple(AudioUnit(f, i * _AAC_FRAME_SAMPLES) for i, f in enumerate(aac_frames[:count]))
        audio_duration = count * _AAC_FRAME_SAMPLES
    elif audio_name == "pcm_mulaw" and pcmu:
        audio_codec, audio_rate, channels = "pcmu", _PCMU_RATE, 1
        count = min(len(pcmu) // _PCMU_CHUNK, max(1, round(duration * audio_rate / 90000 / _PCMU_CHUNK)))
        audio_units = tuple(
            AudioUnit(bytes(pcmu[i : i + _PCMU_CHUNK]), i) for i in range(0, count * _PCMU_CHUNK, _PCMU_CHUNK)
        )
        audio_duration = count * _PCMU_CHUNK
    return Clip(
        width=width,
        height=height,
        fps=fps,
        sps=sps_list[0],
        pps=pps_list[0],
        video=units,
        duration=duration,
        audio_codec=audio_codec,
        audio_rate=audio_rate,
        audio_channels=channels,
        audio_config=audio_config if audio_codec == "aac" else b"",
        audio=audio_units,
        audio_duration=audio_duration,
        source=src,
    )


# --- cache ---------------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_loaded: dict[tuple[object, ...], Clip] = {}


def default_cache_dir() -> Path:
    """A per-user folder under the temporary directory where generated clips are kept."""
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"camhub-media-{user}"


def cached_clip(
    *,
    seconds: int = 10,
    width: int = 640,
    height: int = 360,
    fps: int = 25,
    gop: int = 50,
    video_bitrate: int = 1_000_000,
    audio: AudioCodec | None = "aac",
    audio_rate: int | None = None,
    burn_index: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Clip:
    """The clip :func:`make_clip` makes with these parameters, generated once and loaded once.

    The file is kept in ``cache_dir`` (default :func:`default_cache_dir`) under a name derived
    from the parameters, written atomically, so processes share it; the loaded :class:`Clip` is
    kept for the life of the process, so many simulated cameras share one copy in memory.
    """
    # Resolved values, not the arguments: a changed default must not hit an old file.
    params = (
        seconds,
        width,
        height,
        fps,
        gop,
        video_bitrate,
        audio,
        _audio_rate(audio, audio_rate),
        burn_index,
    )
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (str(folder), *params)
    with _cache_lock:
        if key in _loaded:
            return _loaded[key]
        digest = hashlib.sha256(repr((_MEDIA_FORMAT_VERSION, av.__version__, params)).encode()).hexdigest()
        path = folder / f"clip-{digest[:20]}{'.mov' if audio == 'pcmu' else '.mp4'}"
        clip = None
        if path.exists():
            try:
                clip = load_clip(path)
            except (av.error.FFmpegError, ValueError):
                clip = None  # damaged by something else: make it again
        if clip is None:
            folder.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}{path.suffix}")
            try:
                make_clip(
                    partial,
                    seconds=seconds,
                    width=width,
                    height=height,
                    fps=fps,
                    gop=gop,
                    video_bitrate=video_bitrate,
                    audio=audio,
                    audio_rate=audio_rate,
                    burn_index=burn_index,
                )
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
            clip = load_clip(path)
        _loaded[key] = clip
        return clip
