"""Benchmarks: ``python -m cobra bench NAME [--json]``.

Speed and quality targets live here, not in timed unit tests: each benchmark
runs its contenders side by side in one process and reports what it measured
(and the ratios between them), so a noisy shared machine hurts every
contender alike. Registered in :data:`BENCHMARKS`, with the options each one
takes in :data:`BENCH_OPTIONS` (the CLI refuses the others).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cobra.config import ConfigError, get_profile

Bench = Callable[..., dict[str, Any]]  # run(*, profile, progress, **options) -> result


def mean_std(key: str, values: Sequence[float]) -> dict[str, float]:
    """``{key_mean, key_std}`` of ``values``; the sample standard deviation (``ddof = 1``), 0 for one value."""
    return {f"{key}_mean": float(statistics.fmean(values)),
            f"{key}_std": float(statistics.stdev(values)) if len(values) > 1 else 0.0}


def machine() -> str:
    """One line on where a benchmark ran: CPU cores, torch version, GPU if any."""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {gpu}"


def write_result(result: dict[str, Any], out: str | None) -> dict[str, Any]:
    """``--out FILE``: also write ``result`` there as indented JSON (parents created).

    The file also records ``command`` (this process's ``python -m cobra ...`` line) and ``machine``,
    so a number quoted from it says how to remake it. Returns ``result`` plus those keys and ``out``.
    """
    if not out:
        return result
    check_out_file(out)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python -m cobra " + " ".join(sys.argv[1:]), "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "out": str(path)}


def check_out_file(out: str | Path | None) -> None:
    """Refuse an ``--out`` that names a directory (checked before a benchmark runs, not after)."""
    if out and Path(out).is_dir():
        raise ConfigError(f"--out {out} is a directory; a benchmark's --out takes a file to write its JSON result "
                          f"to, e.g. --out {Path(out) / 'bench.json'}")


def _bench_data(*, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Sequences and the leave-one-out split from 20M synthetic ML-20M-shaped interactions."""
    from cobra.data import bench_data

    return bench_data()


def _bench_sid(*, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """The three SID methods and scikit-learn's KMeans on ML-100K vectors and a 27k x 1024 set."""
    from cobra.sid_bench import bench_sid
    from cobra.text import embed_items

    prof = get_profile(profile)
    vectors = embed_items(prof.dataset, prof.encoder, progress=progress).vectors
    return bench_sid(vectors, verbose=progress)


def _bench_speed(*, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Training throughput and peak memory of HSTU and SASRec at T = 50..400."""
    from cobra.train_bench import cli_bench_speed

    return cli_bench_speed(progress=progress)


def _bench_quality(*, profile: str | None = None, progress: bool = True, **options: Any) -> dict[str, Any]:
    """Mean and std of HR@10 / NDCG@10 over seeds for a list of presets, with the popular baseline."""
    from cobra.train_bench import cli_bench_quality

    return cli_bench_quality(progress=progress, **options)


def _bench_batch(*, profile: str | None = None, progress: bool = True, **options: Any) -> dict[str, Any]:
    """COBRA's test NDCG@10 per (VID negatives, batch size), trained to convergence on one step clock."""
    from cobra.batch_bench import cli_bench_batch

    return cli_bench_batch(progress=progress, **options)


BENCHMARKS: dict[str, Bench] = {
    "data": _bench_data,
    "sid": _bench_sid,
    "speed": _bench_speed,
    "quality": _bench_quality,
    "batch": _bench_batch,
}
# The keyword options (CLI flags) each benchmark takes besides --profile and --json; any other is refused.
BENCH_OPTIONS: dict[str, tuple[str, ...]] = {
    "data": (),
    "sid": (),
    "speed": (),
    "quality": ("models", "seeds", "sets", "resume", "out"),
    "batch": ("batch_sizes", "negatives", "seeds", "device", "jobs", "out"),
}
