"""Tests of cobra.sid: k-means variants, residual quantisation, uniqueness codes, files, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cobra.config import ConfigError
from cobra.sid import (
    METHODS,
    ResidualQuantizer,
    SemanticIDs,
    SIDConfig,
    SIDError,
    add_uniqueness,
    assign_costs,
    capacitated_assign,
    fit_semantic_ids,
    kmeans,
    load_semantic_ids,
    read_codes,
    size_bounds,
    sq_distances,
)

FAST = settings(max_examples=15, deadline=None)


def blobs(n: int = 120, dim: int = 6, centers: int = 5, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 points around `centers` well-separated centres, with unequal sizes."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centers, dim)) * 4.0
    which = rng.choice(centers, size=n, p=np.arange(1, centers + 1) / (centers * (centers + 1) / 2))
    return (mu[which] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)


def cfg(**kw) -> SIDConfig:
    base = {"levels": 2, "codes": 4, "iters": 15}
    return SIDConfig(**(base | kw))


def test_methods_registry():
    assert set(METHODS) == {"kmeans", "balanced", "seed-heuristic"}


@pytest.mark.parametrize(
    "kw", [{"method": "nope"}, {"levels": 0}, {"codes": 0}, {"iters": 0}, {"tolerance": -0.1}, {"tolerance": 1.5}]
)
def test_bad_config(kw):
    with pytest.raises(ConfigError):
        SIDConfig(**kw)


def test_sq_distances_and_costs_agree():
    x, c = torch.randn(30, 5), torch.randn(4, 5)
    ref = torch.cdist(x, c) ** 2
    assert torch.allclose(sq_distances(x, c), ref, atol=1e-4)
    assert torch.equal(assign_costs(x, c).argmin(1), ref.argmin(1))


def test_kmeans_recovers_separated_blobs():
    x = torch.from_numpy(blobs(200, 4, 3, seed=1))
    res = kmeans(x, 3, seed=0)
    # every blob ends in one cluster: labels are a relabelling of the truth -> 3 distinct (label, truth) pairs
    truth = assign_costs(x, res.centroids).argmin(1)
    assert torch.equal(truth, res.labels)
    assert res.centroids.shape == (3, 4) and res.labels.dtype == torch.int64
    assert len(torch.unique(res.labels)) == 3


@FAST
@given(
    n=st.integers(8, 60),
    k=st.integers(1, 8),
    tol=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
)
def test_size_bounds_feasible(n, k, tol):
    if k > n:
        return
    lo, hi = size_bounds(n, k, tol)
    assert 1 <= lo <= n // k and hi >= -(-n // k)
    assert k * lo <= n <= k * hi


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(4, 80),
    k=st.integers(1, 9),
    tol=st.sampled_from([0.0, 0.1, 0.25]),
    seed=st.integers(0, 10_000),
)
def test_capacitated_assign_respects_bounds(n, k, tol, seed):
    if k > n:
        return
    g = torch.Generator().manual_seed(seed)
    costs = torch.rand(n, k, generator=g) ** 3  # skewed: many points prefer the same clusters
    lo, hi = size_bounds(n, k, tol)
    labels = capacitated_assign(costs, lo, hi)
    sizes = torch.bincount(labels, minlength=k)
    assert labels.shape == (n,) and int(labels.min()) >= 0 and int(labels.max()) < k
    assert int(sizes.min()) >= lo and int(sizes.max()) <= hi
    assert torch.equal(labels, capacitated_assign(costs, lo, hi))  # deterministic


def test_capacitated_assign_keeps_nearest_when_feasible():
    costs = torch.tensor([[0.0, 1.0], [0.0, 2.0], [3.0, 0.0], [1.0, 0.0]])
    assert capacitated_assign(costs, 2, 2).tolist() == [0, 0, 1, 1]
    # three points want cluster 0, capacity 2: the one with the smallest regret (point 0) moves
    costs = torch.tensor([[0.0, 0.1], [0.0, 5.0], [0.0, 3.0], [9.0, 0.0]])
    assert capacitated_assign(costs, 2, 2).tolist() == [1, 0, 0, 1]


@settings(max_examples=12, deadline=None)
@given(
    method=st.sampled_from(sorted(METHODS)),
    n=st.integers(16, 60),
    dim=st.integers(2, 6),
    k=st.integers(2, 6),
    levels=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_fit_properties(method, n, dim, k, levels, seed):
    x = blobs(n, dim, 3, seed=seed)
    config = SIDConfig(levels=levels, codes=k, method=method, iters=10, seed=seed)
    sids = fit_semantic_ids(x, config)
    codes = sids.codes
    assert codes.shape == (n, levels + 1) and codes.dtype == np.int64
    assert codes[:, :levels].min() >= 0 and codes[:, :levels].max() < k  # codes in range
    assert len({tuple(r) for r in codes.tolist()}) == n  # the uniqueness code separates every item
    # reconstruction error never rises with depth
    target = sids.quantizer.prepare(x).numpy()
    errors = [((target - sids.quantizer.decode(codes[:, :d])) ** 2).sum() for d in range(0, levels + 1)]
    assert all(b <= a * (1 + 1e-5) + 1e-6 for a, b in zip(errors, errors[1:], strict=False))
    if method == "balanced":  # balance within tolerance at every level
        lo, hi = size_bounds(n, k, config.tolerance)
        for level in range(levels):
            sizes = np.bincount(codes[:, level], minlength=k)
            assert sizes.min() >= lo and sizes.max() <= hi


@pytest.mark.parametrize("method", sorted(METHODS))
def test_deterministic_under_seed(method):
    x = blobs(90, 5, 4, seed=3)
    a = fit_semantic_ids(x, cfg(method=method, seed=7))
    b = fit_semantic_ids(x, cfg(method=method, seed=7))
    np.testing.assert_array_equal(a.codes, b.codes)
    assert torch.equal(a.quantizer.codebooks, b.quantizer.codebooks)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_deterministic_across_thread_counts(method):
    """Same seed, 1 or 2 torch threads, separate fits: identical codes."""
    x = np.random.default_rng(5).standard_normal((600, 32)).astype(np.float32)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            runs.append(fit_semantic_ids(x, SIDConfig(levels=2, codes=16, method=method, iters=10)).codes)
    finally:
        torch.set_num_threads(before)
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)


def test_one_cpu_thread_restores_thread_count():
    from cobra.sid import _one_cpu_thread

    before = torch.get_num_threads()
    with _one_cpu_thread(torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@settings(max_examples=10, deadline=None)
@given(n=st.integers(20, 80), k=st.integers(2, 8), seed=st.integers(0, 1000))
def test_encode_reproduces_fitted_kmeans_codes(n, k, seed):
    x = blobs(n, 5, 4, seed=seed)
    sids = fit_semantic_ids(x, SIDConfig(levels=3, codes=k, method="kmeans", iters=8, seed=seed))
    np.testing.assert_array_equal(sids.quantizer.encode(x), sids.codes[:, :3])


def test_encode_is_nearest_centroid_for_balanced():
    x = blobs(100, 5, 3, seed=4)
    sids = fit_semantic_ids(x, cfg(method="balanced"))
    enc = sids.quantizer.encode(x)
    books = sids.quantizer.codebooks
    first = assign_costs(sids.quantizer.prepare(x), books[0]).argmin(1).numpy()
    np.testing.assert_array_equal(enc[:, 0], first)
    # most items keep their nearest centroid; the capacities moved only some
    assert (enc[:, 0] == sids.codes[:, 0]).mean() > 0.5


def test_normalize_flag():
    x = blobs(60, 4, 3) * 10
    q = ResidualQuantizer(cfg(normalize=True))
    assert np.allclose(np.linalg.norm(q.prepare(x).numpy(), axis=1), 1.0, atol=1e-5)
    q = ResidualQuantizer(cfg(normalize=False))
    assert np.allclose(q.prepare(x).numpy(), x)


def test_save_load_round_trip(tmp_path):
    x = blobs(80, 6, 4, seed=5)
    sids = fit_semantic_ids(x, cfg(method="balanced", levels=3))
    path = sids.quantizer.save(tmp_path / "q.npz")
    q = ResidualQuantizer.load(path)
    assert q.config == sids.config
    assert torch.equal(q.codebooks, sids.quantizer.codebooks)
    np.testing.assert_array_equal(q.encode(x), sids.quantizer.encode(x))
    np.testing.assert_array_equal(q.decode(sids.codes), sids.quantizer.decode(sids.codes))
    full = SemanticIDs.load(sids.save(tmp_path / "sids"))  # suffix added
    np.testing.assert_array_equal(full.codes, sids.codes)
    assert full.config == sids.config
    with np.load(tmp_path / "sids.npz", allow_pickle=False) as z:  # no pickle needed to read it
        assert set(z.files) == {"meta", "codebooks", "sid_codes"}
    with pytest.raises(SIDError, match="only a quantiser"):
        SemanticIDs.load(path)


def test_load_errors(tmp_path):
    with pytest.raises(SIDError, match="no semantic-ID file"):
        ResidualQuantizer.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SIDError, match="not a readable"):
        ResidualQuantizer.load(bad)


@pytest.mark.parametrize(
    ("vectors", "match"),
    [
        (np.zeros((0, 4), np.float32), "empty"),
        (np.zeros((5, 0), np.float32), "empty"),
        (np.zeros(7, np.float32), "2-D"),
        (np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32), "NaN"),
        (np.array([[0.0, 1.0], [np.inf, 1.0], [1.0, 1.0], [2.0, 0.0]], np.float32), "NaN or infinite"),
    ],
)
def test_bad_input_errors(vectors, match):
    with pytest.raises(SIDError, match=match):
        fit_semantic_ids(vectors, SIDConfig(levels=1, codes=2))


def test_more_codes_than_items():
    with pytest.raises(SIDError, match="codes per level but only 10 items"):
        fit_semantic_ids(blobs(10, 3, 2), SIDConfig(levels=1, codes=16))


def test_wrong_dim_and_unfitted():
    q = ResidualQuantizer(cfg())
    with pytest.raises(SIDError, match="not fitted"):
        q.encode(blobs(10, 3, 2))
    q.fit(blobs(40, 6, 3))
    with pytest.raises(SIDError, match="fitted on 6"):
        q.encode(blobs(10, 3, 2))
    with pytest.raises(SIDError, match=r"\[0, 4\)"):
        q.decode(np.array([[9, 0]]))


def test_add_uniqueness_by_hand():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2], [0, 0], [3, 3]])
    out = add_uniqueness(codes)
    assert out[:, 2].tolist() == [0, 1, 0, 2, 1, 0]
    np.testing.assert_array_equal(out[:, :2], codes)
    assert add_uniqueness(np.zeros((0, 3), np.int64)).shape == (0, 4)


@FAST
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=40))
def test_add_uniqueness_makes_rows_unique(rows):
    out = add_uniqueness(np.array(rows))
    assert len({tuple(r) for r in out.tolist()}) == len(rows)
    # 0, 1, 2, ... in item order inside each group
    seen: dict[tuple, int] = {}
    for r, u in zip(rows, out[:, -1].tolist(), strict=True):
        assert u == seen.get(r, 0)
        seen[r] = u + 1


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SIDConfig().codes = 3  # type: ignore[misc]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_fit_matches_cpu():
    """The same code runs on CUDA. Its random draws come from a CUDA generator, so the cluster *labels*
    differ from the CPU fit's; compare what does not depend on labels: balance and reconstruction error."""
    from cobra.sid_metrics import sid_report

    x = blobs(400, 8, 5)
    cpu = sid_report(x, fit_semantic_ids(x, cfg(method="balanced")))
    gpu = sid_report(x, fit_semantic_ids(x, cfg(method="balanced"), device="cuda"))
    for a, b in zip(cpu["per_level"], gpu["per_level"], strict=True):
        assert b["utilization"] == a["utilization"] == 1.0
        assert b["entropy"] > 0.99 and a["entropy"] > 0.99
        assert b["mse"] < 1.5 * a["mse"]  # local optima differ with the draws; a broken fit is far worse


# ------------------------------------------------------------------------------------ file integrity


def _rewrite(path, **changes):
    """Rewrite the npz at ``path`` with some arrays replaced (meta, hash included, kept as it was)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **(arrays | changes))


def test_sid_file_content_hash(tmp_path):
    sids = fit_semantic_ids(blobs(60, 6, 4, seed=2), cfg(levels=2))
    path = sids.save(tmp_path / "s.npz")
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        books = z["codebooks"].copy()
    assert len(meta["sha256"]) == 64
    assert load_semantic_ids(path)[1] is True
    books[0, 0, 0] += 1e-6  # still a valid npz, with codes in range: only the hash can tell
    _rewrite(path, codebooks=books)
    with pytest.raises(SIDError, match=rf"{path.name} is damaged \(hash mismatch"):
        SemanticIDs.load(path)
    with pytest.raises(SIDError, match="hash mismatch"):
        ResidualQuantizer.load(path)
    # a file from before content hashes loads on its CRC-32 checks, and says so
    sids.save(path)
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
    del meta["sha256"]
    _rewrite(path, meta=np.array(json.dumps(meta)))
    old, hashed = load_semantic_ids(path)
    assert not hashed and np.array_equal(old.codes, sids.codes)


def test_sid_codes_are_range_checked(tmp_path):
    sids = fit_semantic_ids(blobs(60, 6, 4, seed=2), cfg(levels=2, codes=4))
    path = tmp_path / "s.npz"
    for column, value, match in [(0, 4, r"level-1 codes must lie in \[0, 4\)"),
                                 (1, 10**9, r"level-2 codes must lie in \[0, 4\).*1000000000"),
                                 (0, -1, r"level-1 codes"),
                                 (2, -1, r"uniqueness codes \(last column\) must lie in \[0, 60\)")]:
        bad = sids.codes.copy()
        bad[7, column] = value
        dataclasses.replace(sids, codes=bad).save(path)  # a correct hash: the codes themselves are wrong
        with pytest.raises(SIDError, match=match) as err:
            SemanticIDs.load(path)
        assert str(path) in str(err.value) and "item 8" in str(err.value)
    sids.save(path)
    assert SemanticIDs.load(path, num_items=60).codes.shape == (60, 3)
    with pytest.raises(SIDError, match="codes for 60 items, expected 61"):
        SemanticIDs.load(path, num_items=61)
    dataclasses.replace(sids, codes=sids.codes[:, :2]).save(path)
    with pytest.raises(SIDError, match="2 code columns, expected 3"):
        SemanticIDs.load(path)


def test_read_codes_errors_name_the_file(tmp_path):
    codes = add_uniqueness(np.random.default_rng(0).integers(0, 4, (30, 2)))
    path = tmp_path / "sid_codes.npz"
    np.savez(path, codes=codes)
    got = read_codes(path, codes_per_level=4, num_items=30)
    assert got.dtype == np.int64 and np.array_equal(got, codes)
    cases = {
        "out of range": (codes + np.array([0, 10**9, 0]), r"level-2 codes must lie in \[0, 4\)"),
        "wrong rows": (codes[:29], "codes for 29 items, expected 30"),
        "not integers": (codes.astype(np.float64), "2-D integer array"),
    }
    for why, (bad, match) in cases.items():
        np.savez(path, codes=bad)
        with pytest.raises(SIDError, match=match) as err:
            read_codes(path, codes_per_level=4, num_items=30)
        assert str(path) in str(err.value), why
    np.savez(path, codes=codes)
    path.write_bytes(path.read_bytes()[:-30])  # truncated
    with pytest.raises(SIDError, match="not a readable semantic-ID file") as err:
        read_codes(path, codes_per_level=4, num_items=30)
    assert str(path) in str(err.value)
    np.savez(path, other=codes)
    with pytest.raises(SIDError, match="holds no 'codes' array"):
        read_codes(path, codes_per_level=4)
    with pytest.raises(SIDError, match="is missing"):
        read_codes(tmp_path / "none.npz", codes_per_level=4)
