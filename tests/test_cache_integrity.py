"""Random damage to every kind of cached file: loading rebuilds the same data or raises a clear error.

One cache is prepared per module in a temporary ``COBRA_HOME`` (MovieLens-100K parsed from the RecBole
wheel, copied from the shared ``downloads/`` so no network is needed; small tfidf vectors; small semantic
IDs); every example damages one byte of a copy of one file and loads it again. Loading must either give
data equal to the original (rebuilt, or the byte did not matter) or raise the module's clear error
(:class:`~cobra.movielens.DataError`, :class:`~cobra.sid.SIDError`): never another exception, never
silently different data.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobra import movielens as ml
from cobra.config import data_home
from cobra.sid import SemanticIDs, SIDConfig, SIDError, fit_semantic_ids, read_codes
from cobra.text import embed_items

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PARSED_FILES = ("interactions.parquet", "items.parquet", "maps.npz", "meta.json")
ITEMS = 80  # items of the small embedding / semantic-ID files


@dataclass(frozen=True)
class Prepared:
    root: Path  # a COBRA_HOME with downloads/ and parsed/ml-100k/recbole/
    data: ml.MovieLens
    items: pd.DataFrame  # the first ITEMS items
    embeddings: Path  # their tfidf cache file
    vectors: np.ndarray
    sids: SemanticIDs
    sid_file: Path  # SemanticIDs.save
    run_codes: Path  # a run's sid_codes.npz, as cobra.runs.save_run_codes writes it


def new_home(prepared: Prepared, home: Path) -> Path:
    """A COBRA_HOME holding a copy of the prepared parsed cache and the downloads (hard links: they are
    only read, and a refetch would replace a file with os.replace, never write into it)."""
    shutil.copytree(prepared.root / "downloads", home / "downloads", copy_function=_link_or_copy)
    shutil.copytree(prepared.root / "parsed", home / "parsed")
    return home


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    try:
        wheel = ml.fetch_wheel(root=data_home())  # the shared cache: verified, fetched only when missing
    except ml.DataError as err:
        pytest.skip(f"the RecBole wheel is not available: {err}")
    root = tmp_path_factory.mktemp("prepared")
    (root / "downloads").mkdir()
    shutil.copy2(wheel, root / "downloads" / wheel.name)
    data = ml.load_movielens("ml-100k", source="recbole", root=root)
    items = data.items.head(ITEMS).copy()
    emb = embed_items("toy", "tfidf", items=items, cache_dir=root / "embeddings", progress=False)
    sids = fit_semantic_ids(emb.vectors, SIDConfig(levels=2, codes=4, iters=10))
    sid_file = sids.save(root / "sid" / "toy.npz")
    run_codes = root / "run" / "sid_codes.npz"
    run_codes.parent.mkdir()
    with open(run_codes, "wb") as f:  # as cobra.runs.save_run_codes writes it
        np.savez(f, codes=sids.codes)
    return Prepared(root, data, items, emb.path, emb.vectors, sids, sid_file, run_codes)


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cobra-damage-") as tmp:
        yield Path(tmp)


@contextmanager
def warnings_of(name: str) -> Iterator[list[str]]:
    """Collect the WARNING lines logged by logger ``name`` inside the block."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def damage(path: Path, position: float, xor: int) -> bytes:
    """XOR the byte of ``path`` at ``position`` (a fraction of its length) with ``xor``; return the new bytes."""
    raw = bytearray(path.read_bytes())
    raw[int(position * len(raw))] ^= xor
    path.write_bytes(bytes(raw))
    return bytes(raw)


def assert_same_movielens(got: ml.MovieLens, want: ml.MovieLens) -> None:
    pd.testing.assert_frame_equal(got.interactions, want.interactions, check_exact=True)
    pd.testing.assert_frame_equal(got.items, want.items, check_exact=True)
    assert got.user_map.dtype == want.user_map.dtype and np.array_equal(got.user_map, want.user_map)
    assert got.item_map.dtype == want.item_map.dtype and np.array_equal(got.item_map, want.item_map)
    assert (got.name, got.source, got.num_users, got.num_items) == (want.name, want.source, want.num_users,
                                                                   want.num_items)


position = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
xor = st.integers(min_value=1, max_value=255)


# ----------------------------------------------------------------------------- parsed MovieLens


@EXAMPLES
@given(where=position, flip=xor)
def test_damaged_interactions_parquet_is_rebuilt(prepared: Prepared, where: float, flip: int) -> None:
    check_parsed_damage(prepared, "interactions.parquet", where, flip)


@EXAMPLES
@given(fname=st.sampled_from(PARSED_FILES[1:]), where=position, flip=xor)
def test_damaged_parsed_cache_is_rebuilt(prepared: Prepared, fname: str, where: float, flip: int) -> None:
    """items.parquet, maps.npz and the sidecar meta.json share the examples."""
    check_parsed_damage(prepared, fname, where, flip)


def check_parsed_damage(prepared: Prepared, fname: str, where: float, flip: int) -> None:
    with scratch() as tmp:
        home = new_home(prepared, tmp)
        target = home / "parsed" / "ml-100k" / "recbole" / fname
        damaged = damage(target, where, flip)
        with warnings_of("cobra.movielens") as lines:
            try:
                got = ml.load_movielens("ml-100k", source="recbole", root=home)
            except ml.DataError:
                return  # a clear error is allowed (none is expected: the wheel is intact)
        assert_same_movielens(got, prepared.data)
        if target.read_bytes() != damaged:  # rebuilt: said so in one line that names the damage
            assert len(lines) == 1 and "is damaged" in lines[0] and "rebuilding" in lines[0], lines


# ----------------------------------------------------------------------------- embeddings


@EXAMPLES
@given(where=position, flip=xor)
def test_damaged_embedding_cache_is_recomputed(prepared: Prepared, where: float, flip: int) -> None:
    with scratch() as cache:
        path = cache / prepared.embeddings.name
        shutil.copy2(prepared.embeddings, path)
        damaged = damage(path, where, flip)
        with warnings_of("cobra.text") as lines:
            emb = embed_items("toy", "tfidf", items=prepared.items, cache_dir=cache, progress=False)
        assert emb.path == path
        assert emb.vectors.dtype == np.float32
        assert np.array_equal(emb.vectors.view(np.uint32), prepared.vectors.view(np.uint32))  # bitwise
        if not emb.cached:
            assert len(lines) == 1 and "re-embedding" in lines[0], lines
            assert path.read_bytes() != damaged  # rewritten
        else:
            assert not lines


# ----------------------------------------------------------------------------- semantic IDs


@EXAMPLES
@given(where=position, flip=xor)
def test_damaged_sid_file_is_refused(prepared: Prepared, where: float, flip: int) -> None:
    with scratch() as tmp:
        path = tmp / prepared.sid_file.name
        shutil.copy2(prepared.sid_file, path)
        damage(path, where, flip)
        try:
            got = SemanticIDs.load(path, num_items=ITEMS)
        except SIDError as err:
            assert str(path) in str(err)
            return
    assert got.codes.dtype == np.int64 and np.array_equal(got.codes, prepared.sids.codes)
    assert got.config == prepared.sids.config and got.seconds == prepared.sids.seconds
    assert np.array_equal(got.quantizer.codebooks.numpy(), prepared.sids.quantizer.codebooks.numpy())


@EXAMPLES
@given(where=position, flip=xor)
def test_damaged_run_codes_are_refused(prepared: Prepared, where: float, flip: int) -> None:
    """A run's sid_codes.npz has no hash of its own: each member's CRC-32 and the range checks catch damage."""
    with scratch() as tmp:
        path = tmp / "sid_codes.npz"
        shutil.copy2(prepared.run_codes, path)
        damage(path, where, flip)
        try:
            codes = read_codes(path, codes_per_level=4, num_items=ITEMS)
        except SIDError as err:
            assert str(path) in str(err)
            return
    assert codes.dtype == np.int64 and np.array_equal(codes, prepared.sids.codes)


def test_semantic_ids_cache_refits_a_damaged_file(prepared: Prepared, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """cobra.inputs.semantic_ids: a cache file that fails its hash is refitted (same codes), with one warning."""
    import cobra.text
    from cobra.inputs import semantic_ids, sid_config_of
    from cobra.presets import get_preset

    monkeypatch.setenv("COBRA_HOME", str(tmp_path))
    vectors = prepared.vectors

    class Fake:
        def __init__(self) -> None:
            self.vectors = vectors

    monkeypatch.setattr(cobra.text, "embed_items", lambda *a, **k: Fake())
    config = get_preset("tiger-cpu", {"sid_levels": 2, "sid_codes": 4, "encoder": "tfidf"})
    first = semantic_ids(config.dataset, config.encoder, sid_config_of(config))
    (path,) = (tmp_path / "sid").glob("*.npz")
    assert SemanticIDs.load(path).codes.shape == (ITEMS, 3)
    good = path.read_bytes()
    raw = bytearray(good)
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="cobra.inputs"):
        again = semantic_ids(config.dataset, config.encoder, sid_config_of(config))
    assert np.array_equal(again, first)
    assert [r.getMessage() for r in caplog.records if "refitting" in r.getMessage()]
    assert str(path) in caplog.text
    SemanticIDs.load(path)  # rewritten intact


def test_run_codes_error_is_one_cli_line(prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """eval of a run whose sid_codes.npz is damaged: one ``error:`` line naming the file, exit code 2."""
    from cobra.cli import main
    from cobra.presets import get_preset, save_run_config
    from cobra.runs import with_num_items

    home = new_home(prepared, tmp_path / "home")
    monkeypatch.setenv("COBRA_HOME", str(home))
    config = get_preset("tiger-cpu")
    config = with_num_items(config, prepared.data.num_items)
    run = tmp_path / "run"
    run.mkdir()
    save_run_config(config, run / "config.json")
    codes = np.zeros((prepared.data.num_items, config.sid_levels + 1), np.int64)
    codes[:, -1] = np.arange(prepared.data.num_items)
    out_of_range = codes.copy()
    out_of_range[5, 1] = 10**9  # a level-2 code
    cases = {"out of range": out_of_range, "wrong rows": codes[:-1]}
    for why, bad in cases.items():
        with open(run / "sid_codes.npz", "wb") as f:
            np.savez(f, codes=bad)
        assert main(["eval", "--run", str(run)]) == 2, why
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and str(run / "sid_codes.npz") in err, (why, err)
    good = run / "sid_codes.npz"
    with open(good, "wb") as f:
        np.savez(f, codes=codes)
    good.write_bytes(good.read_bytes()[:-40])  # truncated
    assert main(["eval", "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(good) in err
