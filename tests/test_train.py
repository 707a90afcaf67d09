"""Training loop: exact resume, atomic checkpoints, RNG state, the cpu preset end to end, the CLI glue."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cobra.cli import cli_train
from cobra.config import ConfigError
from cobra.data import build_sequences, leave_one_out, synthetic_movielens
from cobra.presets import get_preset, load_run_config
from cobra.runs import load_checkpoint, load_run, save_checkpoint
from cobra.train import (
    RESULT_KEYS,
    epoch_order,
    evaluate_run,
    fit,
    rng_state,
    set_rng_state,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run much faster on one thread, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_split(num_users: int = 120, num_items: int = 80, per_user: int = 25):
    df = synthetic_movielens(num_users=num_users, num_items=num_items, num_interactions=num_users * per_user,
                             seed=3, min_seq_len=10)
    return leave_one_out(build_sequences(df, num_users), num_items)


def tiny_config(backbone: str = "hstu", **train):
    overrides = {"model.backbone": backbone, "model.dim": 16, "model.max_seq_len": 12, "model.num_blocks": 1,
                 "epochs": 3, "batch_size": 32, "patience": 0, "eval_batch_size": 64, "device": "cpu",
                 "loss": "sampled_softmax", "num_negatives": 8, "warmup_steps": 3, **train}
    return get_preset("hstu-cpu", overrides)


def metrics_of(result: dict) -> dict:
    return {k: result[k] for k in ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200", "mrr",
                                   "epochs", "best_epoch", "valid_ndcg@10")}


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("backbone", ["hstu", "sasrec"])
def test_exact_resume(tmp_path: Path, backbone: str) -> None:
    split = tiny_split()
    config = tiny_config(backbone)
    straight = fit(config, tmp_path / "a", progress=False, split=split)

    partial = fit(config, tmp_path / "b", progress=False, split=split, stop_after=2)
    assert partial["stopped"] and partial["epochs"] == 2
    assert not (tmp_path / "b" / "result.json").exists()
    resumed = fit(config, tmp_path / "b", progress=False, split=split)

    assert metrics_of(resumed) == metrics_of(straight)
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    wa, wb = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_run_written_before_the_loss_settings_moved_reloads_and_resumes(tmp_path: Path) -> None:
    """A config.json with the old layout (train.loss / num_negatives / temperature) loads and resumes exactly."""
    split = tiny_split()
    config = tiny_config(temperature=0.1)
    straight = fit(config, tmp_path / "a", progress=False, split=split)
    fit(config, tmp_path / "b", progress=False, split=split, stop_after=1)
    path = tmp_path / "b" / "config.json"
    old = json.loads(path.read_text())
    old["train"].update({k: old["model"].pop(k) for k in ("loss", "num_negatives", "temperature")})
    path.write_text(json.dumps(old))

    model, reloaded, _ = load_run(tmp_path / "b", "last.pt", split=split)
    assert (reloaded.model.loss, reloaded.model.num_negatives, reloaded.model.temperature) == (
        "sampled_softmax", 8, 0.1)
    assert reloaded.model == model.config and not hasattr(reloaded.train, "temperature")
    with pytest.raises(ConfigError, match=r"model\.temperature"):  # a changed loss setting is still refused
        fit(tiny_config(temperature=0.2), tmp_path / "b", progress=False, split=split)
    resumed = fit(config, tmp_path / "b", progress=False, split=split)
    assert metrics_of(resumed) == metrics_of(straight)
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    assert "temperature" in json.loads(path.read_text())["model"]  # rewritten in the current layout


def test_resume_after_crash_in_callback(tmp_path: Path) -> None:
    split = tiny_split()
    config = tiny_config()
    straight = fit(config, tmp_path / "a", progress=False, split=split)

    def crash(record: dict, model: torch.nn.Module) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")

    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "b", progress=False, split=split, callback=crash)
    assert len(losses(tmp_path / "b")) == 1
    resumed = fit(config, tmp_path / "b", progress=False, split=split)
    assert metrics_of(resumed) == metrics_of(straight)
    assert all(torch.equal(v, weights(tmp_path / "b" / "last.pt")[k])
               for k, v in weights(tmp_path / "a" / "last.pt").items())


def test_finished_run_is_not_retrained_and_config_change_refused(tmp_path: Path) -> None:
    split = tiny_split()
    config = tiny_config(epochs=1)
    first = fit(config, tmp_path, progress=False, split=split)
    again = fit(config, tmp_path, progress=False, split=split)
    assert metrics_of(again) == metrics_of(first)
    assert len(losses(tmp_path)) == 1
    with pytest.raises(ConfigError, match="train.lr") as refused:
        fit(tiny_config(epochs=1, lr=0.01), tmp_path, progress=False, split=split)
    assert "resume=False" not in str(refused.value)  # no CLI flag: say what a command line can do
    assert "new --out" in str(refused.value) and f"delete {tmp_path}" in str(refused.value)
    # resume=False starts over
    fresh = fit(tiny_config(epochs=1, lr=0.01), tmp_path, resume=False, progress=False, split=split)
    assert load_run_config(tmp_path).train.lr == 0.01 and fresh["epochs"] == 1


def test_early_stopping_keeps_best(tmp_path: Path) -> None:
    split = tiny_split()
    # lr so large that validation gets worse quickly; patience 1 stops the run.
    result = fit(tiny_config(epochs=30, patience=1, lr=0.5, grad_clip=0.0), tmp_path, progress=False, split=split)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert result["epochs"] == len(lines) < 30
    best = max(lines, key=lambda r: r["valid_ndcg@10"])
    assert result["best_epoch"] == best["epoch"]
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best["epoch"]


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"x": torch.arange(3), "epoch": 1})
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")  # partial bytes, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.arange(5), "epoch": 2})
    monkeypatch.setattr(torch, "save", real_save)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["x"], torch.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_damaged_checkpoint_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="last.pt") as damaged:
        load_checkpoint(path)
    assert "damaged" in str(damaged.value) and "weights_only" not in str(damaged.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_rng_state_round_trip_with_weights_only(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))  # noqa: NPY002
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_epoch_order_depends_only_on_seed_and_epoch() -> None:
    a = epoch_order(10, seed=0, epoch=3)
    assert np.array_equal(a, epoch_order(10, seed=0, epoch=3))
    assert not np.array_equal(a, epoch_order(10, seed=0, epoch=4))
    assert sorted(a) == list(range(10))
    shards = [epoch_order(10, 0, 3, rank=r, world_size=3) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to 12
    assert set(np.concatenate(shards)) == set(range(10))


def test_cpu_preset_one_epoch_end_to_end_and_cli(tmp_path: Path) -> None:
    result = cli_train(preset="hstu-cpu", sets=["epochs=1"], out=str(tmp_path), progress=False)
    assert set(RESULT_KEYS) <= set(result)
    assert result["preset"] == "hstu-cpu" and result["epochs"] == 1 and result["tokens_per_second"] > 0
    for name in ("config.json", "last.pt", "best.pt", "metrics.jsonl", "result.json"):
        assert (tmp_path / name).is_file(), name
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert {"epoch", "step", "loss", "valid_ndcg@10", "seconds", "tokens_per_second"} <= set(record)
    assert load_run_config(tmp_path) == get_preset("hstu-cpu", {"epochs": 1}).replace(
        model=load_run_config(tmp_path).model)
    assert load_run_config(tmp_path).model.num_items == 1682

    model, config, split = load_run(tmp_path)
    assert not model.training and config.preset == "hstu-cpu" and split.num_items == 1682
    test = evaluate_run(str(tmp_path), split="test")
    assert test["ndcg@10"] == pytest.approx(result["ndcg@10"], abs=1e-9)
    valid = evaluate_run(str(tmp_path), split="valid")
    assert valid["split"] == "valid" and valid["ndcg@10"] == pytest.approx(result["valid_ndcg@10"], abs=1e-9)


@pytest.mark.slow
def test_hstu_cpu_beats_popular(tmp_path: Path) -> None:
    from cobra.metrics import evaluate_baseline

    result = fit(get_preset("hstu-cpu", {"epochs": 10}), tmp_path, progress=False)
    popular = evaluate_baseline("popular", "ml-100k")
    assert result["ndcg@10"] > 1.8 * popular["ndcg@10"]
    assert result["hr@10"] > 1.5 * popular["hr@10"]


def test_bench_speed_small() -> None:
    from cobra.bench.speed import bench_speed

    result = bench_speed(lengths=(8, 16), dim=16, batch_size=4, steps=1, num_items=50, device="cpu",
                         gpu_presets=("hstu-cpu", "cobra-cpu"))
    assert [(r["model"], r["T"]) for r in result["rows"]] == [("hstu", 8), ("sasrec", 8), ("hstu", 16),
                                                              ("sasrec", 16)]
    assert all(r["tokens_per_second"] > 0 and r["peak_memory_mb"] > 0 for r in result["rows"])
    hstu = [r["peak_memory_mb"] for r in result["rows"] if r["model"] == "hstu"]
    assert hstu[1] > hstu[0]  # longer sequences cost more memory
    assert [(p["preset"], p["kind"], p["measured"]) for p in result["presets"]] == [
        ("hstu-cpu", "sequential", False), ("cobra-cpu", "cobra", False)]
    assert all(0 < p["peak_memory_gb"] < 24 for p in result["presets"])
    assert set(result["hstu_over_sasrec_tokens_per_second"]) == {"8", "16"}


# ------------------------------------------------------------------------- COBRA and TIGER through fit
def tiny_codes(num_items: int = 80, seed: int = 0) -> np.ndarray:
    """(N, 3) codes: 2 levels of 4 codes plus a uniqueness column."""
    from cobra.sid import add_uniqueness

    return add_uniqueness(np.random.default_rng(seed).integers(0, 4, (num_items, 2)))


def tiny_text(num_items: int = 80, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((num_items, 12)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def tiny_generative(kind: str, **overrides):
    common = {"model.dim": 16, "model.max_seq_len": 12, "model.num_blocks": 1, "epochs": 3, "batch_size": 32,
              "patience": 0, "eval_batch_size": 64, "device": "cpu", "warmup_steps": 3}
    extra = {"cobra": {"model.num_negatives": 8, "model.decode.beam_items": 30},
             "tiger": {"model.beam_width": 5}}[kind]
    return get_preset(f"{kind}-cpu", {**common, **extra, **overrides})


@pytest.mark.parametrize("kind", ["cobra", "tiger"])
def test_exact_resume_generative(tmp_path: Path, kind: str) -> None:
    split, codes, text = tiny_split(), tiny_codes(), tiny_text()
    config = tiny_generative(kind)
    data = {"split": split, "codes": codes, "text_vectors": text}
    straight = fit(config, tmp_path / "a", progress=False, **data)
    assert straight["model"] == kind and straight["epochs"] == 3
    partial = fit(config, tmp_path / "b", progress=False, stop_after=2, **data)
    assert partial["stopped"]
    resumed = fit(config, tmp_path / "b", progress=False, **data)
    assert metrics_of(resumed) == metrics_of(straight)
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    wa, wb = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "b" / "last.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    record = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"cobra": "train_loss_vid", "tiger": "train_ce@1"}[kind] in record  # the model's stats are logged

    # load_run rebuilds the kind; its evaluation equals the run's result
    from cobra.train import evaluate

    saved = load_run_config(tmp_path / "a")
    assert saved.kind == kind and saved.uses_text == (kind == "cobra")
    assert (saved.text_vectors is not None) == (kind == "cobra")
    model, config2, _ = load_run(tmp_path / "a", split=split, text_vectors=text)
    test = evaluate(model, split, "test", batch_size=64)
    assert test["ndcg@10"] == pytest.approx(straight["ndcg@10"], abs=1e-9)
    if kind == "cobra":
        direct = evaluate(model, split, "test", batch_size=64, score_options={"decode": "direct"})
        assert 0.0 <= direct["ndcg@10"] <= 1.0
        with pytest.raises(ConfigError, match="embedding cache"):
            load_run(tmp_path / "a", split=split, text_vectors=tiny_text(seed=1))
        with pytest.raises(ConfigError, match="text vectors"):
            fit(config, tmp_path / "a", progress=False, split=split, codes=codes, text_vectors=tiny_text(seed=1))


def test_decode_flag_only_for_cobra_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cobra.cli import main

    fit(tiny_config(epochs=1), tmp_path, progress=False, split=tiny_split())
    with pytest.raises(ConfigError, match="only|COBRA"):
        evaluate_run(str(tmp_path), split="test", decode="beam")
    assert main(["eval", "--run", str(tmp_path), "--decode", "beam", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--decode" in err and "'sequential'" in err


def test_bench_quality_curves_decodes_and_out_file(tmp_path: Path) -> None:
    import cobra.bench.quality as tb
    from cobra.decode import DECODERS

    tiny = {"model.dim": 16, "model.max_seq_len": 8, "model.num_blocks": 1, "epochs": 2, "patience": 0,
            "train.eval_batch_size": 1024}
    result = tb.bench_quality(["hstu-cpu", "cobra-cpu"], seeds=2, out_dir=tmp_path, overrides=tiny)
    hstu, cobra = result["models"]["hstu-cpu"], result["models"]["cobra-cpu"]
    assert cobra["model"] == "cobra" and hstu["model"] == "hstu"
    assert cobra["ndcg@10_mean"] == pytest.approx(np.mean([r["ndcg@10"] for r in cobra["runs"]]))
    assert [p["epoch"] for p in cobra["runs"][1]["curve"]] == [1, 2]
    assert {"loss", "train_loss_sid", "train_loss_vid"} <= set(cobra["runs"][0]["curve"][0])
    assert [(p["epoch"], p["runs"]) for p in cobra["curve"]] == [(1, 2), (2, 2)]
    assert "decodes" not in hstu  # one way to score items
    assert set(cobra["decodes"]) == set(DECODERS) and cobra["best_decode_on_valid"] in DECODERS
    beam = cobra["decodes"]["beam"]  # the preset's mode: the same numbers as the runs' own evaluation
    assert beam["ndcg@10_mean"] == pytest.approx(cobra["ndcg@10_mean"], abs=1e-9)
    best = max(cobra["decodes"].values(), key=lambda d: d["valid_ndcg@10_mean"])
    assert cobra["decodes"][cobra["best_decode_on_valid"]] == best
    assert result["popular"]["ndcg@10"] == pytest.approx(0.0252, abs=5e-4)
    for entry in (hstu, cobra):  # per-user test NDCG@10, the mean over seeds, averages to the model's mean
        assert len(entry["per_user_ndcg@10"]) == 943
        assert np.mean(entry["per_user_ndcg@10"]) == pytest.approx(entry["ndcg@10_mean"], abs=1e-6)
    cobra_dirs = sorted(tmp_path.glob("cobra-cpu-*-seed*"))  # scored with the decode ablation: the same values
    np.testing.assert_allclose(cobra["per_user_ndcg@10"], tb.per_user_test(cobra_dirs), atol=1e-6)
    sig, mode = result["significance"], cobra["best_decode_on_valid"]
    if mode == "beam":  # the preset's own mode won: COBRA is compared as trained
        assert "chosen" not in cobra and sig["reference"] == "cobra-cpu"
        assert list(sig["against"]) == ["hstu-cpu"]
        reference = cobra["per_user_ndcg@10"]
    else:  # the same runs decoded by the mode validation chose are the reference, and a row of their own
        chosen = cobra["chosen"]
        assert chosen["decode"] == mode and chosen["ndcg@10_mean"] == cobra["decodes"][mode]["ndcg@10_mean"]
        assert np.mean(chosen["per_user_ndcg@10"]) == pytest.approx(chosen["ndcg@10_mean"], abs=1e-6)
        np.testing.assert_allclose(chosen["per_user_ndcg@10"], tb.per_user_test(cobra_dirs, decode=mode), atol=1e-6)
        assert sig["reference"] == f"cobra-cpu:{mode}" and list(sig["against"]) == ["hstu-cpu", "cobra-cpu"]
        assert sum(f"model.decode.mode={mode}` " in line for line in tb.readme_rows(result)) == 1
        reference = chosen["per_user_ndcg@10"]
    pair = sig["against"]["hstu-cpu"]
    diff = np.mean(reference) - np.mean(hstu["per_user_ndcg@10"])
    assert pair["diff"] == pytest.approx(diff, abs=1e-6) and pair["ci_low"] <= pair["diff"] <= pair["ci_high"]
    assert pair["p_holm"] == pytest.approx(pair["p_wilcoxon"]) and pair["significant"] == (pair["p_holm"] < 0.05)
    assert result["overrides"] == tiny
    assert [len(p.name) for p in tmp_path.glob("cobra-cpu-*-seed1")] == [len("cobra-cpu-12345678-seed1")]
    with pytest.raises(ConfigError, match="unknown preset"):
        tb.run(models="cobra-gpu", seeds=1, progress=False)
    with pytest.raises(ConfigError, match="'model.nope'"):
        tb.run(models="cobra-cpu", seeds=1, sets=["model.nope=1"], progress=False)
    with pytest.raises(ConfigError, match="--reference 'tiger-cpu' is not one of"):
        tb.bench_quality(["hstu-cpu", "cobra-cpu"], seeds=1, out_dir=tmp_path, reference="tiger-cpu")


def test_the_same_benchmark_on_two_machines_lines_up_row_by_row() -> None:
    from cobra.bench.quality import machine_rows, machine_title, result_rows

    def entry(ndcg: float) -> dict:
        return {"ndcg@10_mean": ndcg, "ndcg@10_std": 0.01, "per_user_ndcg@10": [ndcg]}

    def result(machine: str, models: dict, **overrides: object) -> dict:
        return {"machine": machine, "overrides": overrides, "models": models}

    cpu = result("2 CPU cores, torch 2.13.0+cpu, no GPU",
                 {"hstu-cpu": entry(0.1), "cobra-cpu": {**entry(0.07), "chosen": {"decode": "sparse", **entry(0.105)}},
                  "tiger-cpu": entry(0.045)})
    gpu = result("16 CPU cores, torch 2.11.0+cu130, NVIDIA H200",
                 {"hstu-cpu": entry(0.101),
                  "cobra-cpu": {**entry(0.069), "chosen": {"decode": "sparse", **entry(0.1)}}},
                 **{"train.device": "cuda", "train.deterministic": False})
    stopped = result("16 CPU cores, torch 2.11.0+cu130, NVIDIA H200", {"cobra-cpu": entry(0.1053)},
                     **{"train.device": "cuda", "model.decode.mode": "sparse"})
    # where a run ran is not part of its key; what it trained is
    assert list(result_rows(cpu)) == ["hstu-cpu", "cobra-cpu", "cobra-cpu:sparse", "tiger-cpu"]
    assert list(result_rows(gpu, stopped)) == ["hstu-cpu", "cobra-cpu", "cobra-cpu:sparse",
                                               "cobra-cpu --set model.decode.mode=sparse"]
    assert (machine_title(cpu), machine_title(gpu)) == ("2 CPU cores", "NVIDIA H200")
    lines = machine_rows({"CPU": result_rows(cpu), "GPU": result_rows(gpu, stopped)})
    assert lines[:2] == ["| model | NDCG@10, CPU | NDCG@10, GPU |", "|---|---|---|"]
    assert lines[2:] == ["| `hstu-cpu` | 0.1000 ± 0.0100 | 0.1010 ± 0.0100 |",  # rows both machines have
                         "| `cobra-cpu` | 0.0700 ± 0.0100 | 0.0690 ± 0.0100 |",
                         "| `cobra-cpu`, the same runs decoded by `sparse` | 0.1050 ± 0.0100 | 0.1000 ± 0.0100 |"]


def test_bench_tune_gives_every_model_the_same_grid_and_picks_on_validation(tmp_path: Path) -> None:
    from cobra.bench.tune import bench_tune, grid_points

    assert grid_points({"b": (1, 2), "a": ("x",)}) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    tiny = {"model.dim": 16, "model.max_seq_len": 8, "model.num_blocks": 1, "epochs": 2, "patience": 0}
    grid = {"train.lr": (1e-3, 1e-2)}
    result = bench_tune(["hstu-cpu", "sasrec-cpu"], grid=grid, out_dir=tmp_path, overrides=tiny)
    assert result["grid"] == {"train.lr": [1e-3, 1e-2]} and result["dataset"] == "ml-100k"
    for entry in result["models"].values():
        assert [p["overrides"] for p in entry["points"]] == grid_points(grid)
        best = max(entry["points"], key=lambda p: p["valid_ndcg@10"])
        assert entry["best"] == best["overrides"]
        assert all("ndcg@10" not in p and "hr@10" not in p for p in entry["points"])  # no test numbers
    again = bench_tune(["hstu-cpu"], grid=grid, out_dir=tmp_path, overrides=tiny)  # finished runs are reused

    def keys(entry):
        return [(p["overrides"], p["valid_ndcg@10"], p["best_epoch"], p["curve"]) for p in entry["points"]]

    assert keys(again["models"]["hstu-cpu"]) == keys(result["models"]["hstu-cpu"])
    assert result["overrides"] == tiny and len(list(tmp_path.iterdir())) == 4
    bench_tune(["hstu-cpu"], grid=grid, out_dir=tmp_path, overrides={**tiny, "model.dropout": 0.5})
    assert len(list(tmp_path.iterdir())) == 6  # other overrides: runs of their own, not the ones above
    with pytest.raises(ConfigError, match="--set train.lr is a key of the tuning grid"):  # the grid sets it
        bench_tune(["hstu-cpu"], grid=grid, out_dir=tmp_path, overrides={**tiny, "train.lr": 0.1})
    assert len(list(tmp_path.iterdir())) == 6  # refused before any training


def test_bench_out_file(tmp_path: Path) -> None:
    from cobra.bench.common import cpu_model, write_result

    out = tmp_path / "bench" / "quality.json"
    result = {"models": {"a": {"ndcg@10_mean": 0.1}}, "seeds": 3}
    assert write_result(result, None) is result
    written = write_result(result, str(out))
    saved = json.loads(out.read_text())
    assert written == {**saved, "out": str(out)} and {k: saved[k] for k in result} == result
    # the command, after the COBRA_* settings it ran with (CI sets COBRA_PROFILE)
    assert "python -m cobra " in saved["command"] and "CPU cores, torch" in saved["machine"]
    assert saved["cpu"] == cpu_model() and saved["cpu"].strip() and saved["wall_s"] > 0


# ------------------------------------------------------------------------------------ bench batch
def test_bench_batch_step_clock(tmp_path):
    """Every run is validated on the same clock of optimiser steps, whatever its batch size."""
    from cobra.bench.batch import batch_overrides, bench_batch

    assert batch_overrides(16, 943, 4)["train.eval_every"] == 1  # 59 steps per epoch
    assert batch_overrides(256, 943, 4)["train.eval_every"] == 16  # 4 steps per epoch -> 64 steps
    assert batch_overrides(256, 943, 4, max_evals=10)["train.epochs"] == 160
    with pytest.raises(ConfigError, match="COBRA preset"):
        bench_batch("hstu-cpu", seeds=1, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="VID negatives"):
        bench_batch(negatives=("nope",), seeds=1, out_dir=tmp_path)
    tiny = {"model.dim": 16, "model.max_seq_len": 8, "model.num_blocks": 1, "train.eval_batch_size": 1024,
            "train.windows": "last"}  # one window per user: 943 windows
    result = bench_batch(batch_sizes=(256, 512), negatives=("in-batch", "catalogue"), seeds=1, out_dir=tmp_path,
                         patience=2, steps_per_eval=8, max_evals=2, overrides=tiny, jobs=2)  # 2 processes
    cells = {(c["negatives"], c["batch_size"]): c for c in result["cells"]}
    assert set(cells) == {("in-batch", 256), ("in-batch", 512), ("catalogue", 256), ("catalogue", 512)}
    assert cells["catalogue", 256]["runs"][0]["epochs"] == 4  # eval every 2 epochs, 2 validations
    assert cells["catalogue", 512]["runs"][0]["steps"] == 8 * 2  # eval every 4 epochs of 2 steps, twice
    for name in ("in-batch", "catalogue"):
        small, large = cells[name, 256]["ndcg@10_mean"], cells[name, 512]["ndcg@10_mean"]
        assert result["change"][name] == pytest.approx((large - small) / small)
    again = bench_batch(batch_sizes=(256,), negatives=("catalogue",), seeds=1, out_dir=tmp_path,
                        patience=2, steps_per_eval=8, max_evals=2, overrides=tiny)  # finished runs are reused
    first, reused = cells["catalogue", 256]["runs"][0], again["cells"][0]["runs"][0]
    keys = ("ndcg@10", "epochs", "steps")
    assert {k: reused[k] for k in keys} == {k: first[k] for k in keys}


def test_bench_ablate_trains_each_variant_of_cobra_and_reports_validation(tmp_path: Path) -> None:
    from cobra.bench.ablate import VARIANTS, bench_ablate
    from cobra.bench.common import settings_tag
    from cobra.decode import DECODERS
    from cobra.presets import load_run_config

    with pytest.raises(ConfigError, match="unknown ablation variants"):
        bench_ablate(["sources", "nope"], out_dir=tmp_path)
    # sid_levels is the preset's own, so that the coarse variant's setting must win over it
    tiny = {"model.dim": 16, "model.max_seq_len": 8, "model.num_blocks": 1, "epochs": 1, "patience": 0,
            "sid_levels": 3}
    names = ["sources", "SID 1 level, no uniqueness code"]
    valid_only = bench_ablate(names, out_dir=tmp_path, overrides=tiny)
    assert list(valid_only["variants"]) == names and valid_only["best_on_valid"] in names
    assert valid_only["overrides"] == tiny
    assert all("ndcg@10_mean" not in v and "ndcg@10" not in v["runs"][0] for v in valid_only["variants"].values())
    for v in valid_only["variants"].values():  # every decoding mode on validation; the preset's is the run's own
        assert set(v["valid_ndcg@10_by_decode"]) == set(DECODERS)
        assert v["valid_ndcg@10_by_decode"]["beam"] == pytest.approx(v["valid_ndcg@10_mean"], abs=1e-9)
    best = valid_only["best_on_valid_any_decode"]
    assert valid_only["variants"][best["variant"]]["valid_ndcg@10_by_decode"][best["decode"]] == max(
        x for v in valid_only["variants"].values() for x in v["valid_ndcg@10_by_decode"].values())
    # the runs are named by the overrides too, and a variant's own settings win over them
    coarse = load_run_config(tmp_path / f"sid-1-level-no-uniqueness-code-{settings_tag(tiny)}")
    assert (coarse.sid_levels, coarse.model.sid_levels) == (1, 1) and VARIANTS["sources"] == {}
    assert coarse.model.dim == 16
    with_test = bench_ablate(names, test=True, out_dir=tmp_path, overrides=tiny)  # the same runs, reused
    for name in names:
        v, w = with_test["variants"][name], valid_only["variants"][name]
        assert v["valid_ndcg@10_mean"] == w["valid_ndcg@10_mean"] and 0 <= v["ndcg@10_mean"] <= 1


def test_bench_jobs_times_both_ways_of_running_two_seeds() -> None:
    from cobra.bench.jobs import bench_jobs, run

    result = bench_jobs(["hstu-cpu"], epochs=1)
    entry = result["presets"]["hstu-cpu"]
    assert result["epochs"] == 1 and result["threads"] >= 2
    assert entry["sequential_s"] > 0 and entry["side_by_side_s"] > 0 and entry["epoch_s_all_threads"] > 0
    assert entry["speedup"] == pytest.approx(entry["sequential_s"] / entry["side_by_side_s"], rel=0.05)
    with pytest.raises(ConfigError, match="epochs >= 1"):
        bench_jobs(["hstu-cpu"], epochs=0)
    with pytest.raises(ConfigError, match="unknown preset"):
        run(models="hstu-gpu", progress=False)
