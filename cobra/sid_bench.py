"""Benchmark of the semantic-ID methods: ``kmeans``, ``balanced``, ``seed-heuristic`` and scikit-learn.

Runs every method with the same levels x codes on the ML-100K item vectors (when given) and on a
synthetic MovieLens-20M-sized catalogue (27,000 x 1,024) shaped like real text embeddings, and
reports fit seconds and the diagnostics of :mod:`cobra.sid_metrics` side by side, plus whether the
``balanced`` targets of issue 3 hold.

Explained in chapter 04 (diagnostics).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cobra.sid import (
    ResidualQuantizer,
    SemanticIDs,
    SIDConfig,
    SIDError,
    add_uniqueness,
    fit_semantic_ids,
    size_bounds,
)
from cobra.sid_metrics import sid_report

BENCH_METHODS = ("kmeans", "balanced", "seed-heuristic", "sklearn-kmeans")


def load_vectors(path: str | Path) -> np.ndarray:
    """Read an (N, D) float matrix from ``.npy`` (or ``.npz`` with a ``vectors`` array), without pickle.

    Returns:
        (N, D) float32.
    """
    path = Path(path)
    if not path.is_file():
        raise SIDError(f"no vectors file at {path}; save an (N, D) matrix with numpy.save first")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "vectors" not in z.files:
                    raise SIDError(f"{path} has arrays {z.files} but no 'vectors'; save one under that name")
                arr = z["vectors"]
        else:
            arr = np.load(path, allow_pickle=False)
    except SIDError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the user
        raise SIDError(f"{path} is not a readable .npy/.npz matrix ({exc})") from exc
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise SIDError(f"{path} holds a {arr.dtype} array of shape {arr.shape}; expected (N, D) numbers")
    return np.ascontiguousarray(arr, dtype=np.float32)


def synthetic_embeddings(
    n: int = 27_000,
    dim: int = 1024,
    *,
    topics: int = 24,
    subtopics: int = 300,
    micro: int = 3000,
    duplicates: float = 0.02,
    seed: int = 0,
) -> np.ndarray:
    """Vectors clustered like text embeddings of a film catalogue, on the unit sphere.

    Real sentence embeddings are anisotropic (a shared mean direction, so unrelated items still have
    positive cosine, and a power-law spectrum of variances) and hierarchical (genre > sub-genre >
    franchise/style). The generator draws every direction from one power-law covariance, sums a
    shared mean, a topic, a sub-topic and a micro-cluster direction with decreasing weights plus an
    item-specific part, with heavy-tailed (Zipf-like) group sizes at every level, and makes a share
    ``duplicates`` of near-copies (sequels, remakes) that collide on purpose.

    Returns:
        (n, dim) float32, rows L2-normalised; deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    spectrum = (1.0 + np.arange(dim)) ** -0.6  # (D,) power-law standard deviations
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)  # (D, D)

    def directions(m: int) -> np.ndarray:
        g = (rng.standard_normal((m, dim)) * spectrum).astype(np.float32) @ rotation  # (m, D)
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    def zipf_choice(groups: int, size: int) -> np.ndarray:
        w = 1.0 / np.arange(1, groups + 1) ** 1.05
        w = rng.permutation(w / w.sum())
        return rng.choice(groups, size=size, p=w)

    sub_topic = zipf_choice(topics, subtopics)  # (S,) parent topic
    micro_sub = zipf_choice(subtopics, micro)  # (M,) parent sub-topic
    n_dup = int(round(n * duplicates))
    base = n - n_dup
    item_micro = zipf_choice(micro, base)  # (base,)
    item_sub = micro_sub[item_micro]
    item_topic = sub_topic[item_sub]
    common = directions(1)[0]
    x = (
        0.8 * common
        + 1.0 * directions(topics)[item_topic]
        + 0.8 * directions(subtopics)[item_sub]
        + 0.6 * directions(micro)[item_micro]
        + 0.5 * directions(base)
    )  # (base, D)
    dup = x[rng.integers(base, size=n_dup)] + 0.05 * directions(n_dup)
    out = np.concatenate([x, dup]).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out[rng.permutation(n)]


def _sklearn_ids(vectors: np.ndarray, config: SIDConfig) -> SemanticIDs:
    """Residual k-means with scikit-learn's KMeans (n_init=1, its default max_iter=300) as a reference.

    ``seed-heuristic`` starts every level with this same call, so its time minus this row's is the
    cost of the heuristic's balancing loop.
    """
    from sklearn.cluster import KMeans

    q = ResidualQuantizer(replace(config, method="kmeans"))
    x = q.prepare(vectors).numpy().astype(np.float32)
    t0 = time.perf_counter()
    residual = x.copy()
    books, codes = [], []
    for _ in range(config.levels):
        km = KMeans(n_clusters=config.codes, n_init=1, random_state=config.seed)  # defaults: max_iter=300
        labels = km.fit_predict(residual)
        centers = km.cluster_centers_.astype(np.float32)
        books.append(centers)
        codes.append(labels)
        residual = residual - centers[labels]
    seconds = time.perf_counter() - t0
    q.codebooks = torch.from_numpy(np.stack(books))
    return SemanticIDs(add_uniqueness(np.stack(codes, 1).astype(np.int64)), q, q.config, seconds)


def _run(vectors: np.ndarray, method: str, config: SIDConfig) -> dict:
    """One fit and its :func:`sid_report`, plus ``cpu_seconds`` (process CPU time of the fit)."""
    cpu = time.process_time()
    report = _fit_report(vectors, method, config)
    report["cpu_seconds"] = time.process_time() - cpu  # includes the report, which is cheap
    return report


def _fit_report(vectors: np.ndarray, method: str, config: SIDConfig) -> dict:
    if method == "sklearn-kmeans":
        sids = _sklearn_ids(vectors, config)
        report = sid_report(vectors, sids)
        report["method"] = method
    else:
        sids = fit_semantic_ids(vectors, replace(config, method=method))
        report = sid_report(vectors, sids)
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
        head = f"{'method':<15}{'seconds':>9}  {'mse L1/L2/L3':<26}{'entropy per level':<24}"
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
                f"{method:<15}{r['seconds']:>9.2f}  {cells[0]:<26}{cells[1]:<24}{cells[2]:<16}"
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
