"""Benchmark hygiene: make glibc's malloc keep freed memory, so large arrays do not cost page faults.

glibc returns memory to the system (trimming the heap, unmapping chunks above an adaptive mmap threshold);
which of several variants timed in one process then pays the page faults of its large arrays depends on the
order they happen to allocate and free in. `keep_freed_memory()` fixes the thresholds (`mallopt`: no trimming
below 1 GB, mmap only above 64 MB) for the whole process, so every variant reuses freed memory alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Set the thresholds; False where the C library has no `mallopt` (not glibc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


def minor_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
