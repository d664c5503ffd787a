"""Handing a process's freed C heap back to the operating system after a fit.

A fit allocates and frees many arrays too small to be mapped on their own (under glibc's
mmap threshold; accord's local workers set theirs in `runtime.local_workers.WORKER_MALLOC`):
glibc keeps the freed ones in its heaps, and returns them only from the top of a heap. Once a
fit has ended, the memory it freed in the middle stays in the worker's resident set, and
Dask counts it as the worker's unmanaged memory until the process exits. Dask's own
advice for that is glibc's ``malloc_trim(0)`` (its documentation's "Memory not released
back to the OS"), which is what `release_free_memory` calls. Nothing else: no other
allocator (macOS's, musl's) is touched, and the Python objects still alive are not.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` where it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        return None
    return trim


def release_free_memory() -> bool:
    """Give the free pages of this process's C heaps back to the operating system.

    Call it when a fit's memory has been freed (its function returned): what the fit left
    free is then no longer resident, and a long-lived worker holds what it holds, not the
    most its fits ever needed. The pages come back, zeroed, when the heap grows again.

    Returns:
        Whether there was a glibc to ask (False elsewhere: nothing was done).
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
