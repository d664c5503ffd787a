"""The bench's tables: scikit-learn's bundled sets and the ISLP package's, each with its target.

ISLP is fetched into ``bench/.cache/`` (``pip download --no-deps``, the wheel's CSV files
only): a bench-only dependency, never accord's. Its ``Auto`` table is left out (kept for
independent checks). Columns that would leak the target are ignored (``ignore_columns``),
and rows without a target are dropped into a cleaned copy.

    python -m bench.suite   # fetch, clean and list the tables
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from accord.types import Task

CACHE = Path(__file__).resolve().parent / ".cache"
ISLP_VERSION = "0.6.0"


@dataclass(frozen=True)
class Table:
    """One bench table: an accord data source, its target, its task and columns to ignore."""

    name: str
    task: Task
    source: str  # sklearn:<name>, or an ISLP CSV's name (fetched and cleaned by `source_url`)
    target: str | None = None
    ignore: tuple[str, ...] = ()
    drop_missing_target: bool = False
    notes: dict[str, Any] = field(default_factory=dict)

    def config_values(self) -> dict[str, Any]:
        """The TrainConfig fields that read this table."""
        values: dict[str, Any] = {"data": source_url(self)}
        if self.target:
            values["target"] = self.target
        if self.ignore:
            values["ignore_columns"] = list(self.ignore)
        return values


SUITE: tuple[Table, ...] = (
    Table("breast_cancer", "classification", "sklearn:breast_cancer"),
    Table("wine", "classification", "sklearn:wine"),
    Table("digits", "classification", "sklearn:digits"),
    Table("default", "classification", "Default", "default"),
    Table("oj", "classification", "OJ", "Purchase"),
    Table("caravan", "classification", "Caravan", "Purchase"),
    Table("college", "classification", "College", "Private"),
    Table("carseats_shelf", "classification", "Carseats", "ShelveLoc"),
    Table("diabetes", "regression", "sklearn:diabetes"),
    Table("boston", "regression", "Boston", "medv"),
    Table("carseats", "regression", "Carseats", "Sales"),
    Table("hitters", "regression", "Hitters", "Salary", drop_missing_target=True),
    Table("wage", "regression", "Wage", "wage", ignore=("logwage",)),  # log of the target
    Table("credit", "regression", "Credit", "Balance"),  # its ID column is dropped as ID-like
    Table("bikeshare", "regression", "Bikeshare", "bikers", ignore=("casual", "registered")),  # their sum
)


def islp_dir() -> Path:
    """The ISLP wheel's ``data/`` folder, fetched once into the cache."""
    data = CACHE / f"ISLP-{ISLP_VERSION}" / "ISLP" / "data"
    if data.is_dir():
        return data
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            "-d",
            str(CACHE),
            f"ISLP=={ISLP_VERSION}",
        ],
        check=True,
    )
    wheel = next(CACHE.glob(f"[Ii][Ss][Ll][Pp]-{ISLP_VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith("ISLP/data/") and member.endswith(".csv"):
                z.extract(member, CACHE / f"ISLP-{ISLP_VERSION}")
    return data


def source_url(table: Table) -> str:
    """The accord data source of `table`: its sklearn name, or a path to its (cleaned) CSV."""
    if table.source.startswith("sklearn:"):
        return table.source
    if table.source == "Auto":
        raise ValueError("ISLP's Auto table is kept for independent checks; the bench does not use it")
    path = islp_dir() / f"{table.source}.csv"
    if not table.drop_missing_target:
        return str(path)
    cleaned = CACHE / f"{table.name}.csv"
    if not cleaned.exists():
        frame = pd.read_csv(path)
        frame.dropna(subset=[table.target]).to_csv(cleaned, index=False)
    return str(cleaned)


def tables(task: Task | None = None, names: str | None = None) -> list[Table]:
    """The suite's tables, of one task or by comma-separated names."""
    chosen = [t for t in SUITE if task is None or t.task == task]
    if names:
        wanted = names.split(",")
        unknown = sorted(set(wanted) - {t.name for t in SUITE})
        if unknown:
            raise SystemExit(f"unknown tables {unknown}; the suite has {[t.name for t in SUITE]}")
        chosen = [t for t in chosen if t.name in wanted]
    return chosen


def main() -> None:
    from accord.data.dataset import load_dataset

    for table in SUITE:
        values = table.config_values()
        dataset = load_dataset(values["data"], values.get("target"), table.task, list(table.ignore))
        classes = f", {len(dataset.classes)} classes" if table.task == "classification" else ""
        dropped = f"; dropped {sorted(dataset.schema.dropped)}" if dataset.schema.dropped else ""
        size = f"{len(dataset.y):6d} rows {len(dataset.schema.names):3d} features"
        print(f"{table.name:15s} {table.task:14s} {size}{classes}{dropped}")


if __name__ == "__main__":
    main()
