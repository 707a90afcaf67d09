"""Benchmarks: ``python -m cobra bench NAME [--json]``.

Speed and quality targets live here, not in timed unit tests: each benchmark
runs its contenders side by side in one process and reports what it measured
(and the ratios between them), so a noisy shared machine hurts every
contender alike. Registered in :data:`BENCHMARKS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cobra.config import get_profile

Bench = Callable[[argparse.Namespace], dict[str, Any]]


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


BENCHMARKS: dict[str, Bench] = {
    "data": _bench_data,
    "sid": _bench_sid,
    "speed": _bench_speed,
    "quality": _bench_quality,
}
