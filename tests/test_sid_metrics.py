"""Tests of cobra.sid_metrics (hand-worked cases) and a tiny run of cobra.bench.sid."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cobra.bench.sid import (
    REAL_MINILM_STATS,
    SPECTRUM,
    bench_sid,
    embedding_stats,
    format_sid_bench,
    synthetic_embeddings,
)
from cobra.sid import SIDConfig, fit_semantic_ids, size_bounds
from cobra.sid_metrics import collision_rates, group_sizes, level_stats, normalized_entropy, sid_report

REPORT_KEYS = {"method", "levels", "codes", "items", "seconds", "per_level", "collision_rate", "uniq_max"}
LEVEL_KEYS = {"mse", "cosine", "utilization", "entropy", "max_size", "min_size"}


def test_entropy_uniform_and_one_hot():
    assert normalized_entropy(np.arange(8), 8) == pytest.approx(1.0)
    assert normalized_entropy(np.repeat(np.arange(4), 5), 4) == pytest.approx(1.0)
    assert normalized_entropy(np.zeros(10, np.int64), 4) == pytest.approx(0.0)
    # two of four codes used equally: H = 1 bit, log2 4 = 2 bits
    assert normalized_entropy(np.array([0, 0, 1, 1]), 4) == pytest.approx(0.5)
    # p = (1/2, 1/4, 1/4): H = 1.5 bits over log2 8 = 3
    assert normalized_entropy(np.array([0, 0, 1, 2]), 8) == pytest.approx(0.5)
    assert normalized_entropy(np.array([0, 0]), 1) == 0.0


def test_collision_rate_by_hand():
    codes = np.array([[0, 0], [0, 1], [1, 2], [1, 2], [2, 3]])
    # depth 1: prefixes 0,0,1,1,2 -> items 0-3 collide (4/5); depth 2: (1,2) twice -> 2/5
    assert collision_rates(codes) == pytest.approx([0.8, 0.4])
    assert group_sizes(codes).tolist() == [1, 1, 2, 2, 1]
    assert collision_rates(np.array([[0], [1], [2]])) == [0.0]


def test_level_stats_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    exact = level_stats(x, x.copy(), np.array([0, 1]), 4)
    assert exact["mse"] == 0.0 and exact["cosine"] == pytest.approx(0.0, abs=1e-7)
    assert exact["utilization"] == 0.5 and exact["max_size"] == 1 and exact["min_size"] == 0
    zero = level_stats(x, np.zeros_like(x), np.array([0, 0]), 2)
    assert zero["mse"] == pytest.approx(0.5) and zero["cosine"] == pytest.approx(1.0)
    assert zero["entropy"] == 0.0 and zero["max_size"] == 2
    orth = level_stats(x, x[::-1].copy(), np.array([0, 1]), 2)  # orthogonal reconstructions
    assert orth["cosine"] == pytest.approx(1.0) and orth["entropy"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["kmeans", "balanced", "seed-heuristic"])
def test_sid_report_shape_and_consistency(method):
    x = synthetic_embeddings(300, 32, topics=4, cluster_size=8, seed=1)
    config = SIDConfig(levels=3, codes=8, method=method, iters=10)
    sids = fit_semantic_ids(x, config)
    rep = sid_report(x, sids)
    json.dumps(rep)  # JSON-able
    assert set(rep) == REPORT_KEYS
    assert rep["method"] == method and rep["levels"] == 3 and rep["codes"] == 8 and rep["items"] == 300
    assert rep["seconds"] == sids.seconds
    assert len(rep["per_level"]) == 3 and all(set(lv) == LEVEL_KEYS for lv in rep["per_level"])
    mses = [lv["mse"] for lv in rep["per_level"]]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(mses, mses[1:], strict=False))
    rates = rep["collision_rate"]
    assert len(rates) == 3 and all(b <= a for a, b in zip(rates, rates[1:], strict=False))
    assert rep["uniq_max"] == sids.codes[:, -1].max() + 1
    for lv in rep["per_level"]:
        assert 0 < lv["utilization"] <= 1 and 0 <= lv["entropy"] <= 1 + 1e-9
        assert lv["min_size"] <= 300 / 8 <= lv["max_size"]
    if method == "balanced":
        lo, hi = size_bounds(300, 8, config.tolerance)
        assert all(lo <= lv["min_size"] and lv["max_size"] <= hi for lv in rep["per_level"])
        assert all(lv["entropy"] > 0.99 for lv in rep["per_level"])
    assert sid_report(x, sids, seconds=1.5)["seconds"] == 1.5


def test_report_level1_matches_direct_computation():
    x = synthetic_embeddings(200, 16, topics=3, cluster_size=8, seed=2)
    sids = fit_semantic_ids(x, SIDConfig(levels=2, codes=4, method="kmeans", iters=10))
    rep = sid_report(x, sids)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    recon = sids.quantizer.codebooks.numpy()[0][sids.codes[:, 0]]
    assert rep["per_level"][0]["mse"] == pytest.approx(float(((xn - recon) ** 2).mean()), rel=1e-5)
    p = np.bincount(sids.codes[:, 0], minlength=4) / 200
    h = -sum(v * math.log2(v) for v in p if v > 0)
    assert rep["per_level"][0]["entropy"] == pytest.approx(h / 2)


def test_synthetic_embeddings():
    a = synthetic_embeddings(500, 24, topics=4, cluster_size=8, seed=3)
    assert a.shape == (500, 24) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, synthetic_embeddings(500, 24, topics=4, cluster_size=8, seed=3))
    assert (a @ a.T).mean() > 0.1  # anisotropic like real embeddings, not uniform noise on the sphere


# generator statistics at the real set's size must match the measured real ones within these tolerances
CALIBRATION_TOL = {
    "mean_sq_norm": 0.04,
    "pr_rank_frac": 0.02,
    "top10pct_var": 0.03,
    "cos_mean": 0.04,
    "cos_std": 0.03,
    "nn_q10": 0.05,
    "nn_q50": 0.06,
    "nn_q90": 0.06,
    "nn_gt_0.95": 0.015,
}


def test_synthetic_matches_real_embedding_statistics():
    stats = embedding_stats(synthetic_embeddings(1682, 384, seed=0))
    assert set(stats) == set(REAL_MINILM_STATS) == set(CALIBRATION_TOL)
    off = {
        k: (round(stats[k], 3), REAL_MINILM_STATS[k])
        for k in stats
        if abs(stats[k] - REAL_MINILM_STATS[k]) > CALIBRATION_TOL[k]
    }
    assert not off, f"synthetic vs real statistics out of tolerance: {off}"


def test_real_statistics_table_is_measured():
    """REAL_MINILM_STATS is what embedding_stats gives on the ML-100K MiniLM vectors (the catalogue's own
    texts; the cache may also hold vectors of edited texts, e.g. from an exercise)."""
    from cobra.text import embed_items

    stats = embedding_stats(embed_items("ml-100k", "minilm", progress=False).vectors)
    for k, v in REAL_MINILM_STATS.items():
        assert stats[k] == pytest.approx(v, abs=0.002), k


def test_synthetic_spectrum_keeps_shape_at_other_dims():
    """At other dims the spectrum keeps its shape in i/D: top-10% variance share as the target's."""
    alpha, tau, power = SPECTRUM
    t = np.arange(1, 769) / 768
    lam = t**-alpha * np.exp(-((t / tau) ** power))
    x = synthetic_embeddings(2000, 768, seed=0)
    stats = embedding_stats(x, sample=500)
    assert stats["top10pct_var"] == pytest.approx(lam[:76].sum() / lam.sum(), abs=0.03)
    assert stats["mean_sq_norm"] == pytest.approx(REAL_MINILM_STATS["mean_sq_norm"], abs=0.05)


def test_bench_sid_small():
    vec = synthetic_embeddings(200, 16, topics=3, cluster_size=8, seed=4)
    res = bench_sid(vec, synthetic=(300, 16), levels=2, codes=6, iters=8, verbose=True)
    json.dumps(res)
    assert [d["name"] for d in res["datasets"]] == ["ml-100k", "synthetic-300x16"]
    for d in res["datasets"]:
        assert set(d["runs"]) == {"kmeans", "balanced", "seed-heuristic", "sklearn-kmeans"}
        assert d["targets"]["entropy_ge_0.99"] in (True, False)
        assert d["targets"]["sizes_within_tolerance"] is True
        assert d["targets"]["speedup_vs_seed_heuristic"] > 0 and d["targets"]["cpu_speedup_vs_seed_heuristic"] > 0
        assert all(r["seconds"] > 0 and r["cpu_seconds"] >= 0 for r in d["runs"].values())
    table = format_sid_bench(res)
    assert "seed-heuristic" in table and "targets (balanced)" in table
    assert bench_sid(None, synthetic=None)["datasets"] == []


def test_load_vectors(tmp_path):
    from cobra.sid import SIDError, load_vectors

    a = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "v.npy", a)
    np.savez(tmp_path / "v.npz", vectors=a)
    for name in ("v.npy", "v.npz"):
        out = load_vectors(tmp_path / name)
        assert out.dtype == np.float32 and out.shape == (4, 3)
    np.save(tmp_path / "flat.npy", np.zeros(3))
    with pytest.raises(SIDError, match="expected"):
        load_vectors(tmp_path / "flat.npy")
    with pytest.raises(SIDError, match="no vectors file"):
        load_vectors(tmp_path / "nope.npy")
    np.savez(tmp_path / "other.npz", x=a)
    with pytest.raises(SIDError, match="no 'vectors'"):
        load_vectors(tmp_path / "other.npz")
