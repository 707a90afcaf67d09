"""Every chapter runs top to bottom under the ``4090d`` profile's code paths, on CPU, in CI.

The ``4090d`` presets, sizes (D = 256, 4 blocks, T = 200, K = 128 codes, 1024-wide item vectors) and decoders run
on ``ml-20m-synthetic-tiny`` (300 users shaped like MovieLens-20M's), with the GPU settings (device ``auto``,
bf16 autocast) falling back to the CPU and every preset's training capped at one epoch
(``COBRA_MAX_EPOCHS=1``). Outputs are not compared (nbval does that at the ``cpu`` profile); a chapter that
raises at this profile fails here, with its traceback's last lines.
"""

from __future__ import annotations

import pytest

from cobra.bench.chapters import chapter_files, run_chapters

FULL_SCALE_ON_CPU = {"COBRA_PROFILE": "4090d", "COBRA_DATASET": "ml-20m-synthetic-tiny", "COBRA_ENCODER": "provided",
                     "COBRA_MAX_EPOCHS": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
CHAPTERS = chapter_files()
LONGEST = ("10_decoding", "06_prefixn")  # about 10 and 3 minutes on one CI core; the rest take about 4 together


@pytest.fixture(scope="module")
def full_scale_runs() -> dict[str, dict]:
    """Every chapter at the 4090d profile, two at a time (each trains on one thread; CI has two cores)."""
    from cobra.datasets import load_dataset

    load_dataset("ml-20m-synthetic-tiny")  # generated once here, not by two chapters at the same time
    longest_first = sorted(CHAPTERS, key=lambda path: path.stem not in LONGEST)  # 09 beside all the others
    return {record["chapter"]: record for record in run_chapters(longest_first, 1800, FULL_SCALE_ON_CPU, jobs=2)}


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_runs_at_4090d_profile(full_scale_runs, chapter):
    record = full_scale_runs[chapter.stem]
    assert not record.get("timed_out"), f"{chapter.name} ran past 30 minutes at the 4090d profile"
    assert record["ok"], f"{chapter.name} fails at the 4090d profile:\n{record.get('error')}"


def test_run_chapter_reports_memory_errors_and_crashes(tmp_path):
    from cobra.bench.chapters import run_chapter

    ok, fails, crashes = tmp_path / "98_ok.py", tmp_path / "97_fails.py", tmp_path / "99_crash.py"
    ok.write_text("import numpy as np\nblock = np.ones(2**27)  # 1 GiB\n")
    fails.write_text("raise ValueError('no such column: user')\n")
    crashes.write_text("import ctypes\nctypes.string_at(0)\n")  # a native crash, no Python traceback
    record = run_chapter(ok)
    assert record["ok"] and record["peak_rss_gb"] >= 1.0 and "peak_gpu_gb" not in record
    record = run_chapter(fails)
    assert not record["ok"] and "ValueError: no such column: user" in record["error"]
    record = run_chapter(crashes)
    assert not record["ok"] and record["error"].startswith("killed by SIGSEGV")
    assert "99_crash.py" in record["error"]  # the stack faulthandler printed names the line


def test_chapter_training_table_matches_the_chapters():
    """The full-scale estimates count each training chapter's epochs as its code sets them."""
    import re

    from cobra.bench.scale import chapter_training

    files = {path.stem: path for path in chapter_files()}
    for chapter, runs in chapter_training().items():
        epochs = {e for _, e, _ in runs}
        found = re.findall(r"^EPOCHS = (\d+)$", files[chapter].read_text(), flags=re.M)
        assert found and {int(e) for e in found} == epochs, f"{chapter}: EPOCHS {found}, table {epochs}"


def test_chapter_estimates_from_a_scale_result():
    from cobra.bench.scale import chapter_estimates, chapter_training

    rows = [{"preset": f"{m}-4090d", "epoch_seconds": 10.0, "eval_seconds": 2.0, "train_peak_gb": 3.0,
             "eval_peak_gb": 1.0} for m in ("hstu", "sasrec", "hstu-sid", "tiger", "cobra")]
    est = chapter_estimates({"presets": rows})
    assert set(est) == set(chapter_training())
    assert est["10_decoding"]["seconds"] == 3 * (10 + 2) + 2  # one run: 3 epochs with validation, one test
    assert est["05_hstu"]["seconds"] == 6 * (4 * 12 + 2) and est["05_hstu"]["peak_gpu_gb"] == 3.0


def test_chapter_table_prefers_measurements_then_estimates_then_cpu_runs():
    from cobra.bench.scale import chapter_table

    scale = {"presets": [{"preset": f"{m}-4090d", "epoch_seconds": 10.0, "eval_seconds": 2.0,
                          "train_peak_gb": 3.0, "eval_peak_gb": 1.0}
                         for m in ("hstu", "sasrec", "hstu-sid", "tiger", "cobra")]}
    gpu = {"chapters": [{"chapter": "01_data", "ok": True, "seconds": 70.0},
                        {"chapter": "02_item_embeddings", "ok": False, "timed_out": True, "seconds": 90.0},
                        {"chapter": "03_semantic_ids", "ok": False, "timed_out": True, "seconds": 90.0},
                        {"chapter": "09_dual_loss", "ok": True, "seconds": 20.0, "peak_gpu_gb": 0.5}]}
    cpu = {"machine": "2 CPU cores, torch 2.13.0+cpu, no GPU",
           "chapters": [{"chapter": c, "ok": c != "03_semantic_ids", "seconds": 300.0, "peak_rss_gb": 4.5}
                        for c in ("01_data", "02_item_embeddings", "03_semantic_ids", "05_hstu", "12_full_scale")]}
    rows = {row[0]: row[1:] for row in chapter_table(scale, gpu, cpu)}
    assert rows["01_data"] == ("1.2 min", "none (CPU only)", "measured")  # a GPU measurement wins
    assert rows["09_dual_loss"] == ("20.0 s", "0.50 GB", "measured")
    assert rows["02_item_embeddings"] == ("about 5.0 min", "≤ 4.50 GB", "estimated: run on 2 CPU cores")
    assert rows["12_full_scale"][2] == "estimated: run on 2 CPU cores"  # only in the CPU run
    assert rows["03_semantic_ids"] == ("over 1.5 min", "not measured", "stopped at the limit")  # failed on CPU
    assert rows["05_hstu"][2] == "estimated: from the presets"  # a training chapter, not the CPU run's
    assert list(rows) == sorted(rows)


def test_readme_full_scale_tables_match_the_committed_results():
    """The README's full-scale tables quote book/results/scale_4090d_h200.json, chapters_4090d_h200.json and
    chapters_4090d_cpu.json, and give every chapter a row."""
    from pathlib import Path

    from cobra.bench.scale import chapter_estimates, readme_rows
    from cobra.book import load_result

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    scale, chapters = load_result("scale_4090d_h200"), load_result("chapters_4090d_h200")
    presets, rows = readme_rows(scale, chapters, load_result("chapters_4090d_cpu"))
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [path.stem for path in chapter_files()]
    for row in presets + rows:
        assert row in readme.splitlines(), f"README lacks the row {row!r}"
    assert chapters["estimates"] == chapter_estimates(scale)  # the file's estimates are the function's
    peak = max(max(r["train_peak_gb"], r["eval_peak_gb"]) for r in scale["presets"])
    assert f"The largest peak is {peak:.2f} GB" in readme and peak <= 24
    cpu_peak = max(r["peak_rss_gb"] for r in load_result("chapters_4090d_cpu")["chapters"] if r["ok"])
    assert f"Its largest process peak, {cpu_peak:.2f} GB" in readme and cpu_peak <= 24


def test_rescale_recounts_epochs_for_the_current_presets():
    """A measured result keeps its seconds per step; only the epoch's step count (and so its seconds) follows the
    presets' training windows."""
    from cobra.bench.scale import rescale_epochs
    from cobra.data import TrainWindows, build_sequences, leave_one_out, synthetic_movielens

    split = leave_one_out(build_sequences(synthetic_movielens(300, 80, 300 * 60, seed=1), 300), 80)
    rows = [{"preset": name, "batch_size": 64, "steps": 20, "seconds_per_step": 0.5, "steps_per_epoch": 3,
             "epoch_seconds": 2.5, "epoch_seconds_method": "measured"} for name in ("hstu-4090d", "cobra-4090d")]
    result = {"presets": rows, "machine": "one GPU"}
    out = rescale_epochs(result, split)
    windows = len(TrainWindows(split, 200, "all"))
    for row in out["presets"]:
        assert row["steps_per_epoch"] == -(-windows // 64) and row["epoch_seconds"] == round(0.5 * -(-windows // 64), 1)
        assert "windows='all'" in row["epoch_seconds_method"] and "had 3 steps" in row["epoch_seconds_method"]
    assert rows[0]["steps_per_epoch"] == 3 and out["machine"] == "one GPU"  # the input is left alone
