"""Table files at fsspec URLs: their format, their header, and the refusals every reader shares.

Training (`accord.data`) and batch prediction (`accord.batch`) both read CSV and
Parquet files; the format is told from the name here, once, and a header that pandas
would silently rename (two columns called ``x1`` become ``x1`` and ``x1.1``) is
refused here, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from accord.errors import ConfigError, DataError
from accord.types import TableFormat

COMPRESSED_CSV = (".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")
MAX_SHOWN = 5  # bad cells quoted in one message


def table_format(url: str, what: str, *, compressed: bool = True) -> TableFormat:
    """The table format named by a URL's suffix.

    Args:
        url: The file's URL (a query string is ignored).
        what: What the URL is for, to name in the error (e.g. ``input``).
        compressed: Whether compressed CSV (``.csv.gz`` and the like) is accepted; an
            output is written uncompressed, so it is not.

    Raises:
        ConfigError: the suffix is not one of the accepted ones.
    """
    lowered = url.lower().split("?")[0]
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith(".csv") or (compressed and lowered.endswith(COMPRESSED_CSV)):
        return "csv"
    accepted = ".parquet, .pq, .csv" + (", " + ", ".join(COMPRESSED_CSV) if compressed else "")
    raise ConfigError(f"{what}: cannot tell the format of {url!r}; expected a name ending in {accepted}.")


def unreadable(url: str, e: Exception) -> DataError:
    """The error for a table that cannot be read, by the cause's kind."""
    if isinstance(e, FileNotFoundError):
        return DataError(f"cannot read {url!r}: no such file. Check the URL.")
    if isinstance(e, PermissionError):
        return DataError(f"cannot read {url!r}: access denied. Check the credentials.")
    return DataError(f"cannot read {url!r}: {type(e).__name__}: {e}. Check the URL and format.")


def csv_header(url: str) -> list[str]:
    """The column names in a CSV file's first line, as written (pandas would rename repeats).

    Raises:
        DataError: the file cannot be read.
    """
    import fsspec

    try:
        with fsspec.open(url, "rb", compression="infer") as f:
            first = pd.read_csv(f, header=None, nrows=1, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return []
    except Exception as e:  # filesystems and parsers raise many types; all mean "unreadable"
        raise unreadable(url, e) from e
    return [str(v) for v in first.iloc[0].tolist()] if len(first) else []


def refuse_duplicate_columns(names: Sequence[str], url: str) -> None:
    """Refuse a table whose header names a column more than once, naming the repeats.

    Raises:
        DataError: some column name appears twice or more.
    """
    seen: dict[str, int] = {}
    for name in names:
        seen[name] = seen.get(name, 0) + 1
    repeated = {n: c for n, c in seen.items() if c > 1}
    if repeated:
        shown = ", ".join(f"{n!r} ({c} times)" for n, c in repeated.items())
        raise DataError(
            f"{url!r} has repeated column names: {shown}; every column needs a name of its own. "
            "Rename or drop the repeats."
        )


def unparsed_numbers(values: pd.Series) -> pd.Series:
    """The cells of a text column that do not parse as numbers (missing cells excluded), by index."""
    present = values.dropna()
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return present[parsed.isna()]


def show_cells(cells: Sequence[tuple[int, Any]], count: int | None = None) -> str:
    """Bad cells for a message: ``row 7: '1,234.5', row 9: 'n/a' and 3 more`` (at most `MAX_SHOWN`).

    Args:
        cells: ``(row, value)`` of the bad cells, or of the first of them.
        count: How many bad cells there are in all (default: ``len(cells)``).
    """
    total = len(cells) if count is None else count
    shown = ", ".join(f"row {row}: {value!r}" for row, value in cells[:MAX_SHOWN])
    return shown + (f" and {total - MAX_SHOWN} more" if total > MAX_SHOWN else "")


def file_stamp(url: str) -> tuple[str, str, str] | None:
    """What identifies a file's contents without reading it: its URL, size and modification stamp.

    None when it is not one file, cannot be looked at, or its store gives no modification
    stamp: then nothing may be assumed unchanged.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        info = fs.info(path)
    except Exception:
        return None
    modified = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created")
    if modified is None or info.get("type") == "directory":
        return None
    return (url, str(info.get("size")), str(modified))
