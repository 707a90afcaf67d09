"""Datasets by name (cobra.datasets): imports, their caches, the synthetic stand-ins, the CLI and env overrides.

Every test keeps its caches under ``tmp_path`` (``root=`` or ``$COBRA_HOME``), never in ``data/cache``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cobra.cli import main
from cobra.config import ConfigError, get_profile
from cobra.datasets import (
    dataset_names,
    import_dataset,
    imported_names,
    is_synthetic,
    load_dataset,
    provided_vectors,
)
from cobra.movielens import DataError, parsed_dir, read_parsed
from cobra.synthetic import SYNTHETIC, synthetic_items, synthetic_vectors, write_synthetic
from cobra.tables import Columns, read_tables

TINY = "ml-20m-synthetic-tiny"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def same(a, b) -> None:
    """Two MovieLens records hold the same data."""
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items.reset_index(drop=True), b.items.reset_index(drop=True))
    assert a.user_map.tolist() == b.user_map.tolist() and a.item_map.tolist() == b.item_map.tolist()
    assert (a.num_users, a.num_items, a.source, a.timed) == (b.num_users, b.num_items, b.source, b.timed)


@pytest.fixture
def files(tmp_path):
    """A small log (string users, integer items), an item table in another order than the ids, vectors."""
    src = tmp_path / "src"
    src.mkdir()
    inter = write(src / "log.csv", "user,item,rating,timestamp\nann,30,4,3\nann,10,5,1\nbob,20,3,2\nbob,30,1,9\n"
                                   "cid,10,2,5\n")
    items = write(src / "items.csv", "item,title,year,genres\n20,Twenty,2001,Drama\n40,Unrated,1990,Comedy\n"
                                     "30,Thirty,2003,Action\n10,Ten,1999,Drama|Action\n")
    vectors = src / "vec.npy"
    np.save(vectors, np.array([[0, 2], [1, 1], [3, 4], [5, 0]], dtype=np.float32))
    return {"interactions": inter, "items": items, "vectors": vectors, "root": tmp_path / "home"}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """One cache root holding the tiny synthetic stand-in (generated once for this module)."""
    root = tmp_path_factory.mktemp("tiny")
    load_dataset(TINY, root=root)
    return root


# -------------------------------------------------------------------------------------------- import
def test_import_round_trips_through_load_dataset(files):
    root = files["root"]
    ml = import_dataset("shop", files["interactions"], files["items"], files["vectors"], root=root)
    assert (ml.num_users, ml.num_items, ml.source, ml.timed) == (3, 3, "local", True)
    assert ml.items["title"].tolist() == ["Ten", "Twenty", "Thirty"]
    assert "shop" in imported_names(root) and "shop" in dataset_names(root)
    record = json.loads((root / "imported" / "shop.json").read_text())
    assert record["files"]["interactions"]["path"] == str(files["interactions"].resolve())
    loaded = load_dataset("shop", root=root)
    same(loaded, ml)
    direct, direct_vectors = read_tables("shop", files["interactions"], files["items"], files["vectors"])
    same(loaded, direct)
    np.testing.assert_array_equal(provided_vectors("shop", root=root), direct_vectors)
    np.testing.assert_allclose(direct_vectors, [[1, 0], [0, 1], [0.6, 0.8]], atol=1e-6)  # items 10, 20, 30


def test_second_import_needs_force(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], root=root)
    with pytest.raises(DataError, match=r"already imported.*--force"):
        import_dataset("shop", files["interactions"], root=root)
    other = write(files["interactions"].parent / "other.csv", "user,item,timestamp\n1,1,1\n")
    ml = import_dataset("shop", other, force=True, root=root)
    assert ml.num_users == 1
    assert load_dataset("shop", root=root).num_users == 1  # the parsed cache was replaced too


def test_reimport_without_vectors_drops_old_vectors(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], files["items"], files["vectors"], root=root)
    assert provided_vectors("shop", root=root).shape == (3, 2)
    import_dataset("shop", files["interactions"], files["items"], force=True, root=root)
    with pytest.raises(DataError, match="no item vectors of its own"):
        provided_vectors("shop", root=root)


@pytest.mark.parametrize("name", ["ml-100k", "ml-20m", "ml-20m-synthetic", TINY])
def test_built_in_names_refused(files, name):
    with pytest.raises(DataError, match="built-in dataset"):
        import_dataset(name, files["interactions"], root=files["root"])
    assert not (files["root"] / "imported").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", ".hidden", "", "x" * 101])
def test_unsafe_names_refused(files, name):
    root = files["root"]
    with pytest.raises(DataError, match="not a safe name"):
        import_dataset(name, files["interactions"], root=root)
    assert not root.exists() or not any(root.rglob("*.json"))


def test_changed_file_after_import_asks_to_import_again(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], root=root)
    assert load_dataset("shop", root=root).num_users == 3  # served from the parsed cache
    with files["interactions"].open("a") as fh:
        fh.write("dan,10,5,7\n")
    shutil.rmtree(parsed_dir(root, "shop", "local"))
    with pytest.raises(DataError, match=r"log\.csv changed since dataset 'shop' was imported.*import it again"):
        load_dataset("shop", root=root)


def test_deleted_file_after_import_is_a_data_error(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], root=root)
    files["interactions"].unlink()
    shutil.rmtree(parsed_dir(root, "shop", "local"))
    with pytest.raises(DataError, match=r"log\.csv"):
        load_dataset("shop", root=root)


def test_damaged_parsed_cache_is_rebuilt_from_files(files):
    root = files["root"]
    imported = import_dataset("shop", files["interactions"], files["items"], files["vectors"],
                              columns=Columns(), root=root)
    path = parsed_dir(root, "shop", "local") / "interactions.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_parsed(parsed_dir(root, "shop", "local")) is None  # the damage is seen
    same(load_dataset("shop", root=root), imported)
    assert read_parsed(parsed_dir(root, "shop", "local")) is not None  # and the cache is whole again


def test_rebuild_uses_the_recorded_columns(tmp_path):
    root = tmp_path / "home"
    log = write(tmp_path / "log.tsv", "who\twhat\twhen\tstars\n2\t8\t10\t3\n1\t8\t20\t5\n1\t9\t5\t4\n")
    columns = Columns(user="who", item="what", timestamp="when", rating="stars")
    imported = import_dataset("renamed", log, columns=columns, root=root)
    shutil.rmtree(parsed_dir(root, "renamed", "local"))
    rebuilt = load_dataset("renamed", root=root)
    same(rebuilt, imported)
    assert rebuilt.interactions["rating"].tolist() == [4.0, 5.0, 3.0]


def test_damaged_vectors_cache_is_rebuilt(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], files["items"], files["vectors"], root=root)
    good = provided_vectors("shop", root=root)
    path = root / "vectors" / "shop.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(provided_vectors("shop", root=root), good)


def test_import_failure_registers_nothing(files):
    root = files["root"]
    bad = write(files["interactions"].parent / "bad.csv", "customer,item\n1,1\n")
    with pytest.raises(DataError, match="--user-col"):
        import_dataset("shop", bad, root=root)
    assert "shop" not in imported_names(root)


# ----------------------------------------------------------------------------------- names and sources
def test_unknown_name_lists_known_names_and_import_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("no-such-data", root=tmp_path)
    message = str(err.value)
    assert "ml-100k" in message and TINY in message
    assert "python -m cobra import no-such-data --interactions" in message


def test_source_applies_to_movielens_only(files):
    with pytest.raises(DataError, match="MovieLens only"):
        load_dataset(TINY, source="recbole", root=files["root"])
    import_dataset("shop", files["interactions"], root=files["root"])
    with pytest.raises(DataError, match="MovieLens only"):
        load_dataset("shop", source="grouplens", root=files["root"])


# ------------------------------------------------------------------------------------------ synthetic
def test_tiny_synthetic_dataset(tiny_root):
    ml = load_dataset(TINY, root=tiny_root)
    spec = SYNTHETIC[TINY]
    assert is_synthetic(TINY) and not is_synthetic("ml-100k")
    assert ml.num_users == spec.num_users == 200 and ml.source == "synthetic" and ml.timed
    assert len(ml.interactions) == spec.num_interactions
    assert 0 < ml.num_items <= spec.num_items
    assert ml.interactions.groupby("user").size().min() >= spec.min_seq_len
    assert ml.items["title"].str.startswith("Synthetic film ").all()
    frame = ml.interactions
    order = np.lexsort((frame["item"], frame["timestamp"], frame["user"]))
    assert (order == np.arange(len(frame))).all()  # sorted by (user, timestamp, item)


def test_tiny_synthetic_is_deterministic(tiny_root, tmp_path):
    same(load_dataset(TINY, root=tmp_path), load_dataset(TINY, root=tiny_root))


def test_tiny_synthetic_provided_vectors(tiny_root):
    ml = load_dataset(TINY, root=tiny_root)
    vectors = provided_vectors(TINY, root=tiny_root)
    assert vectors.shape == (ml.num_items, 1024) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # row i - 1 is the vector of item i, i.e. of the written table's row for raw id item_map[i]
    table = synthetic_items(SYNTHETIC[TINY].num_items, seed=SYNTHETIC[TINY].seed)
    full = synthetic_vectors(table, SYNTHETIC[TINY].dim, seed=SYNTHETIC[TINY].seed)
    np.testing.assert_allclose(vectors, full[ml.item_map[1:] - 1], atol=1e-6)


def test_write_synthetic_writes_a_users_files(tmp_path):
    from cobra.synthetic import SyntheticSpec

    spec = SyntheticSpec("x-synthetic", num_users=5, num_items=40, num_interactions=120, dim=8, min_seq_len=20)
    paths = write_synthetic(spec, tmp_path / "out")
    assert set(paths) == {"interactions", "items", "vectors"} and all(p.is_file() for p in paths.values())
    inter = pd.read_parquet(paths["interactions"])
    assert list(inter.columns) == ["user", "item", "rating", "timestamp"] and len(inter) == 120
    assert np.load(paths["vectors"]).shape == (40, 8)
    assert len(pd.read_csv(paths["items"])) == 40


def test_provided_encoder_reads_the_datasets_vectors(tiny_root, monkeypatch):
    from cobra.text import embed_items

    monkeypatch.setenv("COBRA_HOME", str(tiny_root))
    embedded = embed_items(TINY, "provided", progress=False)
    assert embedded.encoder == "provided" and embedded.dim == 1024
    np.testing.assert_array_equal(embedded.vectors, provided_vectors(TINY, root=tiny_root))


def test_summary_of_a_log_without_timestamps(tmp_path, monkeypatch):
    from cobra.data import dataset_summary

    monkeypatch.setenv("COBRA_HOME", str(tmp_path / "home"))
    log = write(tmp_path / "log.csv", "user,item\n1,5\n1,6\n2,5\n")
    ml = import_dataset("untimed", log)
    assert ml.timed is False and load_dataset("untimed").timed is False
    summary = dataset_summary("untimed")
    assert summary["timestamps"] is False and (summary["users"], summary["items"]) == (2, 2)
    timed_log = write(tmp_path / "timed.csv", "user,item,timestamp\n1,5,1\n")
    import_dataset("timed", timed_log)
    assert "timestamps" not in dataset_summary("timed")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_import_prints_summary(files, capsys, monkeypatch):
    monkeypatch.setenv("COBRA_HOME", str(files["root"]))
    argv = ["import", "shop", "--interactions", str(files["interactions"]), "--items", str(files["items"]),
            "--vectors", str(files["vectors"]), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["dataset"] == "shop"
    assert (out["users"], out["items"], out["interactions"]) == (3, 3, 5)
    assert (out["min_seq_len"], out["max_seq_len"]) == (1, 2) and "timestamps" not in out
    assert provided_vectors("shop").shape == (3, 2)


def test_cli_import_column_flags(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COBRA_HOME", str(tmp_path / "home"))
    log = write(tmp_path / "log.csv", "who,what,day,stars\na,x,2020-01-02,4\na,y,2020-01-01,5\n")
    items = write(tmp_path / "items.csv", "sku,title\nx,Ex\ny,Why\n")
    argv = ["import", "mine", "--interactions", str(log), "--items", str(items), "--user-col", "who",
            "--item-col", "what", "--time-col", "day", "--rating-col", "stars", "--item-key-col", "sku", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["users"], out["items"], out["interactions"]) == (1, 2, 2)
    ml = load_dataset("mine")
    assert ml.interactions["item"].tolist() == [2, 1] and ml.interactions["rating"].tolist() == [5.0, 4.0]
    assert ml.items["title"].tolist() == ["Ex", "Why"]


def one_error_line(capsys, *argv: str) -> str:
    """Run the CLI; it must fail with exit code 2 and exactly one ``error: ...`` line on stderr."""
    assert main([*argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_cli_import_errors_are_one_line(files, capsys, monkeypatch):
    monkeypatch.setenv("COBRA_HOME", str(files["root"]))
    err = one_error_line(capsys, "import", "shop", "--interactions", str(files["interactions"]),
                         "--user-col", "customer")
    assert "'customer'" in err and "--user-col" in err
    err = one_error_line(capsys, "import", "shop", "--interactions", str(files["interactions"].parent / "no.csv"))
    assert "does not exist" in err
    assert main(["import", "shop", "--interactions", str(files["interactions"])]) == 0
    capsys.readouterr()
    assert "--force" in one_error_line(capsys, "import", "shop", "--interactions", str(files["interactions"]))
    assert "built-in" in one_error_line(capsys, "import", "ml-100k", "--interactions", str(files["interactions"]))


# ---------------------------------------------------------------------------------------- env overrides
def test_env_overrides_replace_dataset_and_encoder(monkeypatch):
    monkeypatch.delenv("COBRA_DATASET", raising=False)
    monkeypatch.delenv("COBRA_ENCODER", raising=False)
    base = get_profile("4090d")
    monkeypatch.setenv("COBRA_DATASET", TINY)
    monkeypatch.setenv("COBRA_ENCODER", "provided")
    profile = get_profile("4090d")
    assert (profile.dataset, profile.encoder) == (TINY, "provided")
    assert profile.name == base.name and profile.max_seq_len == base.max_seq_len  # nothing else changes
    monkeypatch.setenv("COBRA_ENCODER", "sentence-transformers/all-MiniLM-L6-v2")  # owner/model is allowed
    assert get_profile("cpu").encoder == "sentence-transformers/all-MiniLM-L6-v2"


def test_env_override_empty_is_ignored(monkeypatch):
    monkeypatch.delenv("COBRA_DATASET", raising=False)
    monkeypatch.delenv("COBRA_ENCODER", raising=False)
    base = get_profile("cpu")
    monkeypatch.setenv("COBRA_DATASET", "")
    monkeypatch.setenv("COBRA_ENCODER", "")
    assert (get_profile("cpu").dataset, get_profile("cpu").encoder) == (base.dataset, base.encoder)


@pytest.mark.parametrize(("env", "value"), [("COBRA_DATASET", "../x"), ("COBRA_DATASET", "a/b"),
                                            ("COBRA_ENCODER", "../x"), ("COBRA_ENCODER", "a/b/c")])
def test_env_override_unsafe_value_refused(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match="not a safe name"):
        get_profile("cpu")


# ------------------------------------------------------------------------------- damaged records, unsafe names
def test_damaged_import_record_is_a_data_error(files):
    root = files["root"]
    import_dataset("shop", files["interactions"], root=root)
    (root / "imported" / "shop.json").write_text("{garbage")
    shutil.rmtree(parsed_dir(root, "shop", "local"))
    with pytest.raises(DataError, match="shop"):
        load_dataset("shop", root=root)


def test_load_dataset_refuses_unsafe_names(tmp_path):
    (tmp_path / "imported").mkdir()
    (tmp_path / "x.json").write_text("{}")  # where imported/../x.json points
    with pytest.raises(DataError, match="not a safe name"):
        load_dataset("../x", root=tmp_path)


def test_untimed_log_trains_without_time_bias(tmp_path, monkeypatch, caplog):
    """A log without timestamps: the training loop turns HSTU's time bias off, says so, and records it."""
    from cobra.presets import get_preset
    from cobra.train import fit

    monkeypatch.setenv("COBRA_HOME", str(tmp_path / "home"))
    lines = ["user,item"] + [f"u{u},i{(u * 7 + k * 3) % 25}" for u in range(30) for k in range(8)]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
    import_dataset("untimed", tmp_path / "log.csv", root=tmp_path / "home")
    config = get_preset("hstu-cpu", {"dataset": "untimed", "train.epochs": 1, "train.eval_batch_size": 64})
    with caplog.at_level("WARNING"):
        fit(config, tmp_path / "run", progress=False)
    assert "runs without its time bias" in caplog.text
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["use_time_bias"] is False
