"""Registry-aware result cache: a rerun after a crash does not train members again.

Each member x fold (and each refit) result is kept under ``<store>/.cache/results/<key>/``,
keyed on what determines it: the data fingerprint, the exact split, the member spec (its
parent pinned to a version), the fold, the seed, and the code that trains it
(`accord.registry.provenance.environment_digest`: accord's source and the installed versions of
scikit-learn, XGBoost, Keras and the rest), so an edit or an upgrade trains again.
Entries are written like versions — every file hashed, ``entry.json`` last — in formats
that cannot run code: NumPy arrays without pickle, member files in their published
formats, JSON.

Entries are kept `keep_seconds` (``ACCORD_CACHE_DAYS``, 7 days by default): a run that
finishes prunes the older ones from its store (`ResultCache.prune`), so a store that a
scheduled deployment retrains into every day does not grow without end.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from accord.config import MemberSpec
from accord.data.split import Prepared
from accord.registry.provenance import environment_digest
from accord.registry.refs import normalise_store
from accord.registry.store import put_whole
from accord.settings import setting
from accord.training.fit import FoldResult, RefitResult

ENTRY = "entry.json"
CACHE_DIR = ".cache/results"
SAFE_MEMBER_SUFFIXES = (".json", ".skops", ".ubj", ".keras")
KEEP_DAYS_ENV = "ACCORD_CACHE_DAYS"


def keep_seconds() -> float:
    """How long cached results are kept: ``$ACCORD_CACHE_DAYS`` days, 7 by default.

    Raises:
        ConfigError: The variable is not a number of days >= 0.
    """
    return setting("cache_days") * 86400


def split_digest(data: Prepared) -> str:
    """A digest of the exact split: training targets, fold indices and the test size."""
    h = hashlib.sha256(data.fingerprint.encode())
    h.update(np.ascontiguousarray(data.y_train).tobytes())
    for train, valid in data.folds:
        h.update(np.asarray(train, dtype="int64").tobytes())
        h.update(np.asarray(valid, dtype="int64").tobytes())
    h.update(str(len(data.y_test)).encode())
    return h.hexdigest()


def result_key(split: str, spec: MemberSpec, fold: int | None, seed: int, bag: bool = False) -> str:
    """The cache key of one member result (`fold` None for the refit); `split` from `split_digest`.

    A fold fitted for a bagging run (`bag`) keeps its model, so it has a key of its own.
    """
    document: dict[str, Any] = {
        "split": split,
        "spec": spec.model_dump(mode="json"),
        "fold": fold,
        "seed": seed,
        "environment": environment_digest(),
    }
    if bag:
        document["bag"] = True
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def run_key(split: str, data: Prepared, method: str, ensemble_size: int, seed: int) -> str:
    """What determines a published version's content: split, members, weighting, seed, code, libraries."""
    document = {
        "split": split,
        "members": [spec.model_dump(mode="json") for spec in data.members],
        "method": method,
        "ensemble_size": ensemble_size,
        "seed": seed,
        "environment": environment_digest(),
    }
    if data.bag:
        document["bag"] = True
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class ResultCache:
    """Member results kept beside the versions of a store."""

    def __init__(self, store: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.fs, root = url_to_fs(normalise_store(store), **dict(storage_options or {}))
        self.root = f"{root.rstrip('/')}/{CACHE_DIR}"
        self._local = isinstance(self.fs, LocalFileSystem)

    def _dir(self, key: str) -> str:
        if not _is_key(key):
            raise ValueError(f"invalid cache key {key!r}")
        return f"{self.root}/{key}"

    def _put(self, key: str, kind: str, meta: dict[str, Any], files: dict[str, bytes]) -> None:
        entry_dir = self._dir(key)
        entries = {}
        for path, data in sorted(files.items()):
            # The bytes are whole in memory, so one pipe writes them without a temporary
            # file (a refit's files are hundreds of MiB for big forests). A write cut short
            # leaves a file whose hash the entry, written last, does not match: a miss.
            if self._local:
                self.fs.makedirs(f"{entry_dir}/{path}".rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(f"{entry_dir}/{path}", data)
            entries[path] = hashlib.sha256(data).hexdigest()
        body = json.dumps({"kind": kind, "meta": meta, "files": entries}, sort_keys=True).encode()
        with tempfile.TemporaryDirectory(prefix="accord-cache-") as tmp:
            local = Path(tmp) / ENTRY
            local.write_bytes(body)
            put_whole(self.fs, local, f"{entry_dir}/{ENTRY}")  # last: the entry exists once whole

    def _get(self, key: str, kind: str) -> tuple[dict[str, Any], dict[str, bytes]] | None:
        entry_dir = self._dir(key)
        try:
            document = json.loads(self.fs.cat_file(f"{entry_dir}/{ENTRY}"))
            if document.get("kind") != kind:
                return None
            files = {}
            for path, digest in document["files"].items():
                if (
                    ".." in path.split("/")
                    or path.startswith("/")
                    or not path.endswith((".npy", *SAFE_MEMBER_SUFFIXES))
                ):
                    return None
                data = self.fs.cat_file(f"{entry_dir}/{path}")
                if hashlib.sha256(data).hexdigest() != digest:
                    return None  # a damaged entry is a miss: the member is trained again
                files[path] = data
            return document["meta"], files
        except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
            return None

    def prune(self, max_age: float, now: float | None = None) -> int:
        """Remove the entries written more than `max_age` seconds before `now`; return how many.

        An entry's age is its ``entry.json``'s or, for one never finished (no entry), its
        newest file's. Each ``entry.json`` goes first, so a reader meanwhile finds a whole
        entry or a miss. Only entry folders (64 hex digits) are touched.
        """
        now = time.time() if now is None else now
        try:
            listing = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return 0
        prefix = f"{self.root}/"
        newest: dict[str, float] = {}
        written: dict[str, float] = {}
        for path, info in listing.items():
            if not path.startswith(prefix):
                continue
            key, _, rest = path.removeprefix(prefix).partition("/")
            if not _is_key(key):
                continue
            when = _modified(self.fs, path, info)
            newest[key] = max(newest.get(key, -math.inf), when)
            if rest == ENTRY:
                written[key] = when
        stale = sorted(k for k in newest if written.get(k, newest[k]) < now - max_age)
        if stale:
            self.fs.rm([f"{self._dir(k)}/{ENTRY}" for k in stale if k in written])
            self.fs.rm([self._dir(k) for k in stale], recursive=True)
        return len(stale)

    def put_fold(self, key: str, result: FoldResult) -> None:
        """Keep one fold's out-of-fold predictions, and its model when it kept one."""
        meta: dict[str, Any] = {"member": result.member, "fold": result.fold, "seconds": result.seconds}
        files = {"predictions.npy": _array_bytes(result.predictions)}
        if result.model is not None:
            model_meta, model_files = _refit_entry(result.model)
            meta["model"] = model_meta
            files.update({f"model/{p}": d for p, d in model_files.items()})
        self._put(key, "fold", meta, files)

    def get_fold(self, key: str) -> FoldResult | None:
        """A kept fold result, or None."""
        found = self._get(key, "fold")
        if found is None:
            return None
        meta, files = found
        model = None
        if "model" in meta:
            own = {p.removeprefix("model/"): d for p, d in files.items() if p.startswith("model/")}
            model = _refit_from(meta["model"], own)
        predictions = _array(files["predictions.npy"])
        return FoldResult(meta["member"], meta["fold"], predictions, meta["seconds"], model)

    def put_refit(self, key: str, result: RefitResult) -> None:
        """Keep one refit: the member's files, its test predictions and its info."""
        meta, files = _refit_entry(result)
        self._put(key, "refit", meta, files)

    def get_refit(self, key: str) -> RefitResult | None:
        """A kept refit, or None."""
        found = self._get(key, "refit")
        if found is None:
            return None
        return _refit_from(*found)


def _refit_entry(result: RefitResult) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A refit (or a fold's kept model) as a cache entry's meta and files."""
    meta = {
        "member": result.member,
        "kind": result.kind,
        "info": result.info,
        "seconds": result.seconds,
        "predict_seconds": result.predict_seconds,
        "extra": result.extra,
    }
    files = {f"member/{p}": d for p, d in result.files.items()}
    files["test_predictions.npy"] = _array_bytes(result.test_predictions)
    return meta, files


def _refit_from(meta: Mapping[str, Any], files: Mapping[str, bytes]) -> RefitResult:
    """The refit a cache entry's meta and files hold (`_refit_entry`)."""
    member_files = {p.removeprefix("member/"): d for p, d in files.items() if p.startswith("member/")}
    return RefitResult(
        meta["member"],
        meta["kind"],
        meta["info"],
        member_files,
        _array(files["test_predictions.npy"]),
        meta["seconds"],
        meta.get("extra", {}),
        meta.get("predict_seconds"),
    )


def _is_key(name: str) -> bool:
    """Whether `name` is an entry's key (a SHA-256 in hex), as `result_key` makes them."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _modified(fs: Any, path: str, info: Mapping[str, Any]) -> float:
    """When a file was last written (seconds since the epoch), from a listing's info or the store."""
    for field in ("mtime", "LastModified", "created"):  # local, S3, memory
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return float(fs.modified(path).timestamp())
