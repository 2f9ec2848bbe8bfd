"""Keep freed host memory for reuse (glibc's allocator), so the unroll's buffers are not re-faulted every step.

Why: an unrolled generator step on the CPU allocates and frees dozens of buffers of a few hundred kilobytes
(the 2-D experiment's [1024, 128] activations, kept for the backward pass). glibc serves blocks above a
threshold that starts at 128 KiB with fresh ``mmap`` pages and returns them on free, so every step pays the
kernel to zero and map those pages again, and returns heap tops to the kernel as soon as they are free.
A fixed mmap threshold of 64 MiB (which also stops glibc's sliding one) and a 64 MiB top pad keep those
blocks in the heap, reused from one step to the next. Measured (``bench.unroll_cost``, one thread): the MoG
K = 10 iteration 22.4 -> 17.8 ms, the Stacked MNIST K = 5 iteration 179 -> 166 ms. It changes no number a
trial computes (only where its memory comes from), so it is on for every trial; a process can keep at most
its peak heap, which a trial reaches anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TOP_PAD, _M_MMAP_THRESHOLD = -2, -3  # glibc's malloc.h
KEEP_BYTES = 64 * 2**20

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the setting once per process; True when it took effect (glibc), False where there is no glibc."""
    global _applied
    if _applied is None:
        _applied = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
        except OSError:
            mallopt = None
        if mallopt is not None:
            # mallopt returns 1 on success, 0 on error (musl and others lack it: no attribute).
            _applied = bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(mallopt(_M_TOP_PAD, KEEP_BYTES))
    return _applied
