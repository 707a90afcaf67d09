"""Batch-size sensitivity of COBRA's VID loss: ``python -m cobra bench batch``.

Explained in chapter 09 (book/09_dual_loss.py).

The source articles blame COBRA's weak MovieLens result on in-batch InfoNCE: interleaving doubles
the sequence, memory forces small batches, and a small batch starves the VID loss of negatives.
This benchmark trains the same COBRA preset at several batch sizes with each source of VID
negatives (``in-batch``, ``catalogue``, ``cache``; :data:`cobra.losses.VID_NEGATIVES`) and reports
test NDCG@10 per (negatives, batch size), mean and standard deviation over seeds, and the relative
change between the smallest and the largest batch.

Protocol: batch size changes the number of optimiser steps per epoch, which would confound the
comparison if every run had the same number of epochs. So every run trains *to convergence* on the
same clock of optimiser steps: it is validated about every :data:`STEPS_PER_EVAL` steps
(``eval_every = round(STEPS_PER_EVAL * B / windows)`` epochs, at least 1; one window per user), stops after ``patience``
validations without improvement, and is capped at :data:`MAX_EVALS` validations; the best
validation checkpoint is tested. Everything else is the preset's (learning rate included).

Runs are cached in ``data_home()/runs/bench-batch/<negatives>-b<B>-seed<s>`` and reused, so an
interrupted grid resumes. ``jobs > 1`` trains that many runs at once in separate processes: the
``cpu`` preset's runs are small, and one GPU has room for a whole grid of them.

* :func:`bench_batch` -- the grid; :func:`batch_overrides` -- one run's ``--set`` values on the step clock.
* :func:`run` -- the command: checks its flags before any training, says how to resume on Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cobra.bench.common import check_out_file, fit_runs, mean_std, write_result
from cobra.config import ConfigError, Interrupted, data_home
from cobra.data import TrainWindows, load_split
from cobra.losses import VID_NEGATIVES
from cobra.presets import get_preset

BATCH_SIZES = (16, 64, 256)
NEGATIVES = ("in-batch", "catalogue")
STEPS_PER_EVAL = 60
MAX_EVALS = 60


def batch_overrides(batch_size: int, windows: int, patience: int, steps_per_eval: int = STEPS_PER_EVAL,
                    max_evals: int = MAX_EVALS) -> dict[str, Any]:
    """``--set`` values of one run: validated every ~``steps_per_eval`` optimiser steps, ``max_evals`` times at most."""
    eval_every = max(1, round(steps_per_eval * batch_size / windows))
    return {"train.batch_size": batch_size, "train.eval_every": eval_every, "train.patience": patience,
            "train.epochs": eval_every * max_evals}


def bench_batch(preset: str = "cobra-cpu", batch_sizes: Sequence[int] = BATCH_SIZES,
                negatives: Sequence[str] = NEGATIVES, seeds: int = 3, device: str | None = None,
                patience: int = 4, out_dir: str | Path | None = None, progress: bool = False, *,
                steps_per_eval: int = STEPS_PER_EVAL, max_evals: int = MAX_EVALS,
                overrides: dict[str, Any] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Test NDCG@10 of ``preset`` per (VID negatives, batch size), mean and std over ``seeds``.

    Args:
        preset: a COBRA preset (``cobra-cpu``).
        batch_sizes: the batch sizes ``B``.
        negatives: keys of :data:`cobra.losses.VID_NEGATIVES`.
        seeds: runs per cell, ``seed = 0 .. seeds - 1``.
        device: ``train.device`` of every run (default the preset's).
        patience: validations without improvement before a run stops.
        out_dir: where the runs go (default ``data_home()/runs/bench-batch``); finished runs are reused.
        progress: tqdm bars.
        steps_per_eval / max_evals: the step clock (see the module docstring).
        overrides: extra ``--set`` values for every run (e.g. a smaller model for a quick look).
        jobs: runs trained at once, each in its own process (1: one after the other, in this process).

    Returns:
        dict with preset, protocol, batch_sizes, seeds, cells (one per (negatives, B): negatives,
        batch_size, ndcg@10_mean, ndcg@10_std, hr@10_mean, steps_mean, runs [{seed, ndcg@10, hr@10,
        valid_ndcg@10, epochs, best_epoch, steps, seconds}]) and change (per negatives: relative change
        of mean NDCG@10 from the smallest to the largest batch, ``(largest - smallest) / smallest``).
    """
    config = get_preset(preset, overrides)
    if config.kind != "cobra":
        raise ConfigError(f"bench batch trains a COBRA preset; {preset!r} is a {config.kind!r} run")
    for name in negatives:
        if name not in VID_NEGATIVES:
            raise ConfigError(f"unknown VID negatives {name!r}; choose from {list(VID_NEGATIVES)}")
    if seeds < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError(f"bench batch needs seeds >= 1 and positive batch sizes; got {seeds}, {list(batch_sizes)}")
    windows = len(TrainWindows(load_split(config.dataset), config.model.max_seq_len, config.train.windows))
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-batch"
    tasks = {}
    for name in negatives:
        for B in batch_sizes:
            for seed in range(seeds):
                sets = {**(overrides or {}), **batch_overrides(B, windows, patience, steps_per_eval, max_evals),
                        "model.vid_negatives": name, "seed": seed}
                if device:
                    sets["train.device"] = device
                tasks[name, B, seed] = (get_preset(preset, sets), root / f"{name}-b{B}-seed{seed}")
    results = fit_runs(tasks, jobs, progress)
    cells = []
    for name in negatives:
        for B in batch_sizes:
            runs = []
            for seed in range(seeds):
                r = results[name, B, seed]
                runs.append({"seed": seed, "ndcg@10": r["ndcg@10"], "hr@10": r["hr@10"],
                             "valid_ndcg@10": r["valid_ndcg@10"], "epochs": r["epochs"],
                             "best_epoch": r["best_epoch"], "steps": r["epochs"] * -(-windows // B),
                             "seconds": r["seconds"]})
            cells.append({"negatives": name, "batch_size": B, **mean_std("ndcg@10", [r["ndcg@10"] for r in runs]),
                          "hr@10_mean": float(np.mean([r["hr@10"] for r in runs])),
                          "steps_mean": float(np.mean([r["steps"] for r in runs])), "runs": runs})
    change = {}
    for name in negatives:
        by_b = {c["batch_size"]: c["ndcg@10_mean"] for c in cells if c["negatives"] == name}
        small, large = by_b[min(by_b)], by_b[max(by_b)]
        change[name] = (large - small) / small if small else 0.0
    protocol = (f"each run validated every ~{steps_per_eval} optimiser steps, early stop after {patience} "
                f"validations without improvement (at most {max_evals}), best validation checkpoint tested")
    return {"preset": preset, "dataset": config.dataset, "protocol": protocol, "batch_sizes": list(batch_sizes),
            "seeds": seeds, "cells": cells, "change": change}


def _positive_ints(text: str | Sequence[int], flag: str) -> list[int]:
    """``"16,64,256"`` -> ``[16, 64, 256]``; anything else is a ConfigError naming ``flag``."""
    if not isinstance(text, str):
        values = list(text)
    else:
        try:
            values = [int(v) for v in text.split(",")]
        except ValueError:
            values = []
    if not values or min(values) < 1:
        raise ConfigError(f"{flag} takes comma-separated positive integers, e.g. {flag} 16,64,256; got {text!r}")
    return values


def run(*, batch_sizes: str | Sequence[int] | None = None, negatives: str | Sequence[str] | None = None,
        seeds: int | None = None, device: str | None = None, jobs: int | None = None,
        out: str | Path | None = None, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench batch [--batch-sizes 16,64,256] [--negatives in-batch,catalogue] [--seeds 3]
    [--device cuda] [--jobs N] [--out FILE] [--json]``; with ``--out`` the JSON is also written to ``FILE``.

    The arguments are the flags' strings (None: the defaults); each is checked before any training.
    ``profile`` is not used: the runs are the ``cobra-cpu`` preset's."""
    sizes = list(BATCH_SIZES) if batch_sizes is None else _positive_ints(batch_sizes, "--batch-sizes")
    if negatives is None:
        negatives = list(NEGATIVES)
    elif isinstance(negatives, str):
        negatives = [n.strip() for n in negatives.split(",")]
    seeds = 3 if seeds is None else seeds
    jobs = 1 if jobs is None else jobs
    for flag, value in (("--seeds", seeds), ("--jobs", jobs)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if device is not None:
        import torch

        try:
            torch.device(device)
        except RuntimeError:
            raise ConfigError(f"unknown --device {device!r}; use cpu, cuda or cuda:N") from None
    check_out_file(out)
    try:
        result = bench_batch(batch_sizes=sizes, negatives=negatives, seeds=seeds, device=device, progress=progress,
                             jobs=jobs)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command to resume (finished runs are reused)") from None
    return write_result(result, out)
