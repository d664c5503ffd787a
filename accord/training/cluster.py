"""Members that train across the whole cluster: the partitioned table, the lock, one fold's work.

A distributed member (``xgboost_dask``) is scheduled like any other member x fold task,
but its task does not fit anything itself: it secedes from its worker thread
(`distributed.worker_client`), takes the cluster-wide lock that serialises such fits
(several ``xgboost.dask`` fits at once can hang when workers have one thread), and
drives a fit in which every worker trains on the partitions it holds.

Each row of the table carries its role (the fold a training row validates, or -1 for a
test row) and its encoded target. A Parquet source is read by the workers row group by
row group, straight from its URL; any other source is partitioned from the prepared
frames. The task that reads (or holds) a partition also splits it into the rows the fit
trains on and the rows it predicts, encoded for the member, so the raw partition is gone
when its task ends: a worker holds its share of the table once, encoded, not also raw.
Filtering on the role keeps row order, so a fold's predictions line up with the in-memory
members' folds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from accord.config import MemberSpec
from accord.data.chunks import Chunk, plan
from accord.data.schema import Schema
from accord.data.tables import table_format
from accord.members import member_class
from accord.training.memory import release_free_memory

if TYPE_CHECKING:
    from collections.abc import Iterator

    import dask.dataframe as dd
    from distributed import Client

    from accord.data.split import Prepared

LOCK_NAME = "accord-distributed-fit"
ROLE = "__role__"
TARGET = "__y__"
TEST_ROLE = -1
# Rows per partition at most. Reading, splitting and encoding a partition briefly holds a
# few copies of it (Arrow, pandas, the encoded rows), so smaller partitions lower a
# worker's peak; 100k-row partitions left it higher at 1M rows in bench/scale.
CHUNK_ROWS = 50_000


def is_distributed(kind: str) -> bool:
    """Whether members of `kind` train across the cluster rather than inside one task."""
    return bool(getattr(member_class(kind), "distributed", False))


def on_worker() -> bool:
    """Whether this code runs inside a Dask worker."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return False
    return True


@contextmanager
def cluster_client() -> Iterator[Client]:
    """A client to the cluster this task runs on, holding the lock for distributed fits.

    The task's thread secedes while it waits, so the worker can run other tasks,
    including its part of the distributed fit.
    """
    from distributed import Lock, worker_client

    with worker_client() as client, Lock(LOCK_NAME):
        yield client


def roles(data: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """The role (fold, or -1 for test) and encoded target of every source row, in source order."""
    if data.train_rows is None or data.test_rows is None:
        raise RuntimeError("the prepared data does not record its source rows")
    n = len(data.train_rows) + len(data.test_rows)
    role = np.full(n, TEST_ROLE, dtype="int8")
    y = np.zeros(n, dtype=data.y_train.dtype)
    for k, (_, valid) in enumerate(data.folds):
        role[data.train_rows[valid]] = k
    y[data.train_rows] = data.y_train
    y[data.test_rows] = data.y_test
    return role, y


def _read_part(chunk: Chunk, start: int, role: np.ndarray, y: np.ndarray, schema: Schema) -> pd.DataFrame:
    frame = schema.conform(chunk.read())
    stop = start + len(frame)
    frame[ROLE] = role[start:stop]
    frame[TARGET] = y[start:stop]
    return frame


Encoder = Callable[[pd.DataFrame], pd.DataFrame]


def _split(
    frame: pd.DataFrame, names: list[str], fold: int | None, encode: Encoder
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """A partition's encoded training rows, their targets and its encoded rows to predict."""
    role = frame[ROLE].to_numpy()
    if fold is None:
        train, predict = role >= 0, role == TEST_ROLE
    else:
        train, predict = (role >= 0) & (role != fold), role == fold
    return encode(frame.loc[train, names]), frame[TARGET][train], encode(frame.loc[predict, names])


def _read_split(
    chunk: Chunk,
    start: int,
    role: np.ndarray,
    y: np.ndarray,
    schema: Schema,
    fold: int | None,
    encode: Encoder,
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    return _split(_read_part(chunk, start, role, y, schema), schema.names, fold, encode)


@dataclass
class Split:
    """One fold's rows on the cluster, encoded: training features and targets, rows to predict."""

    X_train: dd.DataFrame
    y_train: dd.Series
    X_predict: dd.DataFrame
    workers: int  # how many workers hold training rows


def partitioned(
    client: Client,
    data: Prepared,
    fold: int | None,
    encode: Encoder,
    meta: pd.DataFrame,
    chunk_rows: int = CHUNK_ROWS,
) -> Split:
    """The rows of fold `fold` (None: the refit) split and encoded on the workers.

    A Parquet source is planned by row groups and each partition is read by a worker;
    the roles and targets (one small array each, sent to every worker once) are sliced
    beside it. Other sources are sent to the cluster once, chunk by chunk. There are at
    least two partitions per worker, so every worker holds a part of the table. `encode`
    turns a partition's features into the member's input, described by `meta`.
    """
    import dask.dataframe as dd
    from distributed import wait

    role, y = roles(data)
    # Each partition's task is sent to the workers in turn: left to itself, the scheduler
    # may run every read on one idle worker, and the fit would then use only that one.
    # The preference is loose, so a partition still finds a home if its worker leaves.
    addresses = sorted(client.nthreads())
    chunk_rows = max(1, min(chunk_rows, -(-len(role) // (2 * len(addresses)))))
    if is_parquet(data.source):
        # every worker gets the (small) roles and targets once and reads its own row groups
        role_f, y_f = client.scatter([role, y], hash=False, broadcast=True)
        chunks = plan(data.source, chunk_rows).chunks
        calls = [(c, i * chunk_rows, role_f, y_f, data.schema, fold, encode) for i, c in enumerate(chunks)]
        parts = _spread(client, addresses, _read_split, calls)
    else:
        train = data.X_train.assign(**{ROLE: role[data.train_rows], TARGET: data.y_train})
        test = data.X_test.assign(**{ROLE: np.full(len(data.y_test), TEST_ROLE, "int8"), TARGET: data.y_test})
        whole = pd.concat([train, test], ignore_index=True)
        # A scatter from inside a task keeps every chunk on this worker; the split task
        # sent to each worker in turn moves its chunk there.
        local = client.scatter([whole.iloc[i : i + chunk_rows] for i in range(0, len(whole), chunk_rows)])
        parts = _spread(client, addresses, _split, [(p, data.schema.names, fold, encode) for p in local])
    # Each piece is taken on the worker holding its partition (left to itself, an idle
    # worker may fetch small partitions); the partition's tuple is then released.
    wait(parts)
    where = client.who_has(parts)
    pieces = [
        [
            client.submit(
                operator.getitem, p, i, workers=list(where[p.key]), allow_other_workers=True, pure=False
            )
            for p in parts
        ]
        for i in range(3)
    ]
    del parts
    wait(pieces[0])
    holders = {w for ws in client.who_has(pieces[0]).values() for w in ws}
    y_meta = pd.Series(dtype=y.dtype, name=TARGET)
    return Split(
        dd.from_delayed(pieces[0], meta=meta, verify_meta=False),
        dd.from_delayed(pieces[1], meta=y_meta, verify_meta=False),
        dd.from_delayed(pieces[2], meta=meta, verify_meta=False),
        workers=len(holders),
    )


def _spread(client: Client, addresses: list[str], func: Any, calls: list[tuple[Any, ...]]) -> list[Any]:
    """Submit ``func(*args)`` for each args, sent to the workers in turn (loosely: another may take it)."""
    return [
        client.submit(
            func, *args, workers=[addresses[i % len(addresses)]], allow_other_workers=True, pure=False
        )
        for i, args in enumerate(calls)
    ]


def is_parquet(source: str) -> bool:
    """Whether a data source is a Parquet URL (read by workers in row-group partitions)."""
    try:
        return table_format(source, "data") == "parquet"
    except Exception:
        return False


def fit_on_cluster(
    spec: MemberSpec, data: Prepared, fold: int | None, seed: int, threads: int
) -> tuple[Any, np.ndarray]:
    """Fit a distributed member on the cluster for one fold (None: the refit) and predict.

    Returns:
        The fitted member and its predictions: the held-out fold's rows (a fold) or the
        test split's rows (the refit), in the same order as the in-memory frames.
    """
    cls = member_class(spec.kind)
    member = cls(data.task, spec.params, n_classes=data.n_classes, seed=seed, threads=threads)
    with cluster_client() as client:
        # What earlier fits freed on any worker (their parts of a fit across the cluster
        # run in tasks that are not accord's, which `fit_fold` cannot trim) goes back to
        # the operating system before this fit allocates its own. Housekeeping: a worker
        # that fails it (or has left) does not fail the fit.
        client.run(release_free_memory, on_error="ignore")
        member.prepare_encoding(data.schema)  # type: ignore[attr-defined]
        split = partitioned(client, data, fold, member.encoder(), member.encoded_meta())  # type: ignore[attr-defined]
        member.fit_encoded(client, split.X_train, split.y_train, split.workers)  # type: ignore[attr-defined]
        predictions = member.predict_encoded(client, split.X_predict)  # type: ignore[attr-defined]
    return member, predictions
