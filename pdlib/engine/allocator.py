"""Keep the C heap from handing freshly mapped pages to every engine step (glibc only).

A decode step allocates a few MB of temporaries (each request's gathered context, activations)
and frees them again. glibc's ``malloc`` serves a request above its *mmap threshold* with a fresh
``mmap`` and returns it with ``munmap`` on free, so the next step takes a page fault per 4 KiB
page and zero-fills it again. The threshold is dynamic: it rises to the size of the last mmapped
block freed (at most 32 MiB). A decode step's context grows by one token per step, so each
step's temporaries are a little *larger* than the block just freed and are mapped afresh again,
step after step — unless the process once freed a larger block, which depends on its history.
In the disaggregated run the decode worker that received its KV over gloo paid about 1,300
minor faults and 5 ms of kernel time per decode step (context 2,048, +25 % step time), while the
one whose cache had been moved to shared memory (which frees a 16 MiB block and so raises the
threshold) paid 9. Measured engines must not depend on that.

:func:`steady_allocator` fixes both thresholds: blocks below 32 MiB come from the heap and freed
heap memory is kept for reuse, so a steady loop of same-sized steps stops faulting after its
first step. The cost is that this process keeps up to its peak heap mapped.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["steady_allocator", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # mallopt parameter numbers from glibc's malloc.h
MMAP_THRESHOLD = 32 << 20        # bytes: the largest value glibc accepts on 64-bit
TRIM_THRESHOLD = 1 << 30         # bytes of free heap top kept before returning memory to the OS


def steady_allocator() -> bool:
    """Set glibc's mmap threshold to :data:`MMAP_THRESHOLD` and its trim threshold to
    :data:`TRIM_THRESHOLD` (bytes) for this process. Returns True when applied, False where
    there is no glibc ``mallopt`` (macOS, Windows, musl), which leaves the process as it was."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
