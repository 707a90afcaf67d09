"""Benchmarks: ``python -m cobra bench NAME [--json]``.

Speed and quality targets live here, not in timed unit tests: each benchmark
runs its contenders side by side in one process and reports what it measured
(and the ratios between them), so a noisy shared machine hurts every
contender alike. Registered in :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cobra.config import get_profile

Bench = Callable[[argparse.Namespace], dict[str, Any]]


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
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": "python -m cobra " + " ".join(sys.argv[1:]), "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "out": str(path)}


def _bench_data(args: argparse.Namespace) -> dict[str, Any]:
    """Sequences and the leave-one-out split from 20M synthetic ML-20M-shaped interactions."""
    from cobra.data import bench_data

    return bench_data()


def _bench_sid(args: argparse.Namespace) -> dict[str, Any]:
    """The three SID methods and scikit-learn's KMeans on ML-100K vectors and a 27k x 1024 set."""
    from cobra.sid_bench import bench_sid
    from cobra.text import embed_items

    prof = get_profile(args.profile)
    vectors = embed_items(prof.dataset, prof.encoder, progress=not args.json).vectors
    return bench_sid(vectors, verbose=not args.json)


def _bench_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Training throughput and peak memory of HSTU and SASRec at T = 50..400."""
    from cobra.train_bench import cli_bench_speed

    return cli_bench_speed(args)


def _bench_quality(args: argparse.Namespace) -> dict[str, Any]:
    """Mean and std of HR@10 / NDCG@10 over seeds for a list of presets, with the popular baseline."""
    from cobra.train_bench import cli_bench_quality

    return cli_bench_quality(args)


def _bench_batch(args: argparse.Namespace) -> dict[str, Any]:
    """COBRA's test NDCG@10 per (VID negatives, batch size), trained to convergence on one step clock."""
    from cobra.batch_bench import cli_bench_batch

    return cli_bench_batch(args)


BENCHMARKS: dict[str, Bench] = {
    "data": _bench_data,
    "sid": _bench_sid,
    "speed": _bench_speed,
    "quality": _bench_quality,
    "batch": _bench_batch,
}
