"""Cores of their own for accord's local workers.

When the workers of accord's LocalCluster, one thread each, are no more than the cores
this process may use, each worker claims a core no other accord worker on the machine
holds and runs all its threads there. A worker's threads hand work to each other all the
time: an XGBoost fit to the thread that runs its collective and back at every tree level,
a task to Dask's event loop. Left to the kernel, a woken thread could go to the core where
the other worker's fit was running and stop it there; pinned, the hand-offs stay on the
worker's own core. Measurements: docs/performance.md.

A claim is an exclusive ``flock`` on a per-user file named after the core, held as long as
the worker's process lives, so a worker that exits or crashes frees its core for the next
(adaptive scaling, a nanny's restart), and two runs on one machine never pin workers to
the same core: a worker that finds no free core runs where the kernel puts it, as without
pinning. Linux only; elsewhere, and for clusters a user brings, nothing is pinned.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# Set (to "1") in the environment of local workers that should claim cores (`pin_env`).
PIN_ENV = "ACCORD_PIN_CORES"

# The open lock files of the cores this process claimed: closing one frees its core.
_claimed: list[int] = []


def _available() -> list[int]:
    """The cores this process may run on, or none where the platform cannot pin."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def pin_env(workers: int, threads: int = 1) -> dict[str, str]:
    """The worker environment that makes local workers claim cores, if `workers` x `threads` fit."""
    cores = _available()
    return {PIN_ENV: "1"} if cores and workers * threads <= len(cores) else {}


def lock_dir() -> Path:
    """Where this user's accord workers hold their cores' lock files."""
    return Path(tempfile.gettempdir()) / f"accord-cores-{os.getuid()}"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `path`, or None if another process holds it."""
    import fcntl  # POSIX only: reached only where `_available` found cores to pin to

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _pin_threads(cores: set[int]) -> None:
    """Run every thread of this process on `cores`; threads they start later inherit it."""
    for _ in range(2):  # a thread started while the first pass ran is caught by the second
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                os.sched_setaffinity(int(tid), cores)


def claim_cores(count: int) -> list[int]:
    """Claim `count` cores no other accord worker holds and pin this process to them.

    Returns the cores, or [] (and pins nothing) where fewer than `count` are free or the
    platform cannot pin. The claim lasts as long as this process.
    """
    cores = _available()
    if not cores or _claimed:
        return []
    directory = lock_dir()
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return []
    held: dict[int, int] = {}
    for core in cores:
        fd = _try_lock(directory / f"{core}.lock")
        if fd is not None:
            held[core] = fd
            if len(held) == count:
                break
    if len(held) < count:
        for fd in held.values():
            os.close(fd)
        return []
    _claimed.extend(held.values())
    _pin_threads(set(held))
    return sorted(held)
