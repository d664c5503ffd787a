"""Core pinning: each local worker on a core of its own, freed as it exits."""

from __future__ import annotations

import os
import time

import pytest
from distributed import Client

from accord.config import make_config
from runtime.cores import PIN_ENV, _try_lock, lock_dir
from runtime.runner import AccordLocalCluster, task_runner_for

pytestmark = pytest.mark.slow  # every test here runs a flow or starts a cluster


def _cores_of_threads() -> list[tuple[int, ...]]:
    """The distinct sets of cores this process's threads may run on."""
    return sorted({tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})


def _single_cores(affinities: dict[str, list[tuple[int, ...]]]) -> dict[str, int]:
    """Worker -> the one core all its threads run on; fails if any worker runs on more."""
    assert all(len(a) == 1 and len(a[0]) == 1 for a in affinities.values()), affinities
    return {w: a[0][0] for w, a in affinities.items()}


def test_local_workers_each_run_on_a_core_of_their_own_and_free_it_as_they_exit():
    cores = sorted(os.sched_getaffinity(0))
    n = min(2, len(cores))
    kwargs = task_runner_for(make_config({"workers": n})).cluster_kwargs
    with AccordLocalCluster(**kwargs) as cluster, Client(cluster) as client:
        first = _single_cores(client.run(_cores_of_threads))
        assert len(set(first.values())) == n  # a core each, every thread of the worker on it
        # A worker that exits frees its core: the test can lock it, and a new worker takes one.
        cluster.scale(n - 1)
        while len(client.scheduler_info()["workers"]) > n - 1:
            time.sleep(0.1)
        kept = set(_single_cores(client.run(_cores_of_threads)).values())
        (retired,) = set(first.values()) - kept
        # The scheduler lets a worker go before its process has exited, and the lock goes
        # with the process: wait for that (CI once tried the lock in between).
        deadline = time.monotonic() + 15
        while (fd := _try_lock(lock_dir() / f"{retired}.lock")) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fd is not None
        os.close(fd)
        cluster.scale(n)
        client.wait_for_workers(n)
        again = _single_cores(client.run(_cores_of_threads))
        assert len(set(again.values())) == n
        # Another run on this machine never shares a core with this one's workers.
        with AccordLocalCluster(**{**kwargs, "n_workers": 1}) as other, Client(other) as other_client:
            (theirs,) = other_client.run(_cores_of_threads).values()
        if len(cores) > n:
            assert len(theirs) == 1 and len(theirs[0]) == 1 and theirs[0][0] not in again.values()
        else:
            assert theirs == [tuple(cores)]  # none free: it runs where the kernel puts it
    # More workers than cores (fixed or as adaptive scaling's maximum): none is pinned.
    more = len(cores) + 1
    assert PIN_ENV in kwargs["env"]
    assert PIN_ENV not in task_runner_for(make_config({"workers": more})).cluster_kwargs["env"]
    adaptive = task_runner_for(make_config({"adapt": {"minimum": 1, "maximum": more}}))
    assert PIN_ENV not in adaptive.cluster_kwargs["env"]
    crowded = {**kwargs, "n_workers": more, "env": adaptive.cluster_kwargs["env"]}
    with AccordLocalCluster(**crowded) as cluster, Client(cluster) as client:
        assert list(client.run(_cores_of_threads).values()) == [[tuple(cores)]] * more
