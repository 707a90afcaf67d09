"""Every dataset by name: MovieLens, the synthetic stand-ins, and the datasets you imported.

Explained in chapter 01 (book/01_data.py).

:func:`load_dataset` is what the package calls with a dataset name (``--dataset``, a preset's ``dataset``, a
profile's, ``$COBRA_DATASET``):

* a MovieLens variant (:data:`cobra.movielens.DATASETS`) is downloaded, verified and parsed by
  :func:`cobra.movielens.load_movielens`;
* a synthetic stand-in (:data:`cobra.synthetic.SYNTHETIC`, e.g. ``ml-20m-synthetic``) is generated once as
  files (:func:`cobra.synthetic.write_synthetic`) and read back through :func:`cobra.tables.read_tables`,
  like any user's data; loading one logs a warning that it is synthetic;
* any other name is a dataset imported with :func:`import_dataset` (``python -m cobra import NAME
  --interactions FILE [--items FILE] [--vectors FILE]``).

Parsed datasets are cached under ``data_home()/parsed/<name>/<source>/`` with the same hashed sidecar as
MovieLens (a damaged cache is rebuilt from its files). Item vectors that came with a dataset are cached in
``data_home()/vectors/<name>.npz`` (hashed) and read by :func:`provided_vectors`, the ``provided`` encoder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cobra.config import ConfigError, atomic_write, data_home, require_safe_name
from cobra.movielens import (
    DATASETS,
    DataError,
    MovieLens,
    file_digests,
    load_movielens,
    parsed_dir,
    read_parsed,
    write_parsed,
)
from cobra.npzfile import read_hashed_npz, write_hashed_npz
from cobra.synthetic import SYNTHETIC, write_synthetic
from cobra.tables import DEFAULT_COLUMNS, Columns, read_tables

log = logging.getLogger(__name__)

SYNTHETIC_WARNING = ("{name} is SYNTHETIC: random interactions shaped like MovieLens-20M, for measuring time and "
                     "memory; its metrics say nothing about recommendation quality")
_warned: set[str] = set()


def is_synthetic(name: str) -> bool:
    """Whether ``name`` is a synthetic stand-in (its outputs must say so)."""
    return name in SYNTHETIC


def imported_names(root: Path | None = None) -> list[str]:
    """Names of the datasets imported with :func:`import_dataset` under ``root`` (default ``data_home()``)."""
    folder = (root or data_home()) / "imported"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def dataset_names(root: Path | None = None) -> list[str]:
    """Every name :func:`load_dataset` accepts: MovieLens variants, synthetic stand-ins, imported datasets."""
    return sorted(DATASETS) + sorted(SYNTHETIC) + imported_names(root)


def _check_name(name: str) -> None:
    """Refuse a dataset name that could reach outside the cache once it becomes a path (``DataError``)."""
    try:
        require_safe_name(SimpleNamespace(dataset=name), "dataset")
    except ConfigError as err:
        raise DataError(str(err)) from None


def _record_path(name: str, root: Path | None) -> Path:
    return (root or data_home()) / "imported" / f"{name}.json"


def vectors_path(name: str, root: Path | None = None) -> Path:
    """Where the item vectors that came with dataset ``name`` are cached (see :func:`provided_vectors`)."""
    return (root or data_home()) / "vectors" / f"{name}.npz"


def _item_map_digest(ml: MovieLens) -> str:
    """Which items, in which order, a vectors file belongs to."""
    return hashlib.sha256(np.ascontiguousarray(ml.item_map, dtype=np.int64).tobytes()).hexdigest()[:16]


def _cache(ml: MovieLens, vectors: np.ndarray | None, provenance: dict[str, Any], root: Path | None) -> None:
    write_parsed(ml, parsed_dir(root, ml.name, ml.source), provenance)
    if vectors is not None:
        write_hashed_npz(vectors_path(ml.name, root), {"vectors": vectors},
                         {"dataset": ml.name, "items": _item_map_digest(ml)})


def _files_provenance(files: dict[str, Path | None]) -> dict[str, Any]:
    return {key: None if path is None else {"path": str(Path(path).resolve()), **file_digests(Path(path))}
            for key, path in files.items()}


def _load_synthetic(name: str, root: Path | None) -> MovieLens:
    if name not in _warned:
        log.warning(SYNTHETIC_WARNING.format(name=name))
        _warned.add(name)
    spec = SYNTHETIC[name]
    folder = (root or data_home()) / "synthetic" / name
    spec_file = folder / "spec.json"  # what the files were generated from: a changed spec regenerates them
    wanted = json.dumps(dataclasses.asdict(spec), sort_keys=True)
    cached = read_parsed(parsed_dir(root, name, "synthetic"))
    if (cached is not None and vectors_path(name, root).is_file() and spec_file.is_file()
            and spec_file.read_text() == wanted):
        return cached
    log.info("generating %s (%s users, %s interactions) under %s", name, f"{spec.num_users:,}",
             f"{spec.num_interactions:,}", folder)
    files = write_synthetic(spec, folder)
    ml, vectors = read_tables(name, files["interactions"], files["items"], files["vectors"], source="synthetic")
    _cache(ml, vectors, {"synthetic": True, "spec": dataclasses.asdict(spec)}, root)
    atomic_write(spec_file, wanted)
    return ml


def _load_imported(name: str, root: Path | None) -> MovieLens:
    record_path = _record_path(name, root)
    if not record_path.is_file():
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(dataset_names(root))}, or import your "
                        f"own: python -m cobra import {name} --interactions FILE [--items FILE]")
    cached = read_parsed(parsed_dir(root, name, "local"))
    if cached is not None:
        return cached
    try:  # the parsed cache is missing or damaged: read the files again
        record = json.loads(record_path.read_text())
        files = {key: None if value is None else Path(value["path"]) for key, value in record["files"].items()}
        columns = Columns(**record["columns"])
        digests = {key: record["files"][key]["sha256"] for key, path in files.items() if path is not None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"the import record {record_path} is damaged ({type(err).__name__}); import the dataset "
                        f"again: python -m cobra import {name} --force --interactions FILE ...") from None
    for key, sha in digests.items():
        if not files[key].is_file():
            raise DataError(f"{files[key]}, which dataset {name!r} was imported from, is gone; restore it or import "
                            f"the dataset again: python -m cobra import {name} --force ...")
        if file_digests(files[key])["sha256"] != sha:
            raise DataError(f"{files[key]} changed since dataset {name!r} was imported from it; import it again: "
                            f"python -m cobra import {name} --force ...")
    ml, vectors = read_tables(name, files["interactions"], files["items"], files["vectors"], columns=columns)
    _cache(ml, vectors, record, root)
    return ml


def load_dataset(name: str, *, source: str = "auto", root: Path | None = None) -> MovieLens:
    """The dataset called ``name`` (see the module docstring), with contiguous ids.

    Args:
        name: a MovieLens variant, a synthetic stand-in or an imported dataset (:func:`dataset_names`).
        source: for MovieLens, passed to :func:`cobra.movielens.load_movielens`; other datasets have one
            source each, so only ``"auto"`` is accepted for them.
        root: cache root; default :func:`cobra.config.data_home`.

    Raises:
        DataError: unknown name (the message lists the known ones and how to import), a source that does not
            apply, unreadable or changed files.
    """
    if name in DATASETS:
        return load_movielens(name, source=source, root=root)
    _check_name(name)
    if source != "auto":
        raise DataError(f"source {source!r} applies to MovieLens only; {name} has one source: drop --source")
    if name in SYNTHETIC:
        return _load_synthetic(name, root)
    return _load_imported(name, root)


def import_dataset(name: str, interactions: str | Path, items: str | Path | None = None,
                   vectors: str | Path | None = None, *, columns: Columns = DEFAULT_COLUMNS, force: bool = False,
                   root: Path | None = None) -> MovieLens:
    """Register a user's files as dataset ``name`` (``python -m cobra import``) and return it parsed.

    The files are read and checked now (:func:`cobra.tables.read_tables`); their paths and sha256 are recorded
    in ``data_home()/imported/<name>.json``, so a damaged cache is rebuilt from them, and a file changed since
    is refused rather than read as different data.

    Raises:
        DataError: a name that a built-in dataset has, an existing import without ``force``, any file problem.
    """
    if name in DATASETS or name in SYNTHETIC:
        raise DataError(f"{name!r} is a built-in dataset; choose another name for your data")
    _check_name(name)
    record_path = _record_path(name, root)
    if record_path.exists() and not force:
        raise DataError(f"dataset {name!r} is already imported ({record_path}); pass --force to replace it")
    ml, provided = read_tables(name, interactions, items, vectors, columns=columns)
    files = {"interactions": Path(interactions), "items": None if items is None else Path(items),
             "vectors": None if vectors is None else Path(vectors)}
    record = {"name": name, "files": _files_provenance(files), "columns": columns.__dict__}
    _cache(ml, provided, record, root)
    if provided is None:
        vectors_path(name, root).unlink(missing_ok=True)
    atomic_write(record_path, json.dumps(record, indent=2))
    return ml


def provided_vectors(name: str, root: Path | None = None) -> np.ndarray:
    """(N, D) float32 unit item vectors that came with dataset ``name`` (row ``i - 1`` = item ``i``).

    Raises:
        DataError: the dataset has none (import it with ``--vectors``), or the cached file does not match it.
    """
    path = vectors_path(name, root)
    for attempt in range(2):
        ml = load_dataset(name, root=root)  # (re)builds the vectors' cache with the parsed one
        if not path.is_file():
            raise DataError(f"dataset {name!r} has no item vectors of its own; import it with --vectors FILE.npy, "
                            "or choose a text encoder (minilm, tfidf, ...)")
        try:
            arrays, meta, _ = read_hashed_npz(path)
            vectors = arrays["vectors"]
        except Exception as err:  # damaged: drop it and the parsed cache, so the next load rebuilds both
            if attempt:
                raise DataError(f"item vectors {path} are unreadable right after rebuilding them ({err})") from None
            log.warning("item vectors %s are damaged (%s); rebuilding them from the dataset's files", path, err)
            path.unlink(missing_ok=True)
            (parsed_dir(root, ml.name, ml.source) / "meta.json").unlink(missing_ok=True)
            continue
        if meta.get("items") != _item_map_digest(ml) or vectors.shape[0] != ml.num_items:
            raise DataError(f"item vectors {path} belong to another version of {name}; import it again with --force")
        return vectors
    raise AssertionError("unreachable")  # pragma: no cover
