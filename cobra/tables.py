"""Your own data: an interactions table (and optionally an item table and item vectors) as a dataset.

Explained in chapter 01 (book/01_data.py) and the README ("Bring your own data").

:func:`read_tables` reads

* an **interactions** table, CSV (``.csv``, ``.tsv``, optionally ``.gz``) or Parquet (``.parquet``), with a
  user column and an item column (integers or strings), optionally a timestamp (integer seconds, or a
  date-time) and a rating (a number; 1 when absent, as for implicit feedback);
* an optional **item** table with an item column and any of ``title``, ``year``, ``genres`` (``"A|B"``)
  and ``tags``, from which :func:`cobra.text.item_texts` builds each item's text;
* optional **item vectors**, a ``.npy`` matrix with one row per row of the item table (for example
  embeddings you computed), used by the ``provided`` encoder (:func:`cobra.text.embed_items`).

and returns the same :class:`cobra.movielens.MovieLens` record the MovieLens loader does: users 1..U and items
1..N renumbered in ascending raw-id order (string ids in sorted order, the originals kept in the item table's
``key`` column), interactions sorted by (user, timestamp, item). A log without timestamps keeps each user's
order from the file (the timestamp becomes the row's position) and is marked ``timed=False``, so the models
that use time run without their time bias and say so. Every error names the file, and the column or the
first bad row (1-based, as a spreadsheet counts data rows), and says what to change.

:func:`cobra.datasets.import_dataset` (``python -m cobra import``) registers such files under a name, so
every command, preset and chapter can use it like ``ml-100k``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cobra.movielens import DataError, MovieLens, build_movielens

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Columns:
    """Which columns of the user's tables hold what.

    Attributes:
        user, item: the interactions table's user and item columns (required).
        timestamp: its timestamp column; a log without it keeps the file's order per user.
        rating: its rating column; 1.0 for every row when the table has none.
        item_key: the item table's item column (matches ``item``'s values).
    """

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    rating: str = "rating"
    item_key: str = "item"


DEFAULT_COLUMNS = Columns()
ITEM_FIELDS = ("title", "year", "genres", "tags")  # item-table columns that become the item's text


def read_table(path: str | Path, what: str = "table") -> pd.DataFrame:
    """A CSV/TSV (``.gz`` allowed) or Parquet file as a DataFrame; ``DataError`` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    suffix = "".join(s for s in path.suffixes[-2:] if s != ".gz")[-8:].lower()
    try:
        if suffix.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
        if suffix.endswith(CSV_SUFFIXES):
            return pd.read_csv(path, sep="\t" if suffix.endswith(".tsv") else ",", low_memory=False)
    except Exception as err:  # pyarrow, parser and decoding errors all mean: not a table we can read
        raise DataError(f"cannot read {what} file {path}: {type(err).__name__}: {str(err)[:200]}") from None
    raise DataError(f"{what} file {path}: unknown format {path.suffix!r}; use .csv, .tsv (optionally .gz) "
                    "or .parquet")


def _require(frame: pd.DataFrame, column: str, path: Path, what: str, flag: str) -> pd.Series:
    if column not in frame.columns:
        have = ", ".join(map(str, frame.columns[:20]))
        raise DataError(f"{what} file {path} has no column {column!r} (its columns: {have}); rename it or "
                        f"pass {flag} NAME")
    return frame[column]


def _first_bad(mask: np.ndarray) -> int:
    """1-based data row of the first True in ``mask``."""
    return int(np.flatnonzero(mask)[0]) + 1


def _ids(values: pd.Series, path: Path, column: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(R,) int64 ids and, for string ids, the sorted originals (code ``c`` = ``keys[c - 1]``)."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: row {_first_bad(missing)} has no {column!r}; every row needs one")
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(np.int64), None
    if pd.api.types.is_float_dtype(values.dtype):
        v = values.to_numpy(np.float64)
        bad = v != np.round(v)
        if bad.any():
            row = _first_bad(bad)
            raise DataError(f"{path}: row {row} has {column} {v[row - 1]:g}, not a whole number")
        return v.astype(np.int64), None
    codes, keys = pd.factorize(values.astype(str), sort=True)
    return codes.astype(np.int64) + 1, np.asarray(keys, dtype=object)


def _timestamps(values: pd.Series, path: Path, column: str) -> np.ndarray:
    """(R,) int64 seconds from integer seconds, whole floats or date-times; ``DataError`` naming a bad row."""

    def not_a_time(bad: np.ndarray) -> DataError:
        row = _first_bad(bad)
        return DataError(f"{path}: row {row} has {column} {values.iloc[row - 1]!r}: not a number of seconds or a "
                         "date-time")

    stamps = values if pd.api.types.is_datetime64_any_dtype(values.dtype) else None
    if stamps is None:
        numeric = pd.to_numeric(values, errors="coerce")
        if not pd.api.types.is_numeric_dtype(values.dtype) and numeric.isna().all():
            with warnings.catch_warnings():  # text, not numbers: date-times ("2015-03-31 10:00:00" and the like)
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed one by one
                stamps = pd.to_datetime(values, errors="coerce", utc=True)
    if stamps is not None:
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        missing = stamps.isna().to_numpy()
        if missing.any():
            raise not_a_time(missing)
        seconds = (stamps.astype("datetime64[ns]").astype(np.int64) // 10**9).to_numpy(np.int64)
        if (seconds < 0).any():
            raise DataError(f"{path}: row {_first_bad(seconds < 0)} has a {column} before 1970")
        return seconds
    bad = numeric.isna().to_numpy() | ~np.isfinite(numeric.to_numpy(np.float64, na_value=np.nan))
    if bad.any():
        raise not_a_time(bad)
    v = numeric.to_numpy(np.float64)
    if (v < 0).any():
        row = _first_bad(v < 0)
        raise DataError(f"{path}: row {row} has a negative {column} ({v[row - 1]:g})")
    return np.floor(v).astype(np.int64)


def _ratings(values: pd.Series, path: Path, column: str) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    bad = ~np.isfinite(numeric)
    if bad.any():
        row = _first_bad(bad)
        raise DataError(f"{path}: row {row} has {column} {values.iloc[row - 1]!r}, not a number")
    return numeric.astype(np.float32)


def read_tables(name: str, interactions: str | Path, items: str | Path | None = None,
                vectors: str | Path | None = None, *, columns: Columns = DEFAULT_COLUMNS,
                source: str = "local") -> tuple[MovieLens, np.ndarray | None]:
    """Read a user's files into a dataset (see the module docstring).

    Args:
        name: the dataset's name. interactions, items, vectors: the files (``vectors`` needs ``items``).
        columns: which columns hold what. source: recorded in the result (``"local"`` or ``"synthetic"``).

    Returns:
        (the dataset, its provided vectors ``(N, D) float32`` with unit rows, row ``i - 1`` = item ``i``, or
        None).

    Raises:
        DataError: a file that cannot be read, a missing column, a bad row, items missing from the item table,
            vectors whose rows do not match it.
    """
    path = Path(interactions)
    table = read_table(path, "interactions")
    if table.empty:
        raise DataError(f"interactions file {path} holds no rows")
    users, _ = _ids(_require(table, columns.user, path, "interactions", "--user-col"), path, columns.user)
    raw_items, item_keys = _ids(_require(table, columns.item, path, "interactions", "--item-col"), path,
                                columns.item)
    timed = columns.timestamp in table.columns
    if timed:
        stamps = _timestamps(table[columns.timestamp], path, columns.timestamp)
    else:  # the row's position keeps the file's order within each user
        log.warning("%s has no %r column: each user's events keep the file's order, and the models that use "
                    "time run without their time bias", path, columns.timestamp)
        stamps = np.arange(len(table), dtype=np.int64)
    ratings = (_ratings(table[columns.rating], path, columns.rating) if columns.rating in table.columns
               else np.ones(len(table), dtype=np.float32))
    frame = pd.DataFrame({"user": users, "item": raw_items, "rating": ratings, "timestamp": stamps})

    item_table = _item_table(Path(items), columns, raw_items, item_keys, path) if items is not None else None
    if item_table is None:
        if vectors is not None:
            raise DataError("item vectors need an item table (--items): its rows say which item each vector is")
        ids = np.unique(raw_items)
        item_table = pd.DataFrame({"raw_id": ids, "title": "", "year": pd.NA, "genres": ""})
        if item_keys is not None:
            item_table["title"] = item_keys[ids - 1]
    ml = build_movielens(name, frame, item_table, source=source, timed=timed)
    if item_keys is not None:  # keep the original string ids beside their codes
        ml.items["key"] = item_keys[ml.item_map[1:] - 1].astype(str)
    provided = None
    if vectors is not None:
        provided = _vectors(Path(vectors), item_table, ml)
    return ml, provided


def _item_table(path: Path, columns: Columns, raw_items: np.ndarray, item_keys: np.ndarray | None,
                inter_path: Path) -> pd.DataFrame:
    """The item table with ``raw_id`` (the interactions' id codes), ``title``, ``year``, ``genres`` (+ ``tags``)."""
    table = read_table(path, "items")
    keys = _require(table, columns.item_key, path, "items", "--item-key-col")
    missing = keys.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: row {_first_bad(missing)} has no {columns.item_key!r}")
    if item_keys is not None:  # string ids: map the item table's keys to the interactions' codes
        code = pd.Series(np.arange(1, len(item_keys) + 1), index=pd.Index(item_keys))
        raw = keys.astype(str).map(code).fillna(0).to_numpy(np.int64)  # 0: an item nobody rated
    else:
        raw, string_keys = _ids(keys, path, columns.item_key)
        if string_keys is not None:
            raise DataError(f"{path}: column {columns.item_key!r} holds text but the interactions' item ids are "
                            "numbers; use the same ids in both files")
    dup = pd.Series(raw).duplicated().to_numpy() & (raw != 0)
    if dup.any():
        row = _first_bad(dup)
        raise DataError(f"{path}: row {row} repeats item {keys.iloc[row - 1]}; each item needs one row")
    unknown = ~np.isin(raw_items, raw)
    if unknown.any():
        row = _first_bad(unknown)
        item = raw_items[row - 1] if item_keys is None else item_keys[raw_items[row - 1] - 1]
        raise DataError(f"{inter_path}: row {row} names item {item}, which the item table {path} does not list; "
                        "add it there or drop those interactions")
    out = pd.DataFrame({"raw_id": raw})
    for field in ITEM_FIELDS:
        if field in table.columns:
            out[field] = table[field].to_numpy()
    out["title"] = out["title"].fillna("").astype(str) if "title" in out else ""
    out["genres"] = out["genres"].fillna("").astype(str) if "genres" in out else ""
    out["year"] = pd.to_numeric(out["year"], errors="coerce").astype("Int64") if "year" in out else pd.NA
    if "tags" in out:
        out["tags"] = out["tags"].fillna("").astype(str)
    return out


def _vectors(path: Path, item_table: pd.DataFrame, ml: MovieLens) -> np.ndarray:
    """(N, D) float32 unit rows for the dataset's items 1..N from a ``.npy`` aligned with ``item_table``."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(f"cannot read item vectors {path}: {type(err).__name__}: {err}") from None
    if matrix.ndim != 2 or matrix.shape[0] != len(item_table) or matrix.shape[1] < 1:
        raise DataError(f"item vectors {path} have shape {matrix.shape}; expected one row per row of the item "
                        f"table ({len(item_table)} rows) and at least one column")
    matrix = np.asarray(matrix, dtype=np.float32)
    row_of = pd.Series(np.arange(len(item_table)), index=item_table["raw_id"].to_numpy())
    rows = row_of.loc[ml.item_map[1:]].to_numpy()  # (N,) the table row of each item 1..N
    out = matrix[rows]  # (N, D)
    norms = np.linalg.norm(out, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        row = int(rows[np.flatnonzero(bad)[0]]) + 1
        raise DataError(f"item vectors {path}: row {row} is zero or not finite")
    return np.ascontiguousarray(out / norms[:, None], dtype=np.float32)
