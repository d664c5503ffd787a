"""accord.registry.locks against real stores: a local disk and S3 over HTTP (moto)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fsspec.core import url_to_fs

from accord.errors import PublishError
from accord.registry.locks import exclusive
from tests.support import ROOT


def _hold_in_turns(fs, path: str, n: int, *, stale: float = 300.0) -> list[tuple[float, float]]:
    """Run `n` threads that each hold the lock for 0.2 s; return their (start, end) times."""
    inside: list[tuple[float, float]] = []

    def hold() -> None:
        with exclusive(fs, path, timeout=30, stale=stale, what="the test lock"):
            start = time.monotonic()
            time.sleep(0.2)
            inside.append((start, time.monotonic()))

    threads = [threading.Thread(target=hold) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(inside)


def _no_overlap(inside: list[tuple[float, float]]) -> bool:
    return all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(inside))


def test_file_lock_is_freed_the_moment_its_holder_dies(tmp_path):
    path = str(tmp_path / ".alias.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time
                from fsspec.implementations.local import LocalFileSystem
                from accord.registry.locks import exclusive
                with exclusive(LocalFileSystem(), {path!r}, timeout=5, stale=1, what="x"):
                    print("held", flush=True)
                    time.sleep(600)
            """),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        fs, _ = url_to_fs(str(tmp_path))
        with (
            pytest.raises(PublishError, match=r"could not lock alias 'production' of 'm' within 0s"),
            exclusive(fs, path, timeout=0.3, stale=0.1, what="alias 'production' of 'm'"),
        ):
            pass  # held by a live process: no stale timeout breaks it
        holder.kill()
        holder.wait()
        start = time.monotonic()
        with exclusive(fs, path, timeout=5, stale=300, what="x"):
            assert time.monotonic() - start < 1.0  # free at once, not after `stale`
    finally:
        holder.kill()


def test_file_lock_serialises_threads(tmp_path):
    fs, _ = url_to_fs(str(tmp_path))
    inside = _hold_in_turns(fs, str(tmp_path / ".l.lock"), 3)
    assert len(inside) == 3 and _no_overlap(inside)


def test_s3_lock_serialises_and_is_gone_after_release(s3_store):
    fs, root = url_to_fs(s3_store)
    path = f"{root}/m/aliases/.production.lock"
    inside = _hold_in_turns(fs, path, 3)
    assert len(inside) == 3 and _no_overlap(inside)
    fs.invalidate_cache()
    assert not fs.exists(path)


def test_s3_stale_lock_is_taken_over_by_exactly_one_waiter(s3_store):
    fs, root = url_to_fs(s3_store)
    path = f"{root}/m/aliases/.production.lock"
    fs.pipe_file(path, b'{"owner": "a run that died", "since": 0}')
    with (
        pytest.raises(PublishError, match="could not lock the test lock"),  # not stale yet
        exclusive(fs, path, timeout=0.3, stale=60, what="the test lock"),
    ):
        pass
    time.sleep(3.0)  # S3's LastModified has one-second resolution: old enough for stale=2
    inside = _hold_in_turns(fs, path, 3, stale=2.0)
    assert len(inside) == 3 and _no_overlap(inside)


def test_s3_release_keeps_a_lock_that_another_took_over(s3_store):
    fs, root = url_to_fs(s3_store)
    path = f"{root}/m/aliases/.production.lock"
    with exclusive(fs, path, timeout=5, stale=60, what="x"):
        fs.pipe_file(path, b'{"owner": "another", "since": 0}')  # as a takeover would
    fs.invalidate_cache()
    assert fs.cat_file(path) == b'{"owner": "another", "since": 0}'


def test_other_stores_lock_within_the_process(memory_store):
    fs, root = url_to_fs(memory_store)
    inside = _hold_in_turns(fs, f"{root}/.l.lock", 3)
    assert len(inside) == 3 and _no_overlap(inside)
