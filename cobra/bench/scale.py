"""A full-scale dry run of every preset of a profile: ``python -m cobra bench scale [--steps N] [--out FILE]``.

Explained in the README ("Full scale"); the measured table is ``book/results/scale_4090d_<card>.json``.

For each preset of the profile (``hstu``, ``sasrec``, ``hstu-sid``, ``tiger`` and ``cobra`` at ``-4090d`` or
``-cpu``) on the profile's dataset (``COBRA_DATASET=ml-20m-synthetic`` where MovieLens-20M cannot be fetched),
:func:`dry_run` measures what a reader's card must hold and how long the work takes:

* the inputs: loading the split, the semantic IDs and the text vectors the preset needs (seconds);
* training: ``steps`` optimiser steps on the epoch's real batches in the epoch's order, after ``warmup``
  steps, with the preset's batch size and autocast; seconds per step, tokens per second and peak memory;
  the epoch's time is those seconds per step times the epoch's step count (``epoch_seconds``, an
  extrapolation from the measured steps, marked as such);
* evaluation: one full evaluation of every user on the validation split, scored against the whole catalogue
  with the preset's decoder (measured seconds and peak memory); with ``--eval-budget S``, an evaluation that
  2,000 users (after a warm-up) say would take longer than ``S`` seconds is extrapolated instead, and marked
  so in ``eval_method``.

Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA, reset before training and before evaluation.
On CPU there is no such counter, so the memory fields are absent there and the result says so.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from cobra.bench.common import check_out_file, command_line, machine, write_result
from cobra.config import ConfigError, get_profile
from cobra.data import TrainWindows, load_split
from cobra.datasets import is_synthetic
from cobra.inputs import item_text_vectors, semantic_ids, sid_config_of
from cobra.presets import get_preset
from cobra.runs import build_model, with_num_items
from cobra.train import TrainModule, epoch_batches, epoch_order, evaluate, make_optimizer, resolve_device, train_step

MODELS = ("hstu", "sasrec", "hstu-sid", "tiger", "cobra")


def _peak_gb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _batches(windows: TrainWindows, batch_size: int, seed: int):
    """The epoch's batches in the epoch's order, then the next epoch's, for as long as asked."""
    epoch = 0
    while True:
        yield from epoch_batches(windows, batch_size, epoch_order(len(windows), seed, epoch))
        epoch += 1


def _evaluate(model: Any, split: Any, config: Any, device: torch.device) -> tuple[float, dict[str, float]]:
    _reset_peak(device)
    start = time.perf_counter()
    metrics = evaluate(model, split, "valid", batch_size=config.train.eval_batch_size, amp=config.train.amp,
                       device=device)
    return time.perf_counter() - start, metrics


def dry_run(name: str, split: Any, *, steps: int = 20, warmup: int = 3, eval_budget: float | None = None,
            eval_sample: int = 2_000, progress: bool = True) -> dict[str, Any]:
    """Measure preset ``name`` on ``split`` (see the module docstring).

    The evaluation first scores a random ``eval_sample`` users (peak memory depends on the batch, not on
    the number of users) and extrapolates their time to every user; it then scores every user unless that
    estimate exceeds ``eval_budget`` seconds, in which case ``eval_seconds`` is the estimate and
    ``eval_method`` says so.

    Returns:
        dict with preset, kind, batch_size, T, num_items, input_seconds, steps, seconds_per_step,
        tokens_per_second, steps_per_epoch, epoch_seconds (extrapolated), train_peak_gb, eval_seconds,
        eval_method, eval_users, eval_peak_gb, ndcg@10 (after only ``warmup + steps`` steps: a check that
        scoring works, not a result); the ``*_peak_gb`` are None on CPU.
    """
    config = with_num_items(get_preset(name), split.num_items)
    tc = config.train
    device = resolve_device(tc.device)
    t0 = time.perf_counter()
    codes = semantic_ids(config.dataset, config.encoder, sid_config_of(config)) if config.uses_sids else None
    text = item_text_vectors(config.dataset, config.encoder) if config.uses_text else None
    input_seconds = time.perf_counter() - t0
    torch.manual_seed(tc.seed)
    model = build_model(config, codes, text).to(device)
    trainer = TrainModule(model)
    optimizer = make_optimizer(model, tc.lr, tc.betas, tc.weight_decay)
    windows = TrainWindows(split, config.model.max_seq_len, config.train.windows)
    steps_per_epoch = math.ceil(len(windows) / tc.batch_size)
    batches = _batches(windows, tc.batch_size, tc.seed)
    _reset_peak(device)
    tokens, seconds = 0, 0.0
    for i in range(warmup + steps):
        batch = next(batches)
        start = time.perf_counter()
        train_step(model, batch, optimizer, trainer, amp=tc.amp, grad_clip=tc.grad_clip, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            seconds += time.perf_counter() - start
            tokens += int(batch.lengths.sum())
    measured = max(steps, 1)
    row: dict[str, Any] = {
        "preset": name, "kind": config.kind, "dataset": config.dataset, "batch_size": tc.batch_size,
        "T": config.model.max_seq_len, "num_items": split.num_items, "amp": tc.amp if device.type == "cuda" else "none",
        "input_seconds": round(input_seconds, 2), "steps": measured,
        "seconds_per_step": round(seconds / measured, 4), "tokens_per_second": round(tokens / max(seconds, 1e-9)),
        "steps_per_epoch": steps_per_epoch, "epoch_seconds": round(seconds / measured * steps_per_epoch, 1),
        "epoch_seconds_method": f"seconds per step over {measured} steps x steps per epoch",
        "train_peak_gb": _peak_gb(device),
    }
    if progress:
        print(f"{name:<16} train {row['seconds_per_step']:.4f} s/step, epoch ~{row['epoch_seconds']:.0f} s, "
              f"peak {row['train_peak_gb']} GB", file=sys.stderr, flush=True)
    del optimizer, trainer
    total = int(split.evaluated.sum())
    _evaluate(model, split.sample_users(min(256, eval_sample), seed=1), config, device)  # warm-up: first-call costs
    sample_seconds, metrics = _evaluate(model, split.sample_users(eval_sample), config, device)
    peak = _peak_gb(device)
    estimate = sample_seconds * total / max(int(metrics["users"]), 1)
    if eval_budget is None or estimate <= eval_budget or metrics["users"] == total:
        if metrics["users"] < total:
            seconds, metrics = _evaluate(model, split, config, device)
            peak = max(peak or 0.0, _peak_gb(device) or 0.0) if device.type == "cuda" else None
        else:
            seconds = sample_seconds
        row.update(eval_seconds=round(seconds, 1), eval_method=f"measured over all {total:,} users")
    else:
        row.update(eval_seconds=round(estimate, 1),
                   eval_method=f"extrapolated from {int(metrics['users']):,} of {total:,} users "
                               f"({sample_seconds:.1f} s); the whole evaluation was over the --eval-budget")
    row.update(eval_users=total, eval_peak_gb=peak, **{"ndcg@10": round(metrics["ndcg@10"], 4)})
    if progress:
        print(f"{name:<16} eval of {total:,} users {row['eval_seconds']:.1f} s ({row['eval_method']}), "
              f"peak {row['eval_peak_gb']} GB", file=sys.stderr, flush=True)
    del model
    _reset_peak(device)
    return row


def rescale_epochs(result: dict[str, Any], split: Any) -> dict[str, Any]:
    """A :func:`run` result with each preset's epoch recounted for the presets as they are now.

    The seconds per step were measured on a GPU; how many steps make an epoch depends only on the data, the
    batch size and the training windows (:class:`cobra.data.TrainWindows`), which a CPU can count. A preset
    whose epoch changed (e.g. every training event became a target) gets the new ``steps_per_epoch`` and
    ``epoch_seconds`` (measured seconds per step x the new steps), and its ``epoch_seconds_method`` says so.
    ``result`` is not modified.
    """
    out = copy.deepcopy(result)
    for row in out["presets"]:
        config = get_preset(row["preset"])
        windows = TrainWindows(split, config.model.max_seq_len, config.train.windows)
        steps = math.ceil(len(windows) / row["batch_size"])
        if steps != row["steps_per_epoch"]:
            row["epoch_seconds_method"] = (
                f"seconds per step over {row['steps']} measured steps x {steps} steps per epoch with "
                f"windows={config.train.windows!r} (counted on the CPU by bench scale --rescale; the "
                f"measurement's epoch had {row['steps_per_epoch']} steps)")
            row.update(steps_per_epoch=steps, epoch_seconds=round(row["seconds_per_step"] * steps, 1))
    return out


def run(*, profile: str | None = None, progress: bool = True, models: str | None = None, steps: int | None = None,
        eval_budget: float | None = None, out: str | None = None, rescale: str | None = None) -> dict[str, Any]:
    """``python -m cobra bench scale``: :func:`dry_run` for each model's preset of the profile.

    Args:
        models: comma-separated model names (default all of :data:`MODELS`). steps: measured training steps
            per preset (default 20). eval_budget: seconds above which one full evaluation is extrapolated
            from a sample instead of run (default: always run it). out: also write the result there (JSON).
        rescale: a result file of this command: recount its presets' epochs (:func:`rescale_epochs`) on the
            profile's dataset instead of measuring anything (no GPU needed); ``--out`` may be the same file.
    """
    check_out_file(out)
    prof = get_profile(profile)
    if rescale:  # the measurement keeps its command and machine; the recount says how it was made
        measured = json.loads(Path(rescale).read_text())
        result = rescale_epochs(measured, load_split(measured["dataset"]))
        result["rescaled"] = {"command": command_line(), "machine": machine()}
        if out:
            Path(out).write_text(json.dumps(result, indent=2) + "\n")
        return result
    names = MODELS if models is None else tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        raise ConfigError(f"--models: unknown {unknown or '(empty)'}; choose from {', '.join(MODELS)}")
    start = time.perf_counter()
    split = load_split(prof.dataset)
    load_seconds = time.perf_counter() - start
    result = {"profile": prof.name, "dataset": prof.dataset, "encoder": prof.encoder,
              "synthetic": is_synthetic(prof.dataset), "users": int(split.num_users), "items": int(split.num_items),
              "split_seconds": round(load_seconds, 1), "presets": [],
              "memory": "torch.cuda.max_memory_allocated" if torch.cuda.is_available() else "not measured on CPU"}
    for m in names:
        result["presets"].append(dry_run(f"{m}-{prof.name}", split, steps=steps or 20, eval_budget=eval_budget,
                                         progress=progress))
        if out:  # after every preset, so a run cut short keeps what it measured
            write_result(result, out)
    return write_result(result, out)


# ------------------------------------------------------------------------------------- chapter estimates
def chapter_training() -> dict[str, tuple[tuple[str, int, int], ...]]:
    """What each training chapter trains: ``(model, epochs, runs)`` per preset family, as the chapter's code says
    (``EPOCHS`` and its variants; tests/test_full_scale.py keeps the two in step)."""
    from cobra.embeddings import FUSIONS

    return {"06_prefixn": (("hstu", 3, 1), ("hstu-sid", 3, 1 + len(FUSIONS))),
            "05_hstu": (("hstu", 4, 5), ("sasrec", 4, 1)),
            "10_decoding": (("cobra", 3, 1),)}


def chapter_estimates(scale: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Full-scale seconds and peak GPU memory of the training chapters, estimated from a :func:`run` result.

    Each run costs ``epochs x (epoch_seconds + eval_seconds)`` (a validation every epoch) plus one test
    evaluation; the chapter's other cells are not counted. ``eval_seconds`` is one full evaluation with the
    preset's own decoder (chapter 10 validates with the cheaper ``direct``, so its figure is an upper bound).
    The peak memory is the largest training or evaluation peak of the presets the chapter trains.
    """
    by_model = {row["preset"].rsplit("-", 1)[0]: row for row in scale["presets"]}
    out = {}
    for chapter, runs in chapter_training().items():
        rows = [(by_model[m], epochs, n) for m, epochs, n in runs]
        seconds = sum(n * (epochs * (r["epoch_seconds"] + r["eval_seconds"]) + r["eval_seconds"])
                      for r, epochs, n in rows)
        peaks = [p for r, _, _ in rows for p in (r["train_peak_gb"], r["eval_peak_gb"]) if p is not None]
        out[chapter] = {"seconds": round(seconds), "peak_gpu_gb": max(peaks) if peaks else None,
                        "method": "estimate: runs x epochs x (epoch + validation) + test, from " + ", ".join(
                            f"{n} x {epochs} epochs of {r['preset']}" for r, epochs, n in rows)}
    return out


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


PRESET_COLUMNS = ("preset", "batch", "s / step", "epoch", "full evaluation", "peak GPU, training",
                  "peak GPU, evaluation")
CHAPTER_COLUMNS = ("chapter", "time", "peak GPU memory", "how")


def preset_table(scale: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row of :data:`PRESET_COLUMNS` per preset of a ``bench scale`` result, as the README and the book's
    appendix print it (an evaluation extrapolated from a sample is marked ``≤``)."""
    rows = []
    for r in scale["presets"]:
        measured = r["eval_method"].startswith("measured")
        rows.append((r["preset"], str(r["batch_size"]), f"{r['seconds_per_step']:.4f}", _duration(r["epoch_seconds"]),
                     ("" if measured else "≤ ") + _duration(r["eval_seconds"]), f"{r['train_peak_gb']:.2f} GB",
                     f"{r['eval_peak_gb']:.2f} GB"))
    return rows


def chapter_table(scale: dict[str, Any], chapters: dict[str, Any],
                  cpu: dict[str, Any] | None = None) -> list[tuple[str, str, str, str]]:
    """One row of :data:`CHAPTER_COLUMNS` per chapter, sorted.

    A chapter that finished in ``chapters`` (a ``bench chapters`` result on a GPU) is measured. A training
    chapter is estimated from ``scale`` (:func:`chapter_estimates`). Any other chapter that finished in ``cpu``
    (the same command on a machine without a GPU) is estimated from that run: its wall time (all of it on the
    CPU), and its peak process memory as a bound on the GPU memory (every tensor a GPU would hold, the CPU
    held). What is left is reported as stopped at the GPU run's time limit, or failed.
    """
    rows = {}
    for r in chapters["chapters"]:
        if r["ok"]:
            gpu = f"{r['peak_gpu_gb']:.2f} GB" if "peak_gpu_gb" in r else "none (CPU only)"
            rows[r["chapter"]] = (r["chapter"], _duration(r["seconds"]), gpu, "measured")
        elif r.get("timed_out"):
            rows[r["chapter"]] = (r["chapter"], f"over {_duration(r['seconds'])}", "not measured",
                                  "stopped at the limit")
        else:
            rows[r["chapter"]] = (r["chapter"], "not measured", "not measured", "failed: see the result file")
    for chapter, e in chapter_estimates(scale).items():
        rows[chapter] = (chapter, f"about {_duration(e['seconds'])}", f"{e['peak_gpu_gb']:.2f} GB",
                         "estimated: from the presets")
    cores = (cpu or {}).get("machine", "").split(",")[0]
    settled = {c for c, row in rows.items() if row[3] == "measured"} | set(chapter_training())
    for r in (cpu or {}).get("chapters", []):
        if r["ok"] and r["chapter"] not in settled:
            rows[r["chapter"]] = (r["chapter"], f"about {_duration(r['seconds'])}",
                                  f"≤ {r['peak_rss_gb']:.2f} GB", f"estimated: run on {cores}")
    return sorted(rows.values())


def readme_rows(scale: dict[str, Any], chapters: dict[str, Any],
                cpu: dict[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """The README's full-scale tables as Markdown rows, from the ``bench scale`` and ``bench chapters`` results
    (``cpu``: see :func:`chapter_table`; the tests check the README against them)."""
    def markdown(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cells) + " |"

    presets = [markdown((f"`{name}`", *rest)) for name, *rest in preset_table(scale)]
    return presets, [markdown(row) for row in chapter_table(scale, chapters, cpu)]
