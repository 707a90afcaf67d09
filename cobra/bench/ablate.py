"""COBRA's ablations: ``python -m cobra bench ablate [--variants a,b] [--set K=V ...] [--seeds N] [--test] [--out F]``.

Explained in chapter 11 (book/11_experiments.py). Each variant is ``cobra-cpu`` with a few settings changed
(:data:`VARIANTS`); the main row, ``sources``, is the preset itself: the VID is a learned projection of the
frozen text vector and every film has its own semantic ID (3 levels of 32 codes plus the uniqueness code).
The protocol is validation first: every variant is trained and compared on validation NDCG@10; only the
variants chosen there are then run with ``--test`` (and usually more seeds), which adds their test numbers.
Every variant's best checkpoints are also scored on validation with each decoding mode, so the best
configuration is chosen over variants and modes together (``best_on_valid_any_decode``); ``bench quality``
does the same for the main runs, on test too (``decodes``). ``--set`` moves the base every variant changes:
``--set model.decode.mode=sparse --set train.lr=0.001`` ablates around the configuration tuned under
``sparse`` (``book/results/ablate_cobra_sparse_valid.json``); a variant's own settings win over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cobra.bench.common import check_out_file, fit_runs, mean_std, settings_tag, write_result
from cobra.bench.quality import decode_ablation
from cobra.config import ConfigError, Interrupted, data_home, parse_overrides
from cobra.presets import get_preset

PRESET = "cobra-cpu"
VARIANTS: dict[str, dict[str, Any]] = {
    "sources": {},  # the preset: VID = projected text vector, unique 3-level SIDs, catalogue negatives, lambda 1
    "+ ID embedding": {"model.vid_id_embedding": True},
    "SID 3 levels, no uniqueness code": {"model.sid_levels": 3},
    "SID 2 levels": {"sid_levels": 2},
    "SID 2 levels, no uniqueness code": {"sid_levels": 2, "model.sid_levels": 2},
    "SID 1 level": {"sid_levels": 1},
    "SID 1 level, no uniqueness code": {"sid_levels": 1, "model.sid_levels": 1},
    "in-batch negatives": {"model.vid_negatives": "in-batch"},
    "lambda 0.5": {"model.lambda_vid": 0.5},
    "lambda 2": {"model.lambda_vid": 2.0},
}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def bench_ablate(variants: Sequence[str] = tuple(VARIANTS), seeds: int = 1, test: bool = False, jobs: int = 1,
                 out_dir: str | Path | None = None, progress: bool = False,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validation (and with ``test``, test) NDCG@10 of every variant of ``cobra-cpu``, over ``seeds``.

    Args:
        variants: keys of :data:`VARIANTS`.
        seeds: runs per variant: the preset's seed for 1, else ``0 .. seeds - 1``.
        test: also report test HR@10 / NDCG@10 (for the variants chosen on validation).
        jobs: runs trained at once (:func:`cobra.bench.common.fit_runs`).
        out_dir: where the runs go (default ``data_home()/runs/bench-ablate``); finished runs are reused.
        overrides: extra ``--set`` values for every run, under each variant's own (tests use a tiny model);
            with any, the run directories carry their :func:`~cobra.bench.common.settings_tag`.

    Returns:
        dict with preset, overrides, seeds, variants ({name: {overrides, valid_ndcg@10_mean, valid_ndcg@10_std,
        valid_ndcg@10_by_decode ({mode: mean}), runs, and with ``test`` ndcg@10_mean/std, hr@10_mean/std}}),
        best_on_valid (the variant, with the preset's decoding), best_on_valid_any_decode ({variant, decode})
        and valid_ndcg@10_spread.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ConfigError(f"unknown ablation variants {unknown}; choose from {list(VARIANTS)}")
    if seeds < 1:
        raise ConfigError(f"bench ablate needs seeds >= 1, got {seeds}")
    root = Path(out_dir) if out_dir is not None else data_home() / "runs" / "bench-ablate"
    seed_list = [None] if seeds == 1 else list(range(seeds))
    overrides = dict(overrides or {})
    tag = f"-{settings_tag(overrides)}" if overrides else ""
    tasks = {}
    for name in variants:
        for seed in seed_list:
            sets = {**overrides, **VARIANTS[name], **({} if seed is None else {"seed": seed})}
            run_dir = root / f"{_slug(name)}{'' if seed is None else f'-seed{seed}'}{tag}"  # sources-seed3-<tag>
            tasks[name, seed] = (get_preset(PRESET, sets), run_dir)
    fitted = fit_runs(tasks, jobs, progress)
    out: dict[str, Any] = {}
    for name in variants:
        rs = [fitted[name, seed] for seed in seed_list]
        decodes = decode_ablation([tasks[name, seed][1] for seed in seed_list], test=False)
        entry = {"overrides": VARIANTS[name], **mean_std("valid_ndcg@10", [r["valid_ndcg@10"] for r in rs]),
                 "valid_ndcg@10_by_decode": {m: d["valid_ndcg@10_mean"] for m, d in decodes.items()},
                 "runs": [{"seed": tasks[name, seed][0].train.seed, "valid_ndcg@10": r["valid_ndcg@10"],
                           "best_epoch": r["best_epoch"], "epochs": r["epochs"], "seconds": r["seconds"],
                           **({"ndcg@10": r["ndcg@10"], "hr@10": r["hr@10"]} if test else {})}
                          for seed, r in zip(seed_list, rs, strict=True)]}
        if test:
            entry.update(mean_std("ndcg@10", [r["ndcg@10"] for r in rs]))
            entry.update(mean_std("hr@10", [r["hr@10"] for r in rs]))
        out[name] = entry
    best = max(out, key=lambda n: out[n]["valid_ndcg@10_mean"])
    variant, mode = max(((n, m) for n in out for m in out[n]["valid_ndcg@10_by_decode"]),
                        key=lambda nm: out[nm[0]]["valid_ndcg@10_by_decode"][nm[1]])
    return {"preset": PRESET, "overrides": overrides, "seeds": seeds, "test": test, "variants": out,
            "best_on_valid": best,
            "best_on_valid_any_decode": {"variant": variant, "decode": mode},
            "valid_ndcg@10_spread": float(np.ptp([v["valid_ndcg@10_mean"] for v in out.values()]))}


def run(*, variants: str | None = None, sets: Sequence[str] | None = (), seeds: int | None = None,
        test: bool = False, jobs: int | None = None, out: str | None = None, profile: str | None = None,
        progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench ablate [--variants a,b] [--set K=V ...] [--seeds N] [--test] [--jobs N] [--out F]``."""
    names = list(VARIANTS) if variants is None else [v.strip() for v in variants.split(",") if v.strip()]
    check_out_file(out)
    overrides = parse_overrides(list(sets or []))
    get_preset(PRESET, overrides)  # an unknown key fails now, before any training
    try:
        result = bench_ablate(names, seeds=1 if seeds is None else seeds, test=test,
                              jobs=1 if jobs is None else jobs, progress=progress, overrides=overrides)
    except KeyboardInterrupt:
        raise Interrupted("interrupted; run the same command to resume") from None
    return write_result(result, out)
