"""Model quality over seeds: ``python -m cobra bench quality [--models a,b] [--seeds 5] [--jobs N] [--out F]``.

Explained in chapter 11 (book/11_experiments.py), which plots the committed results
(``book/results/bench_quality*.json``) and explains the COBRA rows; chapters 05 and 06 give the command
for their own models. The README's results table is read from the same files.

* :func:`bench_quality` -- mean and standard deviation over seeds of HR@10 and NDCG@10 on
  MovieLens-100K for a list of presets (any kind: HSTU, SASRec, PrefixN, TIGER, COBRA), with the
  ``popular`` baseline for reference, and each run's validation NDCG@10 per epoch so convergence can
  be plotted.
* :func:`cobra.runs.validation_curve` -- one run's per-epoch validation NDCG@10 and losses (``metrics.jsonl``).
* :func:`decode_ablation` -- COBRA runs' best checkpoints scored under every decoding mode.
* per-user test NDCG@10 of each model (the mean over its seeds, user by user) and a paired test of a
  reference model against every other one (:mod:`cobra.stats`: paired bootstrap, Wilcoxon, Holm).
* :func:`result_rows` / :func:`machine_rows` / :func:`machine_title` / :func:`committed_machine_rows` -- the
  same benchmarks run on two machines (the CPU and a GPU), side by side row by row.
* :func:`run` -- the command: checks its flags before any training, says how to resume on Ctrl-C.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cobra.bench.common import check_out_file, fit_runs, mean_std, write_result
from cobra.config import ConfigError, Interrupted, data_home, parse_overrides
from cobra.model_kinds import MODELS
from cobra.presets import get_preset
from cobra.runs import validation_curve

QUALITY_MODELS = ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", "tiger-cpu", "cobra-cpu")
# What each compared preset is, for tables (the README's and chapter 11's).
LABELS = {
    "hstu-cpu": "HSTU, item IDs",
    "sasrec-cpu": "SASRec, item IDs",
    "hstu-sid-cpu": "HSTU, IDs + PrefixN semantic IDs",
    "tiger-cpu": "TIGER: semantic IDs generated code by code, trie beam 20",
    "cobra-cpu": "COBRA: interleaved SID/VID, VID = projected text vector, beam decode",
}


def _mean_curve(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Mean validation NDCG@10 per epoch over the runs that reached that epoch (early stopping differs)."""
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            by_epoch.setdefault(point["epoch"], []).append(point["valid_ndcg@10"])
    return [{"epoch": e, "valid_ndcg@10_mean": float(np.mean(v)), "runs": len(v)} for e, v in sorted(by_epoch.items())]


def decode_ablation(run_dirs: Sequence[str | Path], test: bool = True,
                    per_user: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
    """Validation (and test) NDCG@10 of COBRA runs' best checkpoints under every decoding mode.

    Args:
        run_dirs: finished runs of a model that decodes (the seeds of one preset).
        test: also score the test split; without it the test split is never read (choosing on validation).
        per_user: with ``test``, filled with ``{mode: (M,) float64 test NDCG@10 per user}``, the mean over
            the runs, as :func:`per_user_test` gives it (each run is loaded and scored once for both).

    Returns:
        {mode: {valid_ndcg@10_mean, and with ``test`` ndcg@10_mean, ndcg@10_std, hr@10_mean, hr@10_std,
        ndcg@10_runs (one test NDCG@10 per run)}} over the runs, for every key of
        :data:`cobra.decode.DECODERS` (COBRA's four modes and the ``sparse`` ablation).
    """
    from cobra.decode import DECODERS
    from cobra.runs import load_run
    from cobra.train import evaluate

    splits = ("valid", "test") if test else ("valid",)
    scores: dict[str, dict[str, list[Any]]] = {m: {"valid": [], "test": [], "hr": [], "users": []}
                                               for m in DECODERS}
    for run_dir in run_dirs:
        model, config, split = load_run(run_dir)
        for mode in DECODERS:
            for which in splits:
                r = evaluate(model, split, which, batch_size=config.train.eval_batch_size,
                             score_options={"decode": mode}, per_user=("ndcg@10",) if which == "test" else ())
                scores[mode][which].append(r["ndcg@10"])
                if which == "test":
                    scores[mode]["hr"].append(r["hr@10"])
                    scores[mode]["users"].append(r["per_user"]["ndcg@10"])
    if per_user is not None and test:
        per_user.update({m: np.mean(v["users"], axis=0) for m, v in scores.items()})
    return {m: {"valid_ndcg@10_mean": float(np.mean(v["valid"])),
                **({**mean_std("ndcg@10", v["test"]), **mean_std("hr@10", v["hr"]), "ndcg@10_runs": v["test"]}
                   if test else {})}
            for m, v in scores.items()}


def per_user_test(run_dirs: Sequence[str | Path], metric: str = "ndcg@10", decode: str | None = None) -> np.ndarray:
    """(M,) float64 test ``metric`` of every evaluated user, averaged over the best checkpoints of ``run_dirs``
    (the seeds of one model), in the order of :meth:`cobra.data.LeaveOneOut.targets`; ``decode`` picks a
    decoding mode other than the runs' own (models that decode only)."""
    from cobra.runs import load_run
    from cobra.train import evaluate

    options = None if decode is None else {"decode": decode}
    rows = []
    for run_dir in run_dirs:
        model, config, split = load_run(run_dir)
        r = evaluate(model, split, "test", batch_size=config.train.eval_batch_size, per_user=(metric,),
                     score_options=options)
        rows.append(r["per_user"][metric])
    return np.mean(rows, axis=0)


def chosen_key(name: str, entry: dict[str, Any]) -> str:
    """The key of a decoding model's row with the mode chosen on validation, ``"cobra-cpu:sparse"``."""
    return f"{name}:{entry['chosen']['decode']}"


def significance(per_user: dict[str, np.ndarray], reference: str) -> dict[str, Any]:
    """``reference`` against every other model on per-user values: :func:`cobra.stats.compare`, plus the
    Holm-adjusted Wilcoxon p-value over the comparisons and whether it is below 0.05."""
    from cobra.stats import ALPHA, compare, holm

    out = {name: compare(per_user[reference], values) for name, values in per_user.items() if name != reference}
    adjusted = holm({name: r["p_wilcoxon"] for name, r in out.items()})
    for name, r in out.items():
        r["p_holm"] = adjusted[name]
        r["significant"] = adjusted[name] < ALPHA
    return {"reference": reference, "metric": "ndcg@10", "alpha": ALPHA, "against": out}


def bench_quality(models: Sequence[str] = QUALITY_MODELS, seeds: int = 5,
                  out_dir: str | Path | None = None, resume: bool = False, progress: bool = False,
                  overrides: dict[str, Any] | None = None, jobs: int = 1,
                  reference: str | None = None) -> dict[str, Any]:
    """Mean and standard deviation over ``seeds`` runs of HR@10 / NDCG@10 for each preset, plus ``popular``.

    Args:
        models: preset names of any kind (all on the same dataset, e.g. the ``cpu`` ones on MovieLens-100K).
        seeds: runs per preset, with ``seed = 0 .. seeds - 1``.
        out_dir: where the runs go (default ``data_home()/runs/bench-quality``), one folder per (preset, seed),
            ``<preset>-seed<s>``, or ``<preset>-<hash of overrides>-seed<s>`` with ``overrides``.
        resume: reuse finished runs found there instead of training again (with ``jobs > 1`` they always are).
        progress: tqdm bars.
        overrides: extra ``--set`` values for every run (e.g. ``{"epochs": 5}`` for a quick look).
        jobs: runs trained at once (:func:`cobra.bench.common.fit_runs`).
        reference: the model the paired tests compare with every other one (default ``cobra-cpu`` when it
            is among ``models``, else the last of them).

    Returns:
        dict with dataset, seeds, models ({preset: {model, hr@10_mean, hr@10_std, ndcg@10_mean, ndcg@10_std,
        runs: [{seed, hr@10, ndcg@10, epochs, best_epoch, seconds, curve}], curve, seconds}}) and popular
        ({hr@10, ndcg@10}). Models that decode (COBRA) also get ``decodes``: per mode of
        :data:`cobra.decode.DECODERS`, the mean validation and test NDCG@10 (and test std) of the same
        best checkpoints, and ``best_decode_on_valid``, the mode with the highest validation mean. When
        that is not the preset's mode, ``chosen`` holds the model decoded that way (``decode``, test
        means and stds, ``per_user_ndcg@10``): it is a row of its own in the tables and the paired tests,
        under the key :func:`chosen_key`, and it is the reference when its model is.
        ``curve`` of a run is :func:`cobra.runs.validation_curve`; the model's ``curve`` is the mean
        validation NDCG@10 per epoch over the seeds that reached it (``runs`` of them).
        The standard deviation is the sample one (``ddof = 1``; 0 for a single seed). Each model also has
        ``per_user_ndcg@10`` (test, mean over its seeds, 6 decimals), and ``significance`` holds
        :func:`significance` of ``reference`` against the others.
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
    if reference is not None and reference not in configs:
        raise ConfigError(f"--reference {reference!r} is not one of the compared presets {list(configs)}")
    tag = "-" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8] if overrides else ""
    if jobs > 1 or resume:
        fitted = fit_runs({(name, seed): (config, root / f"{name}{tag}-seed{seed}")
                           for name, seed_configs in configs.items() for seed, config in enumerate(seed_configs)},
                          jobs, progress)
    else:
        from cobra.train import fit

        fitted = {(name, seed): fit(config, root / f"{name}{tag}-seed{seed}", progress=progress)
                  for name, seed_configs in configs.items() for seed, config in enumerate(seed_configs)}
    results: dict[str, Any] = {}
    per_user: dict[str, np.ndarray] = {}
    for name, seed_configs in configs.items():
        dirs = [root / f"{name}{tag}-seed{seed}" for seed in range(seeds)]
        runs = []
        for seed, run_dir in enumerate(dirs):
            r = fitted[name, seed]
            runs.append({"seed": seed, "hr@10": r["hr@10"], "ndcg@10": r["ndcg@10"], "epochs": r["epochs"],
                         "best_epoch": r["best_epoch"], "seconds": r["seconds"],
                         "curve": validation_curve(run_dir)})
        entry: dict[str, Any] = {"model": r["model"]}
        for key in ("hr@10", "ndcg@10"):
            entry.update(mean_std(key, [run[key] for run in runs]))
        entry.update(runs=runs, curve=_mean_curve([run["curve"] for run in runs]),
                     seconds=round(sum(run["seconds"] for run in runs), 1))
        decodes = MODELS[seed_configs[0].kind].decodes
        if decodes:  # every mode scored once, per user too; the preset's own mode is the model's row
            by_mode: dict[str, np.ndarray] = {}
            ablation = decode_ablation(dirs, per_user=by_mode)
            per_user[name] = by_mode[seed_configs[0].model.decode.mode]
        else:
            per_user[name] = per_user_test(dirs)
        entry["per_user_ndcg@10"] = [round(float(v), 6) for v in per_user[name]]
        if decodes:
            entry["decodes"] = ablation
            best = max(entry["decodes"], key=lambda m: entry["decodes"][m]["valid_ndcg@10_mean"])
            entry["best_decode_on_valid"] = best
            if best != seed_configs[0].model.decode.mode:  # the model as chosen on validation: its own row
                test = {k: v for k, v in entry["decodes"][best].items() if not k.startswith("valid")}
                entry["chosen"] = {"decode": best, **test}
                values = per_user[chosen_key(name, entry)] = by_mode[best]
                entry["chosen"]["per_user_ndcg@10"] = [round(float(v), 6) for v in values]
        results[name] = entry
    if reference is None:
        reference = "cobra-cpu" if "cobra-cpu" in results else list(results)[-1]
    if reference not in results:
        raise ConfigError(f"--reference {reference!r} is not one of the compared presets {list(results)}")
    if "chosen" in results[reference]:  # compare the reference as chosen on validation
        reference = chosen_key(reference, results[reference])
    dataset = datasets.pop() if datasets else "ml-100k"
    popular = evaluate_baseline("popular", dataset)
    return {"dataset": dataset, "seeds": seeds, "overrides": dict(overrides or {}), "models": results,
            "popular": {"hr@10": popular["hr@10"], "ndcg@10": popular["ndcg@10"]},
            "significance": significance(per_user, reference) if len(per_user) > 1 else None}


# Overrides that say where a benchmark ran, not what it trained (rows of different machines share a key).
MACHINE_KEYS = ("train.device", "train.deterministic", "train.amp", "train.num_threads")


def result_rows(*results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every test row of ``bench quality`` results, keyed so that the same row on another machine has the key.

    A preset is ``name``; a model as chosen on validation, ``name:mode`` (:func:`chosen_key`); a preset
    run with overrides, ``name --set key=value ...`` with the :data:`MACHINE_KEYS` left out (so
    ``--set train.device=cuda`` keeps the CPU run's key). Each value holds ``hr@10_mean``/``_std``,
    ``ndcg@10_mean``/``_std`` and ``per_user_ndcg@10`` (test, mean over seeds, one per user).
    """
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        sets = "".join(f" --set {k}={v}" for k, v in result.get("overrides", {}).items() if k not in MACHINE_KEYS)
        for name, entry in result["models"].items():
            rows[name + sets] = entry
            if "chosen" in entry and not sets:
                rows[chosen_key(name, entry)] = entry["chosen"]
    return rows


def machine_title(result: dict[str, Any]) -> str:
    """A short name for where a benchmark ran: its GPU's name, else its CPU cores (from ``machine``)."""
    parts = result["machine"].split(", ")
    return parts[0] if parts[-1] == "no GPU" else parts[-1]


# The committed results (book/results/) that chapter 11, its exercise 11.5 and the README compare across
# machines: per machine, the five presets and COBRA stopped on its sparse ranking.
MACHINE_RESULTS = {"bench_quality": "bench_quality_cobra_sparse",
                   "bench_quality_h200": "bench_quality_cobra_sparse_h200"}
STOPPED_SPARSE = "cobra-cpu --set model.decode.mode=sparse"  # the result_rows key of COBRA stopped on sparse
TOP_ROWS = ("hstu-cpu", "sasrec-cpu", "hstu-sid-cpu", STOPPED_SPARSE)  # the rows within a seed's spread


def committed_machine_rows() -> dict[str, dict[str, dict[str, Any]]]:
    """``{machine title: result_rows}`` of the committed :data:`MACHINE_RESULTS`, one entry per machine."""
    from cobra.book import load_result

    machines = {}
    for main, stopped in MACHINE_RESULTS.items():
        result = load_result(main)
        machines[machine_title(result)] = result_rows(result, load_result(stopped))
    return machines


def machine_rows(machines: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """A markdown table of test NDCG@10 (mean ± std over seeds) per row of :func:`result_rows` and machine.

    ``machines`` maps a column title (the machine) to its :func:`result_rows`; rows are those every machine
    has, in the first machine's order.
    """
    columns = list(machines.values())
    keys = [key for key in columns[0] if all(key in c for c in columns)]
    lines = ["| model | " + " | ".join(f"NDCG@10, {title}" for title in machines) + " |",
             "|---" * (len(machines) + 1) + "|"]
    for key in keys:
        name, _, mode = key.partition(":")
        label = f"`{name}`, the same runs decoded by `{mode}`" if mode else f"`{key}`"
        lines.append(f"| {label} | " + " | ".join(f"{c[key]['ndcg@10_mean']:.4f} ± {c[key]['ndcg@10_std']:.4f}"
                                               for c in columns) + " |")
    return lines


def readme_rows(quality: dict[str, Any]) -> list[str]:
    """The README's results table (markdown lines) from a ``bench quality`` result.

    One row per model, ``mean ± std`` over seeds, and the paired test against the reference model: the
    difference of test NDCG@10 (reference minus model) and the Holm-adjusted Wilcoxon p-value, with ``*``
    where it is below 0.05. The ``popular`` baseline comes first.
    """
    sig = quality.get("significance") or {"reference": None, "against": {}}
    ref = sig["reference"]
    lines = ["| model | HR@10 | NDCG@10 | reference − model, NDCG@10 (Holm p) |", "|---|---|---|---|",
             f"| popular (`python -m cobra eval --baseline popular --json`) | {quality['popular']['hr@10']:.4f} | "
             f"{quality['popular']['ndcg@10']:.4f} | |"]
    def row(key: str, label: str, m: dict[str, Any]) -> str:
        test = sig["against"].get(key)
        versus = ("reference" if key == ref else "" if test is None else
                  f"{test['diff']:+.4f} (p = {test['p_holm']:.2g}){' *' if test['significant'] else ''}")
        return (f"| {label} | {m['hr@10_mean']:.4f} ± {m['hr@10_std']:.4f} | "
                f"{m['ndcg@10_mean']:.4f} ± {m['ndcg@10_std']:.4f} | {versus} |")

    for name, m in quality["models"].items():
        lines.append(row(name, f"`{name}` ({LABELS.get(name, m['model'])})", m))
        if "chosen" in m:
            mode = m["chosen"]["decode"]
            lines.append(row(chosen_key(name, m), f"`{name} --set model.decode.mode={mode}` (the same runs, "
                             "decoded by the mode chosen on validation)", m["chosen"]))
    return lines


def run(*, models: str | Sequence[str] | None = None, seeds: int | None = None, sets: Sequence[str] | None = (),
        resume: bool = False, out: str | Path | None = None, profile: str | None = None,
        progress: bool = True, jobs: int | None = None, reference: str | None = None) -> dict[str, Any]:
    """``python -m cobra bench quality [--models a,b,c] [--seeds 5] [--set K=V ...] [--jobs N] [--reference P]
    [--resume] [--out FILE] [--json]``.

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
    seeds = 5 if seeds is None else seeds
    if seeds < 1:
        raise ConfigError(f"--seeds is the number of runs per model and must be >= 1, got {seeds}")
    check_out_file(out)
    overrides = parse_overrides(list(sets or []))
    for name in models:
        get_preset(name, overrides)  # an unknown preset or key fails now, before any training
    try:
        result = bench_quality(models, seeds, resume=resume, progress=progress, overrides=overrides,
                               jobs=1 if jobs is None else jobs, reference=reference)
    except KeyboardInterrupt:
        how = "the same command to resume" if resume else "the same command with --resume to reuse the finished runs"
        raise Interrupted(f"interrupted; run {how}") from None
    return write_result(result, out)
