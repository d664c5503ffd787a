"""Memory a fit leaves in the C heap, made on purpose: freed, still resident, below a live block.

`leave_freed_memory` mallocs many 64 KiB blocks (under every mmap threshold, so they come
from a heap), writes to them so they are resident, keeps every eighth and frees the rest.
glibc returns freed memory on its own only from the top of a heap or a heap wholly free,
and a kept block bounds every run of freed ones, so those stay in the resident set until
the heap is trimmed. Runs in the test process or, through ``client.run``, in a Dask worker
(glibc only, as `accord.training.memory`).
"""

from __future__ import annotations

import ctypes
import functools

BLOCK = 64 * 1024

_kept: list[int] = []


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library (glibc), loaded on first use: importing this module elsewhere does not fail."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


def leave_freed_memory(mib: int = 200) -> float:
    """Leave `mib` MiB freed but resident in this process's heap; return the resident set in MiB."""
    blocks = []
    for _ in range(mib * 2**20 // BLOCK * 8 // 7):
        block = _libc().malloc(BLOCK)
        ctypes.memset(block, 1, BLOCK)
        blocks.append(block)
    for i, block in enumerate(blocks, 1):
        if i % 8:
            _libc().free(block)
        else:
            _kept.append(block)
    return resident_mib()


def resident_mib() -> float:
    """This process's resident set in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def free_kept() -> None:
    """Free the blocks `leave_freed_memory` kept."""
    while _kept:
        _libc().free(_kept.pop())
