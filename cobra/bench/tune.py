"""Equal tuning on validation: ``python -m cobra bench tune [--models a,b] [--set K=V ...] [--jobs N] [--out FILE]``.

Explained in chapter 11 (book/11_experiments.py). Every compared model gets the same search: the grid
:data:`cobra.presets.TUNE_GRID` (learning rate x dropout, four configurations), one run each under the
shared ``cpu`` recipe (:data:`cobra.presets.CPU_RECIPE`) with the presets' own seed (42, which the
``bench quality`` seeds 0..4 do not reuse), chosen on **validation** NDCG@10 only. The test split is never
read for a choice: the result file holds validation numbers alone. The presets' :data:`cobra.presets.TUNED`
values are the choices of the committed result (``book/results/tune_cpu.json``), which the tests check.
``--set`` changes every run of the grid: ``--models cobra-cpu --set model.decode.mode=sparse`` searches
COBRA's grid stopped on the decoder its ablation chose (``book/results/tune_cobra_sparse.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cobra.bench.common import check_out_file, fit_runs, settings_tag, write_result
from cobra.bench.quality import QUALITY_MODELS
from cobra.config import ConfigError, Interrupted, data_home, parse_overrides
from cobra.presets import TUNE_GRID, get_preset
from cobra.runs import validation_curve


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``grid`` (``{key: values}``) as ``--set`` overrides, in a fixed order."""
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def bench_tune(models: Sequence[str] = QUALITY_MODELS, grid: Mapping[str, Sequence[Any]] = TUNE_GRID,
               out_dir: str | Path | None = None, jobs: int = 1, progress: bool = False,
               overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validation NDCG@10 of every preset at every grid point, and each preset's best point.

    Args:
        models: presets, all on one dataset.
        grid: ``{override key: values}``; every model gets every combination.
        out_dir: where the runs go (default ``data_home()/runs/bench-tune``), ``<preset>-<hash of point>``
            (the hash also covers ``overrides``); finished runs are reused, unfinished ones resume.
        jobs: runs trained at once (:func:`cobra.bench.common.fit_runs`).
        progress: tqdm bars (``jobs == 1`` only).
        overrides: extra ``--set`` values for every run, e.g. ``{"model.decode.mode": "sparse"}`` to tune
            COBRA under the decoding mode its ablation chose (tests use a tiny model); a key of ``grid``
            among them raises :class:`ConfigError`.

    Returns:
        dict with dataset, grid, overrides, models ({preset: {points: [{overrides, valid_ndcg@10, best_epoch,
        epochs, seconds, curve}], best: overrides of the highest validation NDCG@10 (the first on a tie)}}).
    """
    points = grid_points(grid)
    if not points or not models:
        raise ConfigError("bench tune needs at least one preset and one grid point")
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-tune"
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & set(grid))
    if clash:  # the grid would silently overwrite it
        raise ConfigError(f"--set {clash[0]} is a key of the tuning grid ({', '.join(sorted(grid))}); "
                          "the grid sets it")
    settings = {(name, i): {**overrides, **point} for name in models for i, point in enumerate(points)}
    tasks = {key: (get_preset(key[0], sets), root / f"{key[0]}-{settings_tag(sets)}") for key, sets in settings.items()}
    datasets = {config.dataset for config, _ in tasks.values()}
    if len(datasets) > 1:
        raise ConfigError(f"bench tune compares presets on one dataset; got {sorted(datasets)}")
    results = fit_runs(tasks, jobs, progress)
    out: dict[str, Any] = {}
    for name in models:
        rows = []
        for i, point in enumerate(points):
            r = results[name, i]
            rows.append({"overrides": point, "valid_ndcg@10": r["valid_ndcg@10"], "best_epoch": r["best_epoch"],
                         "epochs": r["epochs"], "seconds": r["seconds"],
                         "curve": validation_curve(tasks[name, i][1])})
        best = max(rows, key=lambda row: row["valid_ndcg@10"])  # max keeps the first of equal values
        out[name] = {"points": rows, "best": best["overrides"]}
    return {"dataset": datasets.pop(), "grid": {k: list(v) for k, v in grid.items()}, "overrides": overrides,
            "models": out}


def run(*, models: str | None = None, sets: Sequence[str] | None = (), jobs: int | None = None,
        out: str | None = None, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench tune [--models a,b] [--set K=V ...] [--jobs N] [--out FILE] [--json]``.

    ``sets`` are ``--set`` strings applied to every run (a grid key among them is refused, before any
    training: the grid sets it). ``profile`` is not used: each preset names its dataset. Interrupted, the
    same command resumes.
    """
    names = list(QUALITY_MODELS) if models is None else [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("--models names no preset; pass comma-separated presets or leave it out for "
                          + ",".join(QUALITY_MODELS))
    check_out_file(out)
    overrides = parse_overrides(list(sets or []))
    for name in names:
        get_preset(name, overrides)  # an unknown preset or key fails now (a grid key: in bench_tune)
    try:
        result = bench_tune(names, jobs=1 if jobs is None else jobs, progress=progress, overrides=overrides)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command to resume") from None
    return write_result(result, out)
