"""Exclusive locks across processes, on whatever store holds the registry.

Why here: the promotion gate reads an alias, compares, and writes it; two runs doing that
at once must take turns, or one update is lost.

- Local disk: an OS file lock (``flock``) on the lock file. The kernel frees it the moment
  its holder exits, however it exits, so there is no stale lock to break.
- S3: an object created only if absent (``If-None-Match: *``). A holder that died leaves
  it behind; once it is older than `stale` seconds a waiter takes it over by overwriting
  it only if it is still the object it read (``If-Match: <ETag>``), so exactly one waiter
  wins. On release it is deleted only while it is still ours.
- Any other filesystem: a lock within this process (such stores are not shared).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from accord.errors import PublishError
from accord.registry.refs import protocols

_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def exclusive(fs: Any, path: str, *, timeout: float, stale: float, what: str) -> Iterator[None]:
    """Hold the lock at `path` on `fs` for the block.

    Args:
        fs: the fsspec filesystem of the registry.
        path: the lock's path on `fs`, in an existing folder.
        timeout: seconds to wait for the lock before giving up.
        stale: seconds after which an S3 lock whose holder never released it is taken over.
        what: what the lock guards, for the error message.

    Raises:
        PublishError: the lock was not free within `timeout` seconds; names `what` and `path`.
    """
    if isinstance(fs, LocalFileSystem):
        lock: contextlib.AbstractContextManager[None] = _file_lock(path, timeout, what)
    elif "s3" in protocols(fs):
        lock = _s3_lock(fs, path, timeout, stale, what)
    else:
        lock = _process_lock(path, timeout, what)
    with lock:
        yield


def _wait(try_once: Callable[[], bool], timeout: float, what: str, path: str) -> None:
    """Call `try_once` until it returns True, backing off from 20 ms to 1 s between tries."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while not try_once():
        left = deadline - time.monotonic()
        if left <= 0:
            raise PublishError(
                f"could not lock {what} within {timeout:.0f}s ({path}): another run holds it. "
                "Wait for that run to finish, or raise the timeout."
            )
        time.sleep(min(left, pause * (1 + secrets.randbelow(100) / 100)))
        pause = min(pause * 2, 1.0)


@contextlib.contextmanager
def _holding(
    try_once: Callable[[], bool], release: Callable[[], None], timeout: float, what: str, path: str
) -> Iterator[None]:
    """Take a lock by `try_once` (`_wait`), hold it for the block, then `release` it."""
    _wait(try_once, timeout, what, path)
    try:
        yield
    finally:
        release()


@contextlib.contextmanager
def _file_lock(path: str, timeout: float, what: str) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)

    def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        with _holding(try_once, lambda: fcntl.flock(fd, fcntl.LOCK_UN), timeout, what, path):
            yield
    finally:
        os.close(fd)  # the file stays: deleting it would let a waiter lock an unlinked inode


def _s3_lock(
    fs: Any, path: str, timeout: float, stale: float, what: str
) -> contextlib.AbstractContextManager[None]:
    token = json.dumps({"owner": secrets.token_hex(8), "since": time.time()}).encode()

    def try_once() -> bool:
        try:
            fs.pipe_file(path, token, IfNoneMatch="*")
            return True
        except FileExistsError:
            pass
        try:
            info = fs.info(path, refresh=True)
        except FileNotFoundError:
            return False  # released just now: the next try may create it
        modified = info.get("LastModified")
        age = time.time() - modified.timestamp() if modified is not None else 0.0
        if age <= stale:
            return False
        try:  # its holder is gone: take it over, unless another waiter did first
            fs.pipe_file(path, token, IfMatch=info["ETag"])
        except (FileExistsError, FileNotFoundError, OSError):
            return False
        return True

    def release() -> None:
        with contextlib.suppress(Exception):  # best effort: a lock left behind goes stale
            fs.invalidate_cache(path)
            if fs.cat_file(path) == token:
                fs.rm_file(path)

    return _holding(try_once, release, timeout, what, path)


def _process_lock(path: str, timeout: float, what: str) -> contextlib.AbstractContextManager[None]:
    with _PROCESS_LOCKS_GUARD:
        lock = _PROCESS_LOCKS.setdefault(path, threading.Lock())
    return _holding(lambda: lock.acquire(blocking=False), lock.release, timeout, what, path)
