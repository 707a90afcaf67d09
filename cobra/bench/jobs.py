"""Side by side or one after the other: ``python -m cobra bench jobs [--models a,b] [--epochs N] [--out FILE]``.

The long benchmarks (``bench tune``, ``quality``, ``ablate``) train many independent runs. On a small CPU there
are two ways to spend its cores: one run at a time with every thread, or ``--jobs 2`` runs side by side with
half the threads each (:func:`cobra.bench.common.fit_runs`). Small models scale poorly with threads, so the
second is usually faster; this benchmark measures it. For each preset it trains the same two seeds both ways
for a few epochs (no early stopping) and reports the wall seconds, the ratio, and the seconds per epoch of one
run with all the threads, from which a full run's time follows (epochs x seconds per epoch).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cobra.bench.common import check_out_file, fit_runs, write_result
from cobra.config import ConfigError
from cobra.presets import get_preset

MODELS = ("hstu-cpu", "tiger-cpu", "cobra-cpu")


def bench_jobs(models: Sequence[str] = MODELS, epochs: int = 2, progress: bool = False) -> dict[str, Any]:
    """Wall seconds of two runs of each preset one after the other (all threads) and side by side (half each).

    Returns:
        dict with threads (the CPU count), epochs and presets ({name: {sequential_s, side_by_side_s, speedup
        (sequential / side by side), epoch_s_all_threads}}).
    """
    if epochs < 1:
        raise ConfigError(f"bench jobs needs epochs >= 1, got {epochs}")
    threads = os.cpu_count() or 1
    if threads < 2:
        raise ConfigError("bench jobs compares one and two runs at once; this machine has a single CPU thread")
    out: dict[str, Any] = {}
    for name in models:
        configs = {(seed, n): get_preset(name, {"seed": seed, "train.epochs": epochs, "train.patience": 0,
                                               "train.num_threads": n})
                   for seed in (0, 1) for n in (threads, threads // 2)}
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            sequential = fit_runs({seed: (configs[seed, threads], Path(tmp) / f"all-{seed}") for seed in (0, 1)})
            sequential_s = time.perf_counter() - start
            start = time.perf_counter()
            fit_runs({seed: (configs[seed, threads // 2], Path(tmp) / f"half-{seed}") for seed in (0, 1)}, jobs=2)
            side_by_side_s = time.perf_counter() - start
        out[name] = {"sequential_s": round(sequential_s, 1), "side_by_side_s": round(side_by_side_s, 1),
                     "speedup": round(sequential_s / side_by_side_s, 2),
                     "epoch_s_all_threads": round(sum(r["seconds"] for r in sequential.values()) / (2 * epochs), 2)}
        if progress:
            print(f"{name}: two runs one after the other {sequential_s:.0f} s, side by side {side_by_side_s:.0f} s "
                  f"({out[name]['speedup']:.2f}x); one run with {threads} threads: "
                  f"{out[name]['epoch_s_all_threads']:.1f} s per epoch", flush=True)
    return {"threads": threads, "epochs": epochs, "presets": out}


def run(*, models: str | None = None, epochs: int | None = None, out: str | None = None,
        profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench jobs [--models a,b] [--epochs N] [--out FILE] [--json]``."""
    names = list(MODELS) if models is None else [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise ConfigError("--models names no preset; pass comma-separated presets or leave it out")
    for name in names:
        get_preset(name)  # an unknown preset fails before any training
    check_out_file(out)
    return write_result(bench_jobs(names, epochs=2 if epochs is None else epochs, progress=progress), out)
