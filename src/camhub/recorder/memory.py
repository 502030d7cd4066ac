"""Process-wide memory tuning for a recording process (many channels, one process).

FFmpeg allocates and frees buffers of a few hundred kilobytes to a few megabytes per channel
(fragment buffers, probe buffers, RTP reassembly). glibc serves a block that large with ``mmap``
and gives it back on ``free`` — until the first such block is freed: its *dynamic* mmap threshold
then rises to that size, later blocks come from the threads' heaps instead, and the heaps keep
what was freed. With fifty channel threads that fragmentation cost about 2 MB per channel
(measured: docs/benchmarks.md, "Recording N live streams beside ffmpeg").

:func:`limit_freed_memory` fixes the threshold, which keeps large blocks on ``mmap`` and returns
them to the system. ``camhub run`` calls it at start; an application embedding the recorder may
call it once too. It changes nothing but memory behaviour, and nothing off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["MMAP_THRESHOLD", "limit_freed_memory"]

#: Blocks at least this large are mapped and unmapped on their own (glibc's initial default).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@functools.cache
def limit_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process; False when the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
