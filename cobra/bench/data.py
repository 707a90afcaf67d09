"""Data pipeline speed: ``python -m cobra bench data [--json]``.

Explained in chapter 01 (book/01_data.py). :func:`bench_data` times :mod:`cobra.data`'s vectorised
pipeline (sequences, leave-one-out split, first batches) on 20M synthetic interactions shaped like
MovieLens-20M; :func:`run` is the command.
"""

from __future__ import annotations

import time
from typing import Any

from cobra.data import build_sequences, eval_batches, leave_one_out, synthetic_movielens, train_loader


def bench_data(num_interactions: int = 20_000_000, seed: int = 0) -> dict[str, float | int]:
    """Time sequences + split on synthetic ML-20M-shaped data (``python -m cobra bench data``).

    Generates :func:`~cobra.data.synthetic_movielens` (not timed; users scale with ``num_interactions``, 138k
    at 20M), then times :func:`~cobra.data.build_sequences` (including the lexsort),
    :func:`~cobra.data.leave_one_out`, the test histories and the first eval and train batches (T = 200).

    Returns:
        dict with keys interactions, seconds, interactions_per_second.
    """
    num_users = max(1, min(138_000, round(138_000 * num_interactions / 20_000_000)))
    num_users = min(num_users, num_interactions // 20) or 1
    df = synthetic_movielens(num_users=num_users, num_interactions=num_interactions, seed=seed,
                             min_seq_len=min(20, num_interactions // num_users))
    t0 = time.perf_counter()
    seq = build_sequences(df, num_users)
    split = leave_one_out(seq, 27_000)
    next(eval_batches(split, "test", 200, 512))
    next(iter(train_loader(split, 200, 128, seed=seed)))
    seconds = time.perf_counter() - t0
    return {
        "interactions": int(num_interactions),
        "seconds": round(seconds, 3),
        "interactions_per_second": round(num_interactions / seconds),
    }


def run(*, profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """``python -m cobra bench data [--json]`` (``profile`` is not used: the data are synthetic, ML-20M-sized)."""
    return bench_data()
