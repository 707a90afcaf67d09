"""Benchmark of the semantic-ID methods: ``python -m cobra bench sid [--json]``.

Explained in chapter 04 (diagnostics).

:func:`bench_sid` runs ``kmeans``, ``balanced``, ``seed-heuristic`` and scikit-learn's KMeans with the
same levels x codes on the ML-100K item vectors (when given) and on a synthetic MovieLens-20M-sized
catalogue (27,000 x 1,024) shaped like real text embeddings (:func:`synthetic_embeddings`, calibrated
with :func:`embedding_stats`), and reports fit seconds and the diagnostics of :mod:`cobra.sid_metrics`
side by side, plus whether the ``balanced`` targets of issue 3 hold (:func:`format_sid_bench` prints
them as a table). :func:`run` is the command, on the profile's item vectors.

"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from cobra.config import get_profile
from cobra.sid import (
    ResidualQuantizer,
    SemanticIDs,
    SIDConfig,
    add_uniqueness,
    fit_semantic_ids,
    size_bounds,
)
from cobra.sid_metrics import sid_report

BENCH_METHODS = ("kmeans", "balanced", "seed-heuristic", "sklearn-kmeans")


# Calibration of :func:`synthetic_embeddings`: statistics of the real ML-100K MiniLM item vectors
# (1,682 x 384, rows L2-normalised), measured once with :func:`embedding_stats`. The spectrum is fitted as
# lambda_i ~ (i/D)^-alpha * exp(-((i/D)/tau)^p) over i <= 0.95 D (rms log error 0.04).
REAL_MINILM_STATS = {
    "mean_sq_norm": 0.446,  # |mean row|^2 = mean pairwise cosine
    "pr_rank_frac": 0.220,  # participation-ratio rank (sum l)^2 / sum l^2 of the centred covariance, / D
    "top10pct_var": 0.509,  # share of variance in the top 10% of principal directions
    "cos_mean": 0.446,  # pairwise cosine between distinct items: mean, standard deviation
    "cos_std": 0.088,
    "nn_q10": 0.633,  # cosine to the nearest other item: 10%, 50%, 90% quantiles
    "nn_q50": 0.726,
    "nn_q90": 0.835,
    "nn_gt_0.95": 0.021,  # share of items with a near-copy (nearest cosine > 0.95)
}
SPECTRUM = (0.574, 0.487, 2.06)  # (alpha, tau, p) of the fitted eigen-spectrum shape


def embedding_stats(vectors: np.ndarray, *, sample: int = 4000, seed: int = 0) -> dict[str, float]:
    """The statistics of :data:`REAL_MINILM_STATS` for any (N, D) matrix (rows are L2-normalised first).

    Pairwise and nearest-neighbour cosines use a random subsample of ``sample`` rows (all rows when N is
    smaller), so the nearest-neighbour quantiles depend on the sample size: compare sets of equal size.

    Returns:
        dict with the keys of :data:`REAL_MINILM_STATS`, floats.
    """
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)  # (N, D)
    n, d = v.shape
    mean = v.mean(0)  # (D,)
    xc = v - mean
    with threadpool_limits(1):  # see synthetic_embeddings
        lam = np.clip(np.linalg.eigvalsh(xc.T @ xc / n)[::-1], 0.0, None)  # (D,) descending
    rows = np.random.default_rng(seed).permutation(n)[: min(n, sample)]
    sim = v[rows] @ v[rows].T  # (S, S)
    pairs = sim[np.triu_indices(len(rows), 1)]
    np.fill_diagonal(sim, -2.0)
    nn = sim.max(1)  # (S,)
    return {
        "mean_sq_norm": float(mean @ mean),
        "pr_rank_frac": float(lam.sum() ** 2 / (lam**2).sum() / d),
        "top10pct_var": float(lam[: max(1, d // 10)].sum() / lam.sum()),
        "cos_mean": float(pairs.mean()),
        "cos_std": float(pairs.std()),
        "nn_q10": float(np.quantile(nn, 0.1)),
        "nn_q50": float(np.quantile(nn, 0.5)),
        "nn_q90": float(np.quantile(nn, 0.9)),
        "nn_gt_0.95": float((nn > 0.95).mean()),
    }


def synthetic_embeddings(
    n: int = 27_000,
    dim: int = 1024,
    *,
    topics: int = 50,
    cluster_size: float = 16.0,
    seed: int = 0,
) -> np.ndarray:
    """Vectors shaped like real text embeddings of a film catalogue, on the unit sphere.

    Calibrated to the real ML-100K MiniLM vectors (:data:`REAL_MINILM_STATS`, measured with
    :func:`embedding_stats`) and scaled to ``dim`` by keeping the spectrum's shape in the *relative*
    index i/D (so the effective rank is the same fraction of D):

    1. a hierarchy in whitened coordinates: ``z = 0.5 topic + w_c cluster + w_i item`` with ``topics``
       topics, ``n / cluster_size`` clusters (Zipf-like sizes at both levels), a per-cluster tightness
       ``w_c ~ U(0.7, 0.85)`` and ``w_i = sqrt(1 - 0.25 - w_c^2)``; the sample is then whitened so that
       finite group counts do not distort the spectrum (symmetric whitening);
    2. near-copies (sequels, remakes) for 1.1% of the items (``z`` of another item + 0.15 noise);
    3. ``x = mean + z Sigma^1/2`` with ``|mean|^2 = 0.446`` and ``Sigma`` diagonal with eigenvalues
       following :data:`SPECTRUM` (trace 1 - 0.446); rows L2-normalised. No random rotation: every
       method compared is rotation-invariant, so one would only cost seconds.

    The hierarchy weights were chosen by a small grid search against the nearest-neighbour quantiles and
    cosine spread at the real set's size (1,682 x 384); nothing was tuned on any SID method's score. At
    that size it reproduces the mean, spectrum and pairwise-cosine statistics within a few percent and
    the nearest-neighbour quantiles within 0.06 (synthetic items are a little *less* locally clustered
    than real ones: NN median 0.68 vs 0.73). ``tests/test_sid_metrics.py`` checks these tolerances.

    Returns:
        (n, dim) float32, rows L2-normalised; deterministic in ``seed`` (a few seconds for 27,000 x 1,024).
    """
    rng = np.random.default_rng(seed)
    alpha, tau, power = SPECTRUM
    mean_sq = REAL_MINILM_STATS["mean_sq_norm"]
    t = np.arange(1, dim + 1) / dim  # (D,) relative index
    lam = t**-alpha * np.exp(-((t / tau) ** power))
    lam *= (1.0 - mean_sq) / lam.sum()  # (D,) eigenvalues, trace 1 - |mean|^2
    mean = rng.standard_normal(dim)
    mean *= math.sqrt(mean_sq) / np.linalg.norm(mean)  # (D,)

    def zipf_choice(groups: int, size: int) -> np.ndarray:
        w = 1.0 / np.arange(1, groups + 1)
        return rng.choice(groups, size=size, p=rng.permutation(w / w.sum()))

    n_dup = int(round(n * 0.011))
    base = n - n_dup
    clusters = max(1, int(round(base / cluster_size)))
    cluster_topic = zipf_choice(topics, clusters)  # (C,)
    tightness = rng.uniform(0.7, 0.85, clusters).astype(np.float32)  # (C,)
    item_cluster = zipf_choice(clusters, base)  # (base,)
    w_c = tightness[item_cluster][:, None]  # (base, 1)
    z = rng.standard_normal((base, dim), dtype=np.float32) * np.sqrt(np.maximum(0.0, 0.75 - w_c**2))
    z += 0.5 * rng.standard_normal((topics, dim), dtype=np.float32)[cluster_topic[item_cluster]]
    z += w_c * rng.standard_normal((clusters, dim), dtype=np.float32)[item_cluster]  # (base, D)
    z -= z.mean(0)
    cov = (z.T @ z).astype(np.float64) / base  # (D, D)
    with threadpool_limits(1):  # a threaded eigh is ~50x slower on a busy 2-core machine
        evals, evecs = np.linalg.eigh(cov)
    whiten = (evecs / np.sqrt(np.maximum(evals, 1e-3 * evals.mean()))) @ evecs.T  # (D, D) symmetric (ZCA) whitening
    to_x = (whiten * np.sqrt(lam)[None, :]).astype(np.float32)  # (D, D) whiten, then Sigma^1/2
    src = rng.integers(base, size=n_dup)
    dup = (z[src] + 0.15 * rng.standard_normal((n_dup, dim), dtype=np.float32)) / math.sqrt(1 + 0.15**2)
    x = np.concatenate([z, dup]) @ to_x + mean.astype(np.float32)  # (n, D)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[rng.permutation(n)].astype(np.float32)


def _sklearn_ids(vectors: np.ndarray, config: SIDConfig) -> tuple[SemanticIDs, float]:
    """Residual k-means with scikit-learn's KMeans (n_init=1, its default max_iter=300) as a reference.

    ``seed-heuristic`` starts every level with this same call, so its time minus this row's is the
    cost of the heuristic's balancing loop.

    Returns:
        the semantic IDs (``seconds`` = wall-clock fit time) and the process CPU seconds of the fit.
    """
    from sklearn.cluster import KMeans

    q = ResidualQuantizer(replace(config, method="kmeans"))
    x = q.prepare(vectors).numpy().astype(np.float32)
    t0, cpu = time.perf_counter(), time.process_time()
    residual = x.copy()
    books, codes = [], []
    for _ in range(config.levels):
        km = KMeans(n_clusters=config.codes, n_init=1, random_state=config.seed)  # defaults: max_iter=300
        labels = km.fit_predict(residual)
        centers = km.cluster_centers_.astype(np.float32)
        books.append(centers)
        codes.append(labels)
        residual = residual - centers[labels]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu
    q.codebooks = torch.from_numpy(np.stack(books))
    return SemanticIDs(add_uniqueness(np.stack(codes, 1).astype(np.int64)), q, q.config, seconds), cpu


def _run(vectors: np.ndarray, method: str, config: SIDConfig) -> dict:
    """One fit and its :func:`sid_report`.

    ``seconds`` is the wall-clock time of the fit alone; ``cpu_seconds`` the process CPU time of the same
    span (all threads). On an idle machine ``cpu_seconds / seconds`` is about the number of busy cores; a
    much lower ratio means other processes took the cores, and the wall-clock time overstates the cost.
    """
    if method == "sklearn-kmeans":
        sids, cpu = _sklearn_ids(vectors, config)
        report = sid_report(vectors, sids)
        report["method"] = method
    else:
        cpu = time.process_time()
        sids = fit_semantic_ids(vectors, replace(config, method=method))
        cpu = time.process_time() - cpu
        report = sid_report(vectors, sids)
    report["cpu_seconds"] = cpu
    return report


def _targets(rows: dict[str, dict], n: int, config: SIDConfig) -> dict:
    """Issue-3 targets for ``balanced`` against the other rows of the same dataset."""
    b = rows.get("balanced")
    if b is None:
        return {}
    lo, hi = size_bounds(n, config.codes, config.tolerance)
    out = {
        "entropy_ge_0.99": all(lv["entropy"] >= 0.99 for lv in b["per_level"]),
        "sizes_within_tolerance": all(lo <= lv["min_size"] and lv["max_size"] <= hi for lv in b["per_level"]),
        "size_bounds": [lo, hi],
    }
    if "kmeans" in rows:
        ratio = b["per_level"][-1]["mse"] / rows["kmeans"]["per_level"][-1]["mse"]
        out["mse_ratio_vs_kmeans"] = ratio
        out["mse_within_10pct"] = ratio <= 1.10
    if "seed-heuristic" in rows:
        s = rows["seed-heuristic"]
        out["collisions_le_seed_heuristic"] = b["collision_rate"][-1] <= s["collision_rate"][-1]
        out["speedup_vs_seed_heuristic"] = s["seconds"] / max(b["seconds"], 1e-9)
        out["cpu_speedup_vs_seed_heuristic"] = s["cpu_seconds"] / max(b["cpu_seconds"], 1e-9)
        out["speedup_ge_10x"] = out["speedup_vs_seed_heuristic"] >= 10.0
    out["balanced_under_30s"] = b["seconds"] < 30.0
    return out


def bench_sid(
    vectors_100k: np.ndarray | None = None,
    *,
    synthetic: tuple[int, int] | None = (27_000, 1024),
    levels: int = 3,
    codes: int = 128,
    methods: tuple[str, ...] = BENCH_METHODS,
    iters: int = 50,
    tolerance: float = 0.1,
    seed: int = 0,
    verbose: bool = False,
) -> dict:
    """Fit every method on each dataset and collect seconds and diagnostics.

    Args:
        vectors_100k: (N, D) float32 ML-100K item vectors, or None to skip that dataset.
        synthetic: (items, dims) of the synthetic catalogue, or None to skip it.
        levels, codes, iters, tolerance, seed: the shared :class:`SIDConfig` fields.
        methods: subset of :data:`BENCH_METHODS`.
        verbose: print one line per finished run and the table at the end.

    Returns:
        JSON-able dict: ``config``, ``threads`` and ``datasets`` (a list of ``{name, items, dim, runs:
        {method: sid_report dict + cpu_seconds}, targets}``). ``seconds`` is wall-clock fit time;
        ``cpu_seconds`` (process CPU time) helps to read timings taken on a busy machine.
    """
    config = SIDConfig(levels=levels, codes=codes, iters=iters, tolerance=tolerance, seed=seed)
    data: list[tuple[str, np.ndarray]] = []
    if vectors_100k is not None:
        data.append(("ml-100k", np.asarray(vectors_100k, dtype=np.float32)))
    if synthetic is not None:
        data.append((f"synthetic-{synthetic[0]}x{synthetic[1]}", synthetic_embeddings(*synthetic, seed=seed)))
    out = {
        "config": {"levels": levels, "codes": codes, "iters": iters, "tolerance": tolerance, "seed": seed},
        "threads": torch.get_num_threads(),
        "datasets": [],
    }
    for name, vectors in data:
        rows = {}
        for method in methods:
            rows[method] = _run(vectors, method, config)
            if verbose:
                print(f"{name:>24} {method:>15} {rows[method]['seconds']:8.2f} s", flush=True)
        out["datasets"].append(
            {
                "name": name,
                "items": int(vectors.shape[0]),
                "dim": int(vectors.shape[1]),
                "runs": rows,
                "targets": _targets(rows, vectors.shape[0], config),
            }
        )
    if verbose:
        print(format_sid_bench(out), flush=True)
    return out


def format_sid_bench(result: dict) -> str:
    """A readable table of :func:`bench_sid`'s result (one block per dataset)."""
    lines = []
    for ds in result["datasets"]:
        lines.append(f"{ds['name']}  ({ds['items']} items x {ds['dim']} dims)")
        head = f"{'method':<15}{'seconds':>9}{'cpu s':>8}  {'mse L1/L2/L3':<28}{'entropy per level':<24}"
        head += f"{'util':<16}{'sizes min-max':<24}{'collisions':<22}{'uniq':>5}"
        lines.append(head)
        for method, r in ds["runs"].items():
            lv = r["per_level"]
            cells = [
                _join(lv, "mse", "{:.2e}", "/"),
                _join(lv, "entropy", "{:.3f}", "/"),
                _join(lv, "utilization", "{:.2f}", "/"),
                " ".join(f"{v['min_size']}-{v['max_size']}" for v in lv),
                "/".join(f"{c:.3f}" for c in r["collision_rate"]),
            ]
            lines.append(
                f"{method:<15}{r['seconds']:>9.2f}{r['cpu_seconds']:>8.1f}  {cells[0]:<28}{cells[1]:<24}{cells[2]:<16}"
                f"{cells[3]:<24}{cells[4]:<22}{r['uniq_max']:>5}"
            )
        if ds["targets"]:
            checks = ", ".join(f"{k}={_fmt(v)}" for k, v in ds["targets"].items())
            lines.append(f"targets (balanced): {checks}")
        lines.append("")
    return "\n".join(lines)


def _join(levels: list[dict], key: str, fmt: str, sep: str) -> str:
    return sep.join(fmt.format(v[key]) for v in levels)


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def run(*, profile: str | None = None, progress: bool = True) -> dict:
    """``python -m cobra bench sid [--profile P] [--json]``: every method on the profile's item vectors and the
    synthetic 27k x 1024 set."""
    from cobra.text import embed_items

    prof = get_profile(profile)
    vectors = embed_items(prof.dataset, prof.encoder, progress=progress).vectors
    return bench_sid(vectors, verbose=progress)
