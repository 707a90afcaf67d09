"""Diagnostics of semantic IDs: reconstruction, codebook use, token entropy, collisions.

Per level ``l`` (using the partial reconstruction ``sum of centroids of levels 1..l``):

* ``mse``: mean over items and dimensions of ``(x - x_hat)^2`` (in the quantiser's normalised space);
* ``cosine``: mean of ``1 - cos(x, x_hat)``;
* ``utilization``: used codes / K;
* ``entropy``: normalised token entropy ``H / log2 K`` with ``H = -sum_k p_k log2 p_k``;
* ``max_size`` / ``min_size``: largest and smallest cluster (an unused code counts as size 0).

Per prefix depth ``d = 1..L``: ``collision_rate`` is the share of items whose prefix ``(c1..cd)`` some
other item also has; ``uniq_max`` is the size of the largest group of items sharing the full tuple
(the number of values the uniqueness code needs).

Explained in chapter 04 (diagnostics).
"""

from __future__ import annotations

import math

import numpy as np

from cobra.sid import SemanticIDs, SIDError


def normalized_entropy(labels: np.ndarray, k: int) -> float:
    """``H / log2 K`` of the code distribution.

    Args:
        labels: (N,) int codes in [0, K).
        k: number of codes K.

    Returns:
        1.0 for a uniform use of all K codes, 0.0 when one code takes every item (or K == 1).
    """
    if k <= 1:
        return 0.0
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    h = float(-(p * np.log2(p)).sum())
    return max(0.0, h / math.log2(k))


def group_sizes(codes: np.ndarray) -> np.ndarray:
    """Size of the group of identical rows each item belongs to.

    Args:
        codes: (N, d) int.

    Returns:
        (N,) int64.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def collision_rates(codes: np.ndarray) -> list[float]:
    """Share of items whose prefix of each depth is shared with another item.

    Args:
        codes: (N, L) int (the tuple without the uniqueness code).

    Returns:
        L floats, one per depth 1..L (non-decreasing depth gives non-increasing rates).
    """
    codes = np.asarray(codes, dtype=np.int64)
    n = codes.shape[0]
    return [float((group_sizes(codes[:, :d]) > 1).sum() / max(n, 1)) for d in range(1, codes.shape[1] + 1)]


def level_stats(x: np.ndarray, recon: np.ndarray, labels: np.ndarray, k: int) -> dict:
    """Metrics of one level.

    Args:
        x: (N, D) float32 targets (normalised space); recon: (N, D) float32 partial reconstruction;
        labels: (N,) int codes of this level; k: codes per level.

    Returns:
        dict with keys mse, cosine, utilization, entropy, max_size, min_size.
    """
    diff = x.astype(np.float64) - recon
    mse = float((diff * diff).mean())
    num = (x * recon).sum(1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(recon, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-12), 0.0)
    sizes = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)
    return {
        "mse": mse,
        "cosine": float((1.0 - cos).mean()),
        "utilization": float((sizes > 0).sum() / k),
        "entropy": normalized_entropy(labels, k),
        "max_size": int(sizes.max()),
        "min_size": int(sizes.min()),
    }


def sid_report(vectors: np.ndarray, sids: SemanticIDs, seconds: float | None = None) -> dict:
    """All diagnostics of fitted semantic IDs, as the JSON of ``python -m cobra sid --json``.

    Args:
        vectors: (N, D) float32 the vectors the IDs were fitted on.
        sids: the fitted :class:`SemanticIDs` (codes (N, L + 1)).
        seconds: fit time to report (default: ``sids.seconds``).

    Returns:
        dict with keys method, levels, codes, items, seconds, per_level (a list of L dicts with mse,
        cosine, utilization, entropy, max_size, min_size), collision_rate (L floats), uniq_max.
    """
    cfg = sids.config
    x = sids.quantizer.prepare(vectors).numpy()  # (N, D)
    if x.shape[0] != sids.codes.shape[0]:
        raise SIDError(
            f"{x.shape[0]} vectors but {sids.codes.shape[0]} semantic IDs; pass the fitted vectors"
        )
    tuples = sids.codes[:, : cfg.levels]  # (N, L)
    books = sids.quantizer.codebooks.numpy()  # (L, K, D)
    recon = np.zeros_like(x, dtype=np.float64)
    per_level = []
    for level in range(cfg.levels):
        recon += books[level][tuples[:, level]]
        per_level.append(level_stats(x, recon, tuples[:, level], cfg.codes))
    sizes = group_sizes(tuples)
    return {
        "method": cfg.method,
        "levels": cfg.levels,
        "codes": cfg.codes,
        "items": int(x.shape[0]),
        "seconds": float(sids.seconds if seconds is None else seconds),
        "per_level": per_level,
        "collision_rate": collision_rates(tuples),
        "uniq_max": int(sizes.max()) if sizes.size else 0,
    }
