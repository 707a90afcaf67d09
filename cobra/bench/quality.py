"""Model quality over seeds: ``python -m cobra bench quality [--models a,b] [--seeds 3] [--resume] [--out F]``.

Explained in chapter 10 (book/10_experiments.py), which plots the committed results
(``book/results/bench_quality*.json``) and explains the COBRA rows; chapters 05 and 06 give the command
for their own models. The README's results table is read from the same files.

* :func:`bench_quality` -- mean and standard deviation over seeds of HR@10 and NDCG@10 on
  MovieLens-100K for a list of presets (any kind: HSTU, SASRec, PrefixN, TIGER, COBRA), with the
  ``popular`` baseline for reference, and each run's validation NDCG@10 per epoch so convergence can
  be plotted.
* :func:`cobra.runs.validation_curve` -- one run's per-epoch validation NDCG@10 and losses (``metrics.jsonl``).
* :func:`decode_ablation` -- COBRA runs' best checkpoints scored under every decoding mode.
* :func:`run` -- the command: checks its flags before any training, says how to resume on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cobra.bench.common import check_out_file, mean_std, write_result
from cobra.config import ConfigError, Interrupted, data_home, parse_overrides
from cobra.model_kinds import MODELS
from cobra.presets import get_preset
from cobra.runs import validation_curve
from cobra.train import fit

QUALITY_MODELS = ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", "tiger-cpu", "cobra-cpu")


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Mean validation NDCG@10 per epoch over the runs that reached that epoch (early stopping differs)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            by_epoch.setdefault(point["epoch"], []).append(point["valid_ndcg@10"])
    return [{"epoch": e, "valid_ndcg@10_mean": float(np.mean(v)), "runs": len(v)} for e, v in sorted(by_epoch.items())]


def decode_ablation(run_dirs: Sequence[str | Path]) -> dict[str, dict[str, float]]:
    """Validation and test NDCG@10 of COBRA runs' best checkpoints under every decoding mode.

    Returns:
        {mode: {valid_ndcg@10_mean, ndcg@10_mean, ndcg@10_std, hr@10_mean, hr@10_std}} over the runs, for every
        key of :data:`cobra.decode.DECODERS` (COBRA's four modes and the ``sparse`` ablation).
    """
    from cobra.decode import DECODERS
    from cobra.runs import load_run
    from cobra.train import evaluate

    scores: dict[str, dict[str, list[float]]] = {m: {"valid": [], "test": [], "hr": []} for m in DECODERS}
    for run_dir in run_dirs:
        model, config, split = load_run(run_dir)
        for mode in DECODERS:
            for which in ("valid", "test"):
                r = evaluate(model, split, which, batch_size=config.train.eval_batch_size,
                             score_options={"decode": mode})
                scores[mode][which].append(r["ndcg@10"])
                if which == "test":
                    scores[mode]["hr"].append(r["hr@10"])
    return {m: {"valid_ndcg@10_mean": float(np.mean(v["valid"])), **mean_std("ndcg@10", v["test"]),
                **mean_std("hr@10", v["hr"])} for m, v in scores.items()}


def bench_quality(models: Sequence[str] = QUALITY_MODELS, seeds: int = 3,
                  out_dir: str | Path | None = None, resume: bool = False, progress: bool = False,
                  overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and standard deviation over ``seeds`` runs of HR@10 / NDCG@10 for each preset, plus ``popular``.

    Args:
        models: preset names of any kind (all on the same dataset, e.g. the ``cpu`` ones on MovieLens-100K).
        seeds: runs per preset, with ``seed = 0 .. seeds - 1``.
        out_dir: where the runs go (default ``data_home()/runs/bench-quality``), one folder per (preset, seed),
            ``<preset>-seed<s>``, or ``<preset>-<hash of overrides>-seed<s>`` with ``overrides``.
        resume: reuse finished runs found there instead of training again.
        progress: tqdm bars.
        overrides: extra ``--set`` values for every run (e.g. ``{"epochs": 5}`` for a quick look).

    Returns:
        dict with dataset, seeds, models ({preset: {model, hr@10_mean, hr@10_std, ndcg@10_mean, ndcg@10_std,
        runs: [{seed, hr@10, ndcg@10, epochs, best_epoch, seconds, curve}], curve, seconds}}) and popular
        ({hr@10, ndcg@10}). Models that decode (COBRA) also get ``decodes``: per mode of
        :data:`cobra.decode.DECODERS`, the mean validation and test NDCG@10 (and test std) of the same
        best checkpoints, and ``best_decode_on_valid``, the mode with the highest validation mean.
        ``curve`` of a run is :func:`cobra.runs.validation_curve`; the model's ``curve`` is the mean
        validation NDCG@10 per epoch over the seeds that reached it (``runs`` of them).
        The standard deviation is the sample one (``ddof = 1``; 0 for a single seed).
    """
    from cobra.metrics import evaluate_baseline

    if seeds < 1:
        raise ConfigError(f"bench quality needs seeds >= 1, got {seeds}")
    if not models:
        raise ConfigError("bench quality needs at least one preset")
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-quality"
    configs = {name: [get_preset(name, {**(overrides or {}), "seed": seed}) for seed in range(seeds)]
               for name in models}
    datasets = {c.dataset for runs in configs.values() for c in runs}
    if len(datasets) > 1:  # checked before hours of training
        raise ConfigError(f"bench quality compares presets on one dataset; got {sorted(datasets)}")
    tag = "-" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8] if overrides else ""
    results: dict[str, Any] = {}
    for name, seed_configs in configs.items():
        runs = []
        for seed, config in enumerate(seed_configs):
            run_dir = root / f"{name}{tag}-seed{seed}"
            r = fit(config, run_dir, resume=resume, progress=progress)
            runs.append({"seed": seed, "hr@10": r["hr@10"], "ndcg@10": r["ndcg@10"], "epochs": r["epochs"],
                         "best_epoch": r["best_epoch"], "seconds": r["seconds"],
                         "curve": validation_curve(run_dir)})
        entry: dict[str, Any] = {"model": r["model"]}
        for key in ("hr@10", "ndcg@10"):
            entry.update(mean_std(key, [run[key] for run in runs]))
        entry.update(runs=runs, curve=_mean_curve([run["curve"] for run in runs]),
                     seconds=round(sum(run["seconds"] for run in runs), 1))
        if MODELS[seed_configs[0].kind].decodes:
            entry["decodes"] = decode_ablation([root / f"{name}{tag}-seed{seed}" for seed in range(seeds)])
            entry["best_decode_on_valid"] = max(entry["decodes"],
                                                key=lambda m: entry["decodes"][m]["valid_ndcg@10_mean"])
        results[name] = entry
    dataset = datasets.pop() if datasets else "ml-100k"
    popular = evaluate_baseline("popular", dataset)
    return {"dataset": dataset, "seeds": seeds, "overrides": dict(overrides or {}), "models": results,
            "popular": {"hr@10": popular["hr@10"], "ndcg@10": popular["ndcg@10"]}}


def run(*, models: str | Sequence[str] | None = None, seeds: int | None = None, sets: Sequence[str] | None = (),
        resume: bool = False, out: str | Path | None = None, profile: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench quality [--models a,b,c] [--seeds 3] [--set K=V ...] [--resume] [--out FILE] [--json]``.

    ``models`` is the ``--models`` string (or a list; None: :data:`QUALITY_MODELS`), ``sets`` the ``--set``
    strings. Everything is checked before any training. With ``--out`` the result is also written to ``FILE``
    as indented JSON (parents created). ``profile`` is not used: each preset names its dataset.
    """
    if models is None:
        models = list(QUALITY_MODELS)
    elif isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    if not models:
        raise ConfigError("--models names no preset; pass comma-separated presets, e.g. --models hstu-cpu,sasrec-cpu "
                          f"(python -m cobra presets lists them), or leave it out for {','.join(QUALITY_MODELS)}")
    seeds = 3 if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds is the number of runs per model and must be >= 1, got {seeds}")
    check_out_file(out)
    overrides = parse_overrides(list(sets or []))
    for name in models:
        get_preset(name, overrides)  # an unknown preset or key fails now, before any training
    try:
        result = bench_quality(models, seeds, resume=resume, progress=progress, overrides=overrides)
    except KeyboardInterrupt:
        how = "the same command to resume" if resume else "the same command with --resume to reuse the finished runs"
        raise Interrupted(f"interrupted; run {how}") from None
    return write_result(result, out)
