"""The worker preload in a client's own process."""

from __future__ import annotations

import sys

from distributed import Client, LocalCluster

from runtime.local_workers import (
    WORKER_PRELOAD,
)
from tests.support.workers import collector_state


def test_a_worker_in_the_clients_process_leaves_its_collector_alone():
    # Freezing is for a worker whose process ends with it; here the process is the test's.
    assert collector_state() == {"enabled": True, "frozen": 0}
    cluster = LocalCluster(n_workers=1, processes=False, preload=WORKER_PRELOAD, dashboard_address=":0")
    with cluster, Client(cluster) as client:
        assert "runtime.preload" in sys.modules  # the preload ran, here
        assert list(client.run(collector_state).values()) == [{"enabled": True, "frozen": 0}]
    assert collector_state() == {"enabled": True, "frozen": 0}  # nor at its teardown
