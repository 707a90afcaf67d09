"""Semantic IDs: residual k-means (plain, balanced, seed-heuristic) and the uniqueness code.

An item's text vector ``x: (D,)`` becomes a short tuple of codes ``(c1, ..., cL)``: level 1 clusters
the vectors into ``K`` groups, level 2 clusters the residuals ``x - centroid[c1]``, and so on
(residual quantisation). A last *uniqueness code* (TIGER) numbers the items whose tuples coincide,
so the full semantic ID ``(c1, ..., cL, u)`` names exactly one item.

Three clustering methods fill the registry :data:`METHODS`:

* ``kmeans`` -- Lloyd's algorithm with k-means++ initialisation, vectorised in torch (same code on CPU
  and GPU, deterministic under a seed).
* ``balanced`` -- Lloyd iterations whose assignment step respects capacities: every cluster ends with
  between ``lo`` and ``hi`` items (:func:`size_bounds`). The assignment is a *sorted-regret greedy*
  run in vectorised rounds (:func:`capacitated_assign`), followed by a cheapest-move repair of any
  cluster below ``lo``. Sizes are within the tolerance by construction, at every level.
* ``seed-heuristic`` -- the source article's method, kept so the book can compare: run k-means, then
  repeatedly move the farthest points of every over-full cluster into whichever cluster is currently
  smallest (a Python loop over points, as the write-up describes it).

Encoding new vectors uses the nearest centroid at every level. For ``kmeans`` this reproduces the
fitted codes exactly; for ``balanced`` and ``seed-heuristic`` the fitted codes of catalogue items
differ from nearest-centroid codes for the items the capacities moved, which is why
:class:`SemanticIDs` keeps the fitted codes.

Files (:meth:`SemanticIDs.save`, :meth:`ResidualQuantizer.save`) are ``.npz`` archives without pickles whose
JSON metadata records a sha256 of the whole content; loading recomputes it and range-checks the codes, and
any damage is a :class:`SIDError` that names the file.

:func:`load_vectors` reads a saved ``(N, D)`` matrix (``.npy``, or ``.npz`` with ``vectors``) without pickles,
for ``python -m cobra sid --vectors``.

Explained in chapters 03 (building semantic IDs) and 04 (diagnostics).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from cobra.config import CobraError, ConfigError
from cobra.npzfile import HashMismatch, read_hashed_npz, read_npz, write_hashed_npz

FORMAT_VERSION = 1
REL_TOL = 1e-4  # Lloyd stops when the inertia improves by less than this fraction (as scikit-learn)


class SIDError(CobraError, ValueError):
    """Input that cannot be quantised (empty, NaN, wrong shape, more codes than items) or a bad file."""


@dataclass(frozen=True)
class SIDConfig:
    """How to build semantic IDs.

    Attributes:
        levels: depth ``L`` (number of residual levels, before the uniqueness code).
        codes: codes per level ``K``.
        method: clustering method, a key of :data:`METHODS`.
        normalize: L2-normalise the input vectors before fitting and encoding.
        iters: most Lloyd iterations per level (and most balancing rounds for ``seed-heuristic``).
        tolerance: relative cluster-size tolerance of the balanced methods: sizes stay within
            ``[ceil(n/K (1 - tol)), floor(n/K (1 + tol))]``, widened to ``[floor(n/K), ceil(n/K)]``.
        seed: seed of the torch generator used for k-means++.
    """

    levels: int = 3
    codes: int = 128
    method: str = "balanced"
    normalize: bool = True
    iters: int = 50
    tolerance: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown SID method {self.method!r}; choose one of {sorted(METHODS)}")
        if self.levels < 1 or self.codes < 1:
            raise ConfigError(f"levels and codes must be >= 1, got levels={self.levels}, codes={self.codes}")
        if self.iters < 1:
            raise ConfigError(f"iters must be >= 1, got {self.iters}")
        if not 0.0 <= self.tolerance < 1.0:
            raise ConfigError(f"tolerance must be in [0, 1), got {self.tolerance}")


class Clustering(NamedTuple):
    """Result of one clustering level.

    Attributes:
        centroids: (K, D) float32.
        labels: (N,) int64 in [0, K).
        iterations: Lloyd iterations (or balancing rounds) actually run.
    """

    centroids: torch.Tensor
    labels: torch.Tensor
    iterations: int


# --------------------------------------------------------------------------------------------- k-means


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run the enclosed torch CPU ops on one thread (no effect on other devices).

    The Lloyd loops mix two kinds of work: one large matrix product per iteration (:func:`assign_costs`,
    run on all of torch's threads) and many small, memory-bound steps (sorting, top-k, index bookkeeping,
    cluster sums). Every threaded op opens a parallel region; on a shared 2-core machine waking the second
    thread costs milliseconds, far more than the small steps themselves (measured: capacitated assignment
    89 ms on one thread against 390 ms on two, under load). These ops give the same result on any number
    of threads, so this changes speed only.
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def exact(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the precision every k-means decision is made in: float64 on the CPU, as is elsewhere.

    Readers' CPUs (AVX2, AVX-512, ARM) sum float32 products in different orders, so two nearly equal
    distances can compare one way on one machine and the other way on the next, and one flipped
    assignment changes every later Lloyd iteration. In float64 the rounding is ~1e-16, far below any
    gap that occurs, so the codes are the same everywhere (chapter 03). GPUs keep float32 for speed.
    """
    return x.double() if x.device.type == "cpu" else x


def _as_stored(c: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Centroids rounded to the caller's ``dtype`` (what the codebooks will hold), kept in ``c``'s dtype.

    Lloyd's labels are then exactly the nearest of the returned centroids, and ``encode`` reproduces them.
    """
    return c.to(dtype).to(c.dtype)


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances.

    Args:
        x: (N, D) float32 points.
        c: (K, D) float32 centroids.

    Returns:
        (N, K) float32, clamped at 0.
    """
    return assign_costs(x, c).add_((x * x).sum(1, keepdim=True)).clamp_min_(0.0)  # (N, K)


def assign_costs(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``|c_k|^2 - 2 x.c_k``: the squared distance less the per-row constant ``|x|^2``.

    Every assignment (argmin, regret, move cost) compares costs within a row, so the constant does not
    matter; skipping it saves a pass over ``x``. Fitting and :meth:`ResidualQuantizer.encode` use this
    same function, so encoding reproduces fitted nearest-centroid codes bit for bit.

    Args:
        x: (N, D) float32 or float64 (see :func:`exact`); c: (K, D) of the same dtype.

    Returns:
        (N, K) in that dtype.
    """
    return torch.addmm((c * c).sum(1)[None, :], x, c.T, alpha=-2.0)  # (N, K)


def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator, sample: int | None = None
) -> torch.Tensor:
    """k-means++ seeding: each new centre is drawn with probability proportional to D(x)^2.

    Sampling uses ``torch.rand`` with ``generator`` and a search in the cumulative sum, so the result is
    the same for the same seed on every run. Seeding is sequential (K passes over the points), so it
    runs on a random subsample of ``sample`` points (default ``max(4096, 32 K)``); the Lloyd
    iterations that follow use every point.

    Args:
        x: (N, D) float32.
        k: number of centres K (<= N).
        generator: torch generator on ``x.device``.
        sample: subsample size (None for the default).

    Returns:
        (K, D) float32 initial centroids.
    """
    with _one_cpu_thread(x.device):
        return _kmeans_plus_plus(exact(x), k, generator, sample).to(x.dtype)


def _kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator, sample: int | None
) -> torch.Tensor:
    n = x.shape[0]
    sample = max(4096, 32 * k) if sample is None else sample
    if n > sample:
        x = x[torch.randperm(n, generator=generator, device=x.device)[:sample]]  # (S, D)
        n = sample
    sq = (x * x).sum(1)  # (S,)
    first = int(torch.randint(n, (1,), generator=generator, device=x.device).item())
    idx = [first]
    closest = (sq - 2.0 * (x @ x[first]) + sq[first]).clamp_min(0.0).double()  # (S,)
    for _ in range(1, k):
        cum = torch.cumsum(closest, 0)  # (S,)
        total = cum[-1]
        if total <= 0:  # fewer distinct points than K: take the first point not chosen yet
            chosen = torch.zeros(n, dtype=torch.bool, device=x.device)
            chosen[idx] = True
            nxt = int(torch.nonzero(~chosen)[0].item())
        else:
            u = torch.rand(1, generator=generator, device=x.device, dtype=torch.float64) * total
            nxt = min(int(torch.searchsorted(cum, u).item()), n - 1)
        idx.append(nxt)
        d = (sq - 2.0 * (x @ x[nxt]) + sq[nxt]).clamp_min(0.0).double()  # (S,)
        closest = torch.minimum(closest, d)
    return x[torch.tensor(idx, device=x.device)].clone()  # (K, D)


def _update_centroids(x: torch.Tensor, labels: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Mean of every cluster; an empty cluster is re-seeded with the point farthest from its centroid.

    Args:
        x: (N, D) float32; labels: (N,) int64; old: (K, D) float32 previous centroids.

    Returns:
        (K, D) float32.
    """
    with _one_cpu_thread(x.device):
        return _cluster_means(x, labels, old)


def _cluster_means(x: torch.Tensor, labels: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    k = old.shape[0]
    sums = torch.zeros_like(old).index_add_(0, labels, x)  # (K, D)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)  # (K,)
    new = sums / counts.clamp_min(1.0)[:, None]  # (K, D)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel():
        err = ((x - old[labels]) ** 2).sum(1)  # (N,)
        far = torch.argsort(err, descending=True, stable=True)[: empty.numel()]
        new[empty] = x[far]
    return new


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int = 50,
    seed: int = 0,
    generator: torch.Generator | None = None,
    tolerance: float = 0.0,
) -> Clustering:
    """Lloyd's k-means with k-means++ initialisation, decided in float64 on the CPU (:func:`exact`).

    Stops when no label changes, when the inertia (sum of squared distances) improves by less than
    ``REL_TOL`` of itself, or after ``iters`` iterations. The labels are always the nearest centroids
    of the returned centroids: ``labels == argmin(assign_costs(x, centroids))``.

    Args:
        x: (N, D) float32 on any device.
        k: number of clusters K (<= N).
        iters: most Lloyd iterations.
        seed: seed used when no ``generator`` is given.
        generator: torch generator on ``x.device`` (takes precedence over ``seed``).
        tolerance: ignored (the uniform signature of :data:`METHODS`).

    Returns:
        :class:`Clustering` with centroids (K, D) float32 and labels (N,) int64.
    """
    gen = generator if generator is not None else torch.Generator(device=x.device).manual_seed(seed)
    dtype, x = x.dtype, exact(x)  # decisions in float64 on the CPU
    centroids = kmeans_plus_plus(x, k, gen)  # (K, D)
    best, labels = assign_costs(x, centroids).min(1)  # (N,), (N,)
    base = float((x * x).sum())  # inertia = base + sum of costs
    inertia = base + float(best.sum())
    it = 0
    for _ in range(iters):
        it += 1
        centroids = _as_stored(_update_centroids(x, labels, centroids), dtype)
        best, new = assign_costs(x, centroids).min(1)  # (N,), (N,)
        previous, inertia = inertia, base + float(best.sum())
        converged = torch.equal(new, labels) or previous - inertia <= REL_TOL * abs(inertia)
        labels = new  # always the nearest-centroid labels of the current centroids
        if converged:
            break
    return Clustering(centroids.to(dtype), labels, it)


# ------------------------------------------------------------------------------------ balanced k-means


def size_bounds(n: int, k: int, tolerance: float) -> tuple[int, int]:
    """Smallest and largest cluster size allowed by ``tolerance``.

    ``lo = max(1, ceil(n/K (1 - tol)))`` and ``hi = floor(n/K (1 + tol))`` as in the source article,
    widened to ``lo <= floor(n/K)`` and ``hi >= ceil(n/K)`` so that a valid assignment always exists.

    Returns:
        (lo, hi) ints with ``K * lo <= n <= K * hi``.
    """
    avg = n / k
    lo = min(max(1, math.ceil(avg * (1.0 - tolerance) - 1e-9)), n // k)
    hi = max(math.floor(avg * (1.0 + tolerance) + 1e-9), math.ceil(avg))
    return lo, hi


def _rank_within(groups: torch.Tensor, k: int) -> torch.Tensor:
    """Rank of each element among the elements with the same group value, in input order.

    Args:
        groups: (M,) int64 in [0, k).

    Returns:
        (M,) int64: 0 for the first element of each group, 1 for the second, ...
    """
    order = torch.argsort(groups, stable=True)  # (M,)
    counts = torch.bincount(groups, minlength=k)  # (k,)
    starts = torch.cumsum(counts, 0) - counts  # (k,)
    pos = torch.arange(groups.numel(), device=groups.device)  # (M,)
    rank_sorted = pos - starts.index_select(0, groups.index_select(0, order))  # (M,)
    return torch.empty_like(rank_sorted).index_copy_(0, order, rank_sorted)


def capacitated_assign(dist: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Assign every point to a cluster so that every cluster holds between ``lo`` and ``hi`` points.

    Step 1, sorted-regret greedy in vectorised rounds: every unassigned point proposes to its nearest
    cluster that is not full yet; each cluster accepts, up to its remaining capacity ``hi - size``, the
    proposers with the largest *regret* (distance to their second-best open cluster minus distance to
    this one), i.e. the points that would lose most by going elsewhere. A round either places every
    proposer or fills at least one cluster, so there are at most ``K + 1`` rounds.

    Step 2, repair (also in vectorised rounds): every cluster still below ``lo`` takes the points whose
    move costs least (``dist[i, c] - dist[i, label_i]``) from clusters that hold more than ``lo``.

    Ties are broken by point index, so the result is deterministic.

    Small index bookkeeping uses ``index_select`` / ``masked_select`` / ``index_copy_`` rather than
    ``t[idx]`` indexing: on CPU the latter opens a thread-parallel region even for a few thousand
    elements, which costs milliseconds per call on a busy machine (the results are identical).

    Args:
        dist: (N, K) float32 costs (squared distances).
        lo, hi: size bounds with ``K * lo <= N <= K * hi``.

    Returns:
        (N,) int64 labels.
    """
    n, k = dist.shape
    dev = dist.device
    if k == 1:
        return torch.zeros(n, dtype=torch.int64, device=dev)
    labels = torch.full((n,), -1, dtype=torch.int64, device=dev)
    remaining = torch.full((k,), hi, dtype=torch.int64, device=dev)  # (K,)
    todo = torch.arange(n, device=dev)  # (U,) unassigned points
    d = dist  # (U, K) costs of the unassigned points, full clusters masked
    while todo.numel():
        top = torch.topk(d, 2, dim=1, largest=False, sorted=True)
        regret = top.values[:, 1] - top.values[:, 0]  # (U,), inf when only one cluster is open
        by_regret = torch.argsort(regret, descending=True, stable=True)  # (U,)
        ch = top.indices[:, 0].index_select(0, by_regret)  # (U,) proposals, by decreasing regret
        by_cluster = torch.argsort(ch, stable=True)  # (U,) grouped by cluster, regret order kept
        ch = ch.index_select(0, by_cluster)
        who = todo.index_select(0, by_regret.index_select(0, by_cluster))  # (U,) point ids in that order
        counts = torch.bincount(ch, minlength=k)  # (K,)
        starts = torch.cumsum(counts, 0) - counts  # (K,)
        rank = torch.arange(ch.numel(), device=dev) - starts.index_select(0, ch)  # (U,)
        accept = rank < remaining.index_select(0, ch)  # (U,)
        labels.index_copy_(0, who.masked_select(accept), ch.masked_select(accept))
        remaining -= torch.minimum(counts, remaining)
        todo = who.masked_select(~accept)
        if not todo.numel():
            break
        d = dist.index_select(0, todo).masked_fill_((remaining == 0)[None, :], float("inf"))  # (U', K)
    sizes = torch.bincount(labels, minlength=k)  # (K,)
    while bool((sizes < lo).any()):
        under = torch.nonzero(sizes < lo).flatten()  # (Kr,) receivers
        need = lo - sizes  # (K,) positive for receivers
        surplus = sizes - lo  # (K,) positive for donors
        cand = torch.nonzero(surplus.index_select(0, labels) > 0).flatten()  # (M,) points that may move
        from_ = labels.index_select(0, cand)  # (M,) their clusters
        rows = dist.index_select(0, cand)  # (M, K)
        here = rows.gather(1, from_[:, None])  # (M, 1)
        delta, j = (rows.index_select(1, under) - here).min(1)  # (M,) cheapest move, to under[j]
        order = torch.argsort(delta, stable=True)
        cand, from_ = cand.index_select(0, order), from_.index_select(0, order)
        target = under.index_select(0, j.index_select(0, order))
        keep = _rank_within(from_, k) < surplus.index_select(0, from_)  # never take a donor below lo
        cand, from_, target = cand.masked_select(keep), from_.masked_select(keep), target.masked_select(keep)
        keep = _rank_within(target, k) < need.index_select(0, target)  # never fill a receiver above lo
        moved, from_, target = cand.masked_select(keep), from_.masked_select(keep), target.masked_select(keep)
        sizes -= torch.bincount(from_, minlength=k)
        sizes += torch.bincount(target, minlength=k)
        labels.index_copy_(0, moved, target)
    return labels


def balanced_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int = 50,
    seed: int = 0,
    generator: torch.Generator | None = None,
    tolerance: float = 0.1,
) -> Clustering:
    """Balanced k-means: Lloyd iterations with the capacity-constrained assignment of
    :func:`capacitated_assign`, so every cluster holds ``lo..hi`` points (:func:`size_bounds`).
    Decided in float64 on the CPU (:func:`exact`).

    Starts from k-means++ centres; stops when no label changes, when the inertia changes by less than
    ``REL_TOL`` of itself, or after ``iters`` iterations. The returned centroids are the means of the
    returned clusters.

    Args:
        x: (N, D) float32 on any device.
        k: number of clusters K (<= N).
        iters: most iterations.
        seed: seed used when no ``generator`` is given.
        generator: torch generator on ``x.device``.
        tolerance: relative size tolerance.

    Returns:
        :class:`Clustering` with centroids (K, D) float32 and labels (N,) int64.
    """
    gen = generator if generator is not None else torch.Generator(device=x.device).manual_seed(seed)
    lo, hi = size_bounds(x.shape[0], k, tolerance)
    dtype, x = x.dtype, exact(x)  # decisions in float64 on the CPU
    centroids = kmeans_plus_plus(x, k, gen)  # (K, D)
    costs = assign_costs(x, centroids)  # (N, K)
    with _one_cpu_thread(x.device):
        labels = capacitated_assign(costs, lo, hi)  # (N,)
    base = float((x * x).sum())
    inertia = base + float(costs.gather(1, labels[:, None]).sum())
    it = 0
    for _ in range(iters):
        it += 1
        centroids = _as_stored(_update_centroids(x, labels, centroids), dtype)
        costs = assign_costs(x, centroids)  # (N, K)
        with _one_cpu_thread(x.device):
            new = capacitated_assign(costs, lo, hi)  # (N,)
        previous, inertia = inertia, base + float(costs.gather(1, new[:, None]).sum())
        converged = torch.equal(new, labels) or abs(previous - inertia) <= REL_TOL * abs(inertia)
        labels = new
        if converged:
            break
    centroids = _update_centroids(x, labels, centroids)
    return Clustering(centroids.to(dtype), labels, it)


def seed_heuristic_kmeans(
    x: torch.Tensor,
    k: int,
    *,
    iters: int = 50,
    seed: int = 0,
    generator: torch.Generator | None = None,
    tolerance: float = 0.1,
) -> Clustering:
    """The source article's balancing heuristic, ported as its write-up describes it.

    1. Run scikit-learn's ``KMeans(n_clusters=K, n_init=1)`` (default ``max_iter=300``), as the
       article does; its ``random_state`` is drawn from ``generator``.
    2. Up to ``iters`` times: assign every point to its nearest centre; if all sizes are within
       ``[lo, hi]`` stop; otherwise, for every over-full cluster, walk over its points from the
       farthest to the nearest and move each (a Python loop over points) into the cluster that is
       smallest at that moment, until the cluster holds ``hi`` points; recompute the centres as
       cluster means (a Python loop over clusters).

    Deviations, both needed to run at all: the bounds come from :func:`size_bounds` (which keeps
    them feasible), and an empty cluster keeps its previous centre instead of becoming NaN.

    Args and returns as :func:`balanced_kmeans`; runs on CPU with numpy and scikit-learn (the article's
    code) whatever the device of ``x``; the result is moved back to ``x.device``.
    """
    from sklearn.cluster import KMeans  # the article's k-means; imported here, only this method needs it

    lo, hi = size_bounds(x.shape[0], k, tolerance)
    gen = generator if generator is not None else torch.Generator(device=x.device).manual_seed(seed)
    random_state = int(torch.randint(2**31 - 1, (1,), generator=gen, device=x.device).item())
    xs = x.detach().cpu().double().numpy()  # (N, D) float64: decisions as in :func:`exact`
    init = KMeans(n_clusters=k, random_state=random_state, n_init=1).fit(xs)
    centers = init.cluster_centers_  # (K, D) float64
    labels = init.labels_.astype(np.int64)  # (N,)
    sq_x = (xs * xs).sum(1)[:, None]  # (N, 1)
    it = 0
    for _ in range(iters):
        it += 1
        distances = np.sqrt(np.maximum(sq_x - 2.0 * xs @ centers.T + (centers**2).sum(1)[None, :], 0.0))
        new_labels = np.argmin(distances, axis=1)  # (N,)
        sizes = np.bincount(new_labels, minlength=k)  # (K,)
        if np.all((sizes >= lo) & (sizes <= hi)):
            labels = new_labels
            break
        for c in range(k):
            size = sizes[c]
            if size <= hi:
                continue
            members = np.where(new_labels == c)[0]
            far_first = np.argsort(distances[members, c], kind="stable")[::-1]
            for i in range(size - hi):
                point = members[far_first[i]]
                smallest = int(np.argmin(sizes))
                new_labels[point] = smallest
                sizes[c] -= 1
                sizes[smallest] += 1
        centers = np.array(
            [xs[new_labels == c].mean(axis=0) if sizes[c] else centers[c] for c in range(k)], dtype=np.float64
        )
        labels = new_labels
    dev = x.device
    return Clustering(
        torch.as_tensor(centers, dtype=x.dtype, device=dev), torch.as_tensor(labels, dtype=torch.int64, device=dev),
        it,
    )


Method = Callable[..., Clustering]
METHODS: dict[str, Method] = {
    "kmeans": kmeans,
    "balanced": balanced_kmeans,
    "seed-heuristic": seed_heuristic_kmeans,
}


# ----------------------------------------------------------------------------- residual quantisation


def _as_matrix(vectors: np.ndarray | torch.Tensor, *, what: str = "vectors") -> torch.Tensor:
    """Check and convert an (N, D) matrix to a float32 CPU tensor (no copy when possible)."""
    t = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors)
    if t.ndim != 2:
        raise SIDError(f"{what} must be a 2-D array (N items, D dims); got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise SIDError(f"{what} is empty (shape {tuple(t.shape)}); embed some items first")
    if not (t.is_floating_point()):
        t = t.to(torch.float32)
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).any(1).sum())
        raise SIDError(f"{what} contain NaN or infinite values in {bad} row(s); fix or drop those items")
    return t


class ResidualQuantizer:
    """Residual quantiser: L levels of K centroids, fitted with one of :data:`METHODS`.

    Attributes:
        config: the :class:`SIDConfig`.
        codebooks: (L, K, D) float32 tensor after :meth:`fit` or :meth:`load`, else None.
    """

    def __init__(self, config: SIDConfig | None = None) -> None:
        self.config = config if config is not None else SIDConfig()
        self.codebooks: torch.Tensor | None = None

    @property
    def dim(self) -> int:
        """Input dimension D of the fitted codebooks."""
        return int(self._fitted().shape[2])

    def _fitted(self) -> torch.Tensor:
        if self.codebooks is None:
            raise SIDError("this ResidualQuantizer is not fitted; call fit(vectors) or load a saved one")
        return self.codebooks

    def prepare(self, vectors: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Validate and (if ``config.normalize``) L2-normalise.

        Args:
            vectors: (N, D) float array.

        Returns:
            (N, D) float32 tensor on CPU: the space the codebooks live in.
        """
        x = _as_matrix(vectors)
        if self.codebooks is not None and x.shape[1] != self.codebooks.shape[2]:
            raise SIDError(
                f"vectors have {x.shape[1]} dims but the codebooks were fitted on {self.codebooks.shape[2]}; "
                "use the same encoder as for fitting"
            )
        if self.config.normalize:
            x = torch.nn.functional.normalize(x, dim=1)
        return x

    def fit(self, vectors: np.ndarray | torch.Tensor, *, device: str | torch.device = "cpu") -> np.ndarray:
        """Fit L levels on the residuals of the previous ones.

        Args:
            vectors: (N, D) float array, N >= K.
            device: where the clustering runs ("cpu" or "cuda"); same code on both.

        Returns:
            (N, L) int64 fitted codes (for balanced methods these respect the size bounds).
        """
        cfg = self.config
        self.codebooks = None
        x = self.prepare(vectors).to(device)  # (N, D)
        n = x.shape[0]
        if cfg.codes > n:
            raise SIDError(
                f"{cfg.codes} codes per level but only {n} items; choose codes <= {n} "
                f"(e.g. --codes {n // 2 or 1})"
            )
        gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
        method = METHODS[cfg.method]
        residual = x.clone()
        books, codes = [], []
        for _ in range(cfg.levels):
            res = method(residual, cfg.codes, iters=cfg.iters, generator=gen, tolerance=cfg.tolerance)
            books.append(res.centroids)
            codes.append(res.labels)
            residual = residual - res.centroids[res.labels]  # (N, D)
        self.codebooks = torch.stack(books).cpu()  # (L, K, D)
        return torch.stack(codes, 1).cpu().numpy()  # (N, L)

    def encode(self, vectors: np.ndarray | torch.Tensor, *, batch_size: int = 65536) -> np.ndarray:
        """Nearest centroid per level on the running residual.

        Args:
            vectors: (N, D) float array with the fitted D.

        Returns:
            (N, L) int64 codes.
        """
        books = self._fitted()
        x = self.prepare(vectors)  # (N, D)
        out = []
        for start in range(0, x.shape[0], batch_size):
            residual = x[start : start + batch_size]  # (b, D)
            cols = []
            for level in range(books.shape[0]):
                c = assign_costs(exact(residual), exact(books[level])).argmin(1)  # (b,), as fitted
                cols.append(c)
                residual = residual - books[level][c]
            out.append(torch.stack(cols, 1))
        return torch.cat(out).numpy()

    def decode(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Sum of the centroids named by the codes (partial reconstruction for fewer columns).

        Args:
            codes: (N, L') int with L' <= L (extra columns, e.g. the uniqueness code, are ignored).

        Returns:
            (N, D) float32 reconstruction in the (normalised) fitting space.
        """
        books = self._fitted()
        c = torch.as_tensor(np.asarray(codes), dtype=torch.int64)
        if c.ndim != 2:
            raise SIDError(f"codes must be 2-D (N, levels); got shape {tuple(c.shape)}")
        depth = min(c.shape[1], books.shape[0])
        k = books.shape[1]
        if c.numel() and (int(c[:, :depth].min()) < 0 or int(c[:, :depth].max()) >= k):
            raise SIDError(f"codes must lie in [0, {k}); these codes come from another quantiser")
        out = torch.zeros(c.shape[0], books.shape[2])  # (N, D)
        for level in range(depth):
            out += books[level][c[:, level]]
        return out.numpy()

    # -- files -----------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        books = self._fitted()
        return {
            "format": "cobra.sid",
            "version": FORMAT_VERSION,
            "config": asdict(self.config),
            "levels": int(books.shape[0]),
            "codes": int(books.shape[1]),
            "dim": int(books.shape[2]),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``codebooks`` and JSON metadata to one ``.npz`` file (atomically, no pickle)."""
        return _write_npz(path, {"codebooks": self._fitted().numpy()}, self._meta())

    @classmethod
    def load(cls, path: str | Path) -> ResidualQuantizer:
        """Read a file written by :meth:`save` (or :meth:`SemanticIDs.save`)."""
        arrays, meta, _ = _read_npz(path)
        return _quantizer_from(arrays, meta, path)


def _write_npz(path: str | Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` with :func:`cobra.npzfile.write_hashed_npz`, to a name ending in ``.npz``."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz")
    return write_hashed_npz(path, arrays, meta)


def _read_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict, bool]:
    """Arrays and metadata of a file written by :func:`_write_npz`, and whether it carried a content hash.

    Every member is read whole (its CRC-32 checked, its size matching its header), then the sha256
    recorded at write time is recomputed. A file from before content hashes (no ``sha256``) passes on
    the CRC checks alone (third value False). Any damage is a :class:`SIDError` that names the file.
    """
    path = Path(path)
    if not path.exists():
        raise SIDError(f"no semantic-ID file at {path}; fit one first (python -m cobra sid ...)")
    try:
        arrays, meta, hashed = read_hashed_npz(path)
    except HashMismatch as exc:
        raise SIDError(f"{path} is damaged ({exc}); delete it and fit again") from None
    except ValueError as exc:  # JSONDecodeError included
        raise SIDError(f"{path} is not a readable semantic-ID file ({exc}); delete it and fit again") from None
    if meta.get("format") != "cobra.sid" or meta.get("version") != FORMAT_VERSION:
        raise SIDError(f"{path} has format {meta.get('format')!r} v{meta.get('version')}; fit again")
    return arrays, meta, hashed


def _quantizer_from(arrays: dict[str, np.ndarray], meta: dict, path: str | Path) -> ResidualQuantizer:
    try:
        shape = (int(meta["levels"]), int(meta["codes"]), int(meta["dim"]))
        config = SIDConfig(**meta["config"])
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise SIDError(f"{path}: its metadata is damaged ({type(exc).__name__}: {exc}); delete it and fit "
                       "again") from None
    books = arrays.get("codebooks")
    if books is None or books.shape != shape or (config.levels, config.codes) != shape[:2]:
        raise SIDError(f"{path}: codebooks missing or not of shape {shape}; the file is corrupt, fit again")
    if books.dtype.kind != "f" or not np.isfinite(books).all():
        raise SIDError(f"{path}: codebooks are not finite floats; the file is corrupt, fit again")
    q = ResidualQuantizer(config)
    q.codebooks = torch.from_numpy(books.astype(np.float32))
    return q


def check_codes(codes: np.ndarray, *, codes_per_level: int, where: str | Path, num_items: int | None = None,
                levels: int | None = None, remedy: str = "delete it and fit again") -> np.ndarray:
    """``codes`` as (N, L + 1) int64 after checking them, else a :class:`SIDError` naming ``where``.

    Checks: a 2-D integer array; ``N == num_items`` and ``L == levels`` when given; every level's
    codes (all columns but the last) in ``[0, codes_per_level)``; the last column, the uniqueness code
    (a rank within a group of items with equal codes), in ``[0, N)``.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype.kind not in "iu" or codes.shape[1] < 1:
        raise SIDError(f"{where}: semantic-ID codes must be a 2-D integer array, got shape {codes.shape} "
                       f"{codes.dtype}; the file is damaged: {remedy}")
    n, width = codes.shape
    if num_items is not None and n != num_items:
        raise SIDError(f"{where} holds codes for {n} items, expected {num_items}; the file is damaged or "
                       f"belongs to another dataset: {remedy}")
    if levels is not None and width != levels + 1:
        raise SIDError(f"{where} holds {width} code columns, expected {levels + 1} ({levels} levels and the "
                       f"uniqueness code); the file is damaged: {remedy}")
    for j in range(width):
        col = codes[:, j]
        top, what = (n, "uniqueness codes (last column)") if j == width - 1 else (
            codes_per_level, f"level-{j + 1} codes")
        bad = np.flatnonzero((col < 0) | (col >= top))
        if bad.size:
            raise SIDError(f"{where}: {what} must lie in [0, {top}), but item {int(bad[0]) + 1} has "
                           f"{int(col[bad[0]])} ({bad.size} out of range); the file is damaged or comes from "
                           f"another quantiser: {remedy}")
    return codes.astype(np.int64, copy=False)


def read_codes(path: str | Path, *, codes_per_level: int, num_items: int | None = None, key: str = "codes",
               remedy: str = "delete it and fit again") -> np.ndarray:
    """The (N, L + 1) int64 codes stored under ``key`` in the ``.npz`` file ``path``, checked.

    Every member is read whole (CRC-32 checked), then :func:`check_codes` runs. A missing, truncated
    or damaged file, or codes out of range, is a :class:`SIDError` that names the file and ``remedy``.
    """
    path = Path(path)
    if not path.is_file():
        raise SIDError(f"{path} is missing; {remedy}")
    try:
        arrays = read_npz(path)
    except ValueError as exc:
        raise SIDError(f"{path} is not a readable semantic-ID file ({exc}); {remedy}") from None
    if key not in arrays:
        raise SIDError(f"{path} holds no {key!r} array (it has {sorted(arrays)}); {remedy}")
    return check_codes(arrays[key], codes_per_level=codes_per_level, num_items=num_items, where=path,
                       remedy=remedy)


# ------------------------------------------------------------------------------------ uniqueness code


def add_uniqueness(codes: np.ndarray) -> np.ndarray:
    """Append TIGER's uniqueness code: items with identical tuples get 0, 1, 2, ... in item order.

    Args:
        codes: (N, L) int64.

    Returns:
        (N, L + 1) int64 whose rows are all distinct. The last column's largest value + 1 is the size
        of the largest colliding group (it may exceed K).
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2:
        raise SIDError(f"codes must be 2-D (N, L); got shape {codes.shape}")
    if codes.shape[0] == 0:
        return np.zeros((0, codes.shape[1] + 1), dtype=np.int64)
    _, group = np.unique(codes, axis=0, return_inverse=True)  # (N,)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")  # items of a group stay in item order
    counts = np.bincount(group)
    starts = np.cumsum(counts) - counts
    uniq = np.empty(codes.shape[0], dtype=np.int64)
    uniq[order] = np.arange(codes.shape[0]) - starts[group[order]]
    return np.concatenate([codes, uniq[:, None]], axis=1)


# ------------------------------------------------------------------------------------ the convenience


@dataclass(frozen=True, eq=False)
class SemanticIDs:
    """Fitted semantic IDs of a catalogue.

    Attributes:
        codes: (N, L + 1) int64; row i-1 is item i; the last column is the uniqueness code.
        quantizer: the fitted :class:`ResidualQuantizer` (to encode new items / decode codes).
        config: the :class:`SIDConfig` used.
        seconds: wall-clock time of the fit.
    """

    codes: np.ndarray
    quantizer: ResidualQuantizer = field(repr=False)
    config: SIDConfig
    seconds: float = 0.0

    @property
    def levels(self) -> int:
        return self.config.levels

    def save(self, path: str | Path) -> Path:
        """Write codebooks, codes and metadata to one ``.npz`` file (no pickle)."""
        meta = self.quantizer._meta() | {"seconds": self.seconds}
        arrays = {"codebooks": self.quantizer._fitted().numpy(), "sid_codes": self.codes}
        return _write_npz(path, arrays, meta)

    @classmethod
    def load(cls, path: str | Path, *, num_items: int | None = None) -> SemanticIDs:
        """Read a file written by :meth:`save`, checked (see :func:`load_semantic_ids`)."""
        return load_semantic_ids(path, num_items=num_items)[0]


def load_semantic_ids(path: str | Path, *, num_items: int | None = None) -> tuple[SemanticIDs, bool]:
    """Read a file written by :meth:`SemanticIDs.save`, and say whether it carried a content hash.

    The content hash recorded at write time is checked (a file from an older version without one passes
    on its members' CRC-32 alone: second value False), then the codes: ``L + 1`` columns, level codes in
    ``[0, K)``, uniqueness codes in ``[0, N)``, and ``N == num_items`` when given.

    Raises:
        SIDError: missing, unreadable or damaged file, or codes out of range; the message names the file.
    """
    arrays, meta, hashed = _read_npz(path)
    if "sid_codes" not in arrays:
        raise SIDError(f"{path} holds only a quantiser (no item codes); use ResidualQuantizer.load")
    q = _quantizer_from(arrays, meta, path)
    codes = check_codes(arrays["sid_codes"], codes_per_level=q.config.codes, levels=q.config.levels,
                        num_items=num_items, where=path)
    try:
        seconds = float(meta.get("seconds", 0.0))
    except (TypeError, ValueError):
        raise SIDError(f"{path}: its metadata is damaged (seconds = {meta.get('seconds')!r}); delete it and fit "
                       "again") from None
    return SemanticIDs(codes, q, q.config, seconds), hashed


def fit_semantic_ids(
    vectors: np.ndarray | torch.Tensor, config: SIDConfig | None = None, *, device: str = "cpu"
) -> SemanticIDs:
    """Fit a residual quantiser and return every item's semantic ID.

    Args:
        vectors: (N, D) float32 item vectors (row i-1 = item i).
        config: :class:`SIDConfig` (default: 3 levels x 128 codes, balanced).
        device: "cpu" or "cuda".

    Returns:
        :class:`SemanticIDs` with codes (N, L + 1) int64.
    """
    config = config if config is not None else SIDConfig()
    q = ResidualQuantizer(config)
    t0 = time.perf_counter()
    codes = q.fit(vectors, device=device)  # (N, L)
    seconds = time.perf_counter() - t0
    return SemanticIDs(add_uniqueness(codes), q, config, seconds)


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
